"""The Celery application. Configuration lives in Django settings (CELERY_* names)."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings.local")

app = Celery("kiln")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
def _job_context(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    from core.context import job

    job.set(f"{getattr(task, 'name', '?')}[{task_id}]")


@task_postrun.connect
def _job_context_done(**kwargs: Any) -> None:
    from core.context import job

    job.set("-")
