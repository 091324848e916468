"""Celery tasks of the projects app: thin, id-based, idempotent; retry policy lives here."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from apps.projects.services.generation import JobBusy
from apps.workflows.services.step_executors import StepContext, run_step
from core.jobs import new_lease_owner

logger = logging.getLogger("kiln.tasks")

DB_ERRORS = (OperationalError, InterfaceError)


@shared_task(
    bind=True,
    name="projects.start_project_generation",
    acks_late=True,
    autoretry_for=DB_ERRORS,
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=8,
)
def start_project_generation(self, generated_id: int) -> str:  # type: ignore[no-untyped-def]
    """Run the `file_generation` step for one recorded generation."""
    context = StepContext(step_id="generate", lease_owner=new_lease_owner(self.request.id))
    try:
        result = run_step("file_generation", {"generated": int(generated_id)}, context)
    except JobBusy as busy:
        countdown = min(max(busy.retry_in, 1.0) + 1, settings.KILN_MAX_RETRY_COUNTDOWN)
        logger.info("generation %s is running elsewhere; checking again in %.0fs", generated_id, countdown)
        raise self.retry(countdown=countdown, max_retries=None) from None
    return result.status
