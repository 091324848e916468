"""Celery tasks of template updates and rollouts: thin, id-based, idempotent; retry policy here."""

from __future__ import annotations

import logging

from apps.projects.services.generation import JobBusy
from apps.updates.models import Adoption, Rollout, TemplateUpdate
from core.celery import app
from core.jobs import JOB_TASK_OPTIONS, busy_retry_countdown, new_lease_owner, register_job_kind

logger = logging.getLogger("kiln.tasks")


@app.task(
    bind=True,
    name="updates.execute_template_update",
    **JOB_TASK_OPTIONS,
)
def execute_template_update(self, update_id: int) -> str:  # type: ignore[no-untyped-def]
    """Run one recorded template update (apps.updates.services.updates.update_execute)."""
    from apps.updates.services.updates import update_execute

    try:
        update = update_execute(update_id=int(update_id), owner=new_lease_owner(self.request.id))
    except JobBusy as busy:
        logger.info("update %s is busy elsewhere; checking again later", update_id)
        raise self.retry(countdown=busy_retry_countdown(busy.retry_in), max_retries=None) from None
    return str(update.status)


@app.task(
    bind=True,
    name="updates.advance_rollout",
    **JOB_TASK_OPTIONS,
)
def advance_rollout(self, rollout_id: int) -> str:  # type: ignore[no-untyped-def]
    """One step of a rollout (apps.updates.services.rollouts.rollout_advance)."""
    from apps.updates.services.rollouts import RolloutBusy, rollout_advance

    try:
        rollout = rollout_advance(rollout_id=int(rollout_id), owner=new_lease_owner(self.request.id))
    except RolloutBusy as busy:
        raise self.retry(countdown=min(busy_retry_countdown(busy.retry_in), 5), max_retries=None) from None
    return str(rollout.status)


@app.task(
    bind=True,
    name="updates.execute_adoption",
    **JOB_TASK_OPTIONS,
)
def execute_adoption(self, adoption_id: int) -> str:  # type: ignore[no-untyped-def]
    """Adopt one repository (apps.updates.services.adoptions.adoption_execute)."""
    from apps.updates.services.adoptions import adoption_execute

    try:
        adoption = adoption_execute(adoption_id=int(adoption_id), owner=new_lease_owner(self.request.id))
    except JobBusy as busy:
        raise self.retry(countdown=busy_retry_countdown(busy.retry_in), max_retries=None) from None
    return str(adoption.status)


register_job_kind("template_update", TemplateUpdate, execute_template_update)
register_job_kind("adoption", Adoption, execute_adoption)
register_job_kind("rollout", Rollout, advance_rollout)
