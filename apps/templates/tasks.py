"""Celery tasks of the template catalog: thin callers of its services."""

from __future__ import annotations

import logging
from typing import Any

from core.celery import app
from core.locks import named_lock

logger = logging.getLogger("kiln.tasks")


@app.task(name="templates.sync_git_templates", acks_late=True, ignore_result=True)
def sync_git_templates() -> dict[str, Any]:
    """Beat job (every KILN_GIT_SYNC_INTERVAL_SECONDS): record the new versions of every git template."""
    from apps.templates.services.sources import git

    with named_lock("kiln-git-template-sync") as acquired:
        if not acquired:
            logger.info("git template sync already running elsewhere; skipped")
            return {}
        report = git.sync_all()
    logger.info("git template sync: %s", report)
    return report
