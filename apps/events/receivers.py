"""Signal receivers: every job change announced by core.jobs becomes a `JobEvent` row.

Job models are found by their base class (`core.jobs.Job`), so a job model that another
app adds gets its creation ("pending") and deletion handled without touching this module.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.db.models.signals import post_delete, post_save

from apps.events.services import job_event_record, job_events_delete
from core.jobs import Job, job_event


def on_job_event(sender: Any, pk: Any, kind: str, data: dict[str, Any], **kwargs: Any) -> None:
    job_event_record(model=sender, pk=pk, kind=kind, data=data)


def on_job_saved(sender: Any, instance: Job, created: bool, raw: bool = False, **kwargs: Any) -> None:
    if created and not raw:
        job_event_record(model=sender, pk=instance.pk, kind="status", data={"status": instance.status, "error": None})


def on_job_deleted(sender: Any, instance: Job, **kwargs: Any) -> None:
    job_events_delete(model=sender, pk=instance.pk)


def connect() -> None:
    job_event.connect(on_job_event, dispatch_uid="kiln-events-record")
    for model in apps.get_models():
        if issubclass(model, Job):
            uid = f"kiln-events-{model._meta.label_lower}"
            post_save.connect(on_job_saved, sender=model, dispatch_uid=f"{uid}-created")
            post_delete.connect(on_job_deleted, sender=model, dispatch_uid=f"{uid}-deleted")
