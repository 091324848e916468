"""Celery tasks of template updates and rollouts: thin, id-based, idempotent; retry policy here."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import InterfaceError, OperationalError

from apps.projects.services.generation import JobBusy
from apps.updates.models import Adoption, Rollout, TemplateUpdate
from core.celery import app
from core.jobs import new_lease_owner, register_job_kind

logger = logging.getLogger("kiln.tasks")

DB_ERRORS = (OperationalError, InterfaceError)


def _countdown(retry_in: float) -> float:
    return min(max(retry_in, 1.0) + 1, settings.KILN_MAX_RETRY_COUNTDOWN)


@app.task(
    bind=True,
    name="updates.execute_template_update",
    acks_late=True,
    autoretry_for=DB_ERRORS,
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=8,
)
def execute_template_update(self, update_id: int) -> str:  # type: ignore[no-untyped-def]
    """Run one recorded template update (apps.updates.services.updates.update_execute)."""
    from apps.updates.services.updates import update_execute

    try:
        update = update_execute(update_id=int(update_id), owner=new_lease_owner(self.request.id))
    except JobBusy as busy:
        logger.info("update %s is busy elsewhere; checking again later", update_id)
        raise self.retry(countdown=_countdown(busy.retry_in), max_retries=None) from None
    return str(update.status)


@app.task(
    bind=True,
    name="updates.advance_rollout",
    acks_late=True,
    autoretry_for=DB_ERRORS,
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=8,
)
def advance_rollout(self, rollout_id: int) -> str:  # type: ignore[no-untyped-def]
    """One step of a rollout (apps.updates.services.rollouts.rollout_advance)."""
    from apps.updates.services.rollouts import RolloutBusy, rollout_advance

    try:
        rollout = rollout_advance(rollout_id=int(rollout_id), owner=new_lease_owner(self.request.id))
    except RolloutBusy as busy:
        raise self.retry(countdown=min(_countdown(busy.retry_in), 5), max_retries=None) from None
    return str(rollout.status)


@app.task(
    bind=True,
    name="updates.execute_adoption",
    acks_late=True,
    autoretry_for=DB_ERRORS,
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=8,
)
def execute_adoption(self, adoption_id: int) -> str:  # type: ignore[no-untyped-def]
    """Adopt one repository (apps.updates.services.adoptions.adoption_execute)."""
    from apps.updates.services.adoptions import adoption_execute

    try:
        adoption = adoption_execute(adoption_id=int(adoption_id), owner=new_lease_owner(self.request.id))
    except JobBusy as busy:
        raise self.retry(countdown=_countdown(busy.retry_in), max_retries=None) from None
    return str(adoption.status)


register_job_kind("template_update", TemplateUpdate, execute_template_update)
register_job_kind("adoption", Adoption, execute_adoption)
register_job_kind("rollout", Rollout, advance_rollout)
