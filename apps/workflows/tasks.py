"""Celery tasks of workflows: one task per step; the next step is a new task."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction

from apps.projects.services.generation import JobBusy
from apps.workflows.models import WorkflowRun
from apps.workflows.services.workflow_executor import workflow_run_advance
from core.celery import app  # Kiln's Celery app: every task is bound to it
from core.jobs import new_lease_owner, register_job_kind

logger = logging.getLogger("kiln.tasks")


@app.task(
    bind=True,
    name="workflows.run_workflow_step",
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=8,
)
def run_workflow_step(self, run_id: int) -> str:  # type: ignore[no-untyped-def]
    try:
        more = workflow_run_advance(run_id=int(run_id), owner=new_lease_owner(self.request.id))
    except JobBusy as busy:
        countdown = min(max(busy.retry_in, 1.0) + 1, settings.KILN_MAX_RETRY_COUNTDOWN)
        raise self.retry(countdown=countdown, max_retries=None) from None
    if more:
        from core.jobs import enqueue_on_commit

        with transaction.atomic():
            enqueue_on_commit(run_workflow_step, int(run_id))
        return "next"
    return "done"


register_job_kind("workflow_run", WorkflowRun, run_workflow_step)
