"""Celery tasks of workflows: one task per step; the next step is a new task."""

from __future__ import annotations

import logging

from django.db import transaction

from apps.projects.services.generation import JobBusy
from apps.workflows.models import WorkflowRun
from apps.workflows.services.workflow_executor import workflow_run_advance
from core.celery import app  # Kiln's Celery app: every task is bound to it
from core.jobs import JOB_TASK_OPTIONS, busy_retry_countdown, new_lease_owner, register_job_kind

logger = logging.getLogger("kiln.tasks")


@app.task(
    bind=True,
    name="workflows.run_workflow_step",
    **JOB_TASK_OPTIONS,
)
def run_workflow_step(self, run_id: int) -> str:  # type: ignore[no-untyped-def]
    try:
        more = workflow_run_advance(run_id=int(run_id), owner=new_lease_owner(self.request.id))
    except JobBusy as busy:
        countdown = busy_retry_countdown(busy.retry_in)
        raise self.retry(countdown=countdown, max_retries=None) from None
    if more:
        from core.jobs import enqueue_on_commit

        with transaction.atomic():
            enqueue_on_commit(run_workflow_step, int(run_id))
        return "next"
    return "done"


register_job_kind("workflow_run", WorkflowRun, run_workflow_step)
