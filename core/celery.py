"""The Celery application. Configuration lives in Django settings (CELERY_* names).

The beat schedule is built here from Kiln settings: the reaper (`projects.reap_jobs`)
every KILN_REAPER_INTERVAL_SECONDS, the retention cleanup
(`projects.cleanup_old_generated_projects`) on the KILN_CLEANUP_CRONTAB crontab, in UTC, and
the sync of git templates (`templates.sync_git_templates`) every KILN_GIT_SYNC_INTERVAL_SECONDS
(0: never).
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.schedules import crontab
from celery.signals import task_postrun, task_prerun
from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings.local")

app = Celery("kiln")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def beat_schedule(
    *, reaper_interval: int, cleanup_crontab: str, git_sync_interval: int = 0
) -> dict[str, dict[str, Any]]:
    """Kiln's periodic jobs; a malformed setting is a clear configuration error at beat start."""
    if reaper_interval < 1:
        raise ImproperlyConfigured(f"KILN_REAPER_INTERVAL_SECONDS must be at least 1, got {reaper_interval}.")
    if git_sync_interval < 0:
        raise ImproperlyConfigured(
            f"KILN_GIT_SYNC_INTERVAL_SECONDS must be 0 (off) or a number of seconds, got {git_sync_interval}."
        )
    fields = cleanup_crontab.split()
    if len(fields) != 5:
        raise ImproperlyConfigured(
            f"KILN_CLEANUP_CRONTAB must have five fields (minute hour day month weekday), got {cleanup_crontab!r}."
        )
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    try:
        cleanup = crontab(
            minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year, day_of_week=day_of_week
        )
    except ValueError as exc:
        raise ImproperlyConfigured(f"KILN_CLEANUP_CRONTAB {cleanup_crontab!r} is not a valid crontab: {exc}") from exc
    schedule: dict[str, dict[str, Any]] = {
        "kiln-reap-jobs": {"task": "projects.reap_jobs", "schedule": float(reaper_interval)},
        "kiln-cleanup-old-generated-projects": {"task": "projects.cleanup_old_generated_projects", "schedule": cleanup},
    }
    if git_sync_interval:
        schedule["kiln-sync-git-templates"] = {
            "task": "templates.sync_git_templates",
            "schedule": float(git_sync_interval),
        }
    return schedule


@app.on_after_configure.connect
def _install_beat_schedule(sender: Celery, **kwargs: Any) -> None:
    from django.conf import settings

    sender.conf.beat_schedule = beat_schedule(
        reaper_interval=settings.KILN_REAPER_INTERVAL_SECONDS,
        cleanup_crontab=settings.KILN_CLEANUP_CRONTAB,
        git_sync_interval=settings.KILN_GIT_SYNC_INTERVAL_SECONDS,
    )


@task_prerun.connect
def _job_context(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    from core.context import job

    job.set(f"{getattr(task, 'name', '?')}[{task_id}]")


@task_postrun.connect
def _job_context_done(**kwargs: Any) -> None:
    from core.context import job
    from core.jobs import forget_leases

    job.set("-")
    forget_leases()  # a lease the task claimed and did not finish is no longer worked on
