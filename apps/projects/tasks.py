"""Celery tasks of the projects app: thin, id-based, idempotent; the retry policy is core.jobs'."""

from __future__ import annotations

import logging

from apps.projects.models import GeneratedProject, RepositoryExport
from apps.projects.services.generation import JobBusy
from apps.workflows.services.step_executors import StepContext, run_step
from core.celery import app  # Kiln's Celery app: every task is bound to it
from core.jobs import JOB_TASK_OPTIONS, busy_retry_countdown, new_lease_owner, reap_jobs, register_job_kind
from core.locks import named_lock

logger = logging.getLogger("kiln.tasks")


@app.task(
    bind=True,
    name="projects.start_project_generation",
    **JOB_TASK_OPTIONS,
)
def start_project_generation(self, generated_id: int) -> str:  # type: ignore[no-untyped-def]
    """Run the `file_generation` step for one recorded generation."""
    return _run_job_step(self, "file_generation", {"generated": int(generated_id)}, step_id="generate")


@app.task(
    bind=True,
    name="projects.execute_repository_export",
    **JOB_TASK_OPTIONS,
)
def execute_repository_export(self, export_id: int) -> str:  # type: ignore[no-untyped-def]
    """Run the `repo_creation` step for one recorded export."""
    return _run_job_step(self, "repo_creation", {"export": int(export_id)}, step_id="export")


def _run_job_step(task, step_type: str, data: dict[str, int], *, step_id: str) -> str:  # type: ignore[no-untyped-def]
    context = StepContext(step_id=step_id, lease_owner=new_lease_owner(task.request.id))
    try:
        result = run_step(step_type, data, context)
    except JobBusy as busy:
        countdown = busy_retry_countdown(busy.retry_in)
        logger.info("%s %s is running elsewhere; checking again in %.0fs", step_type, data, countdown)
        raise task.retry(countdown=countdown, max_retries=None) from None
    return result.status


register_job_kind("generation", GeneratedProject, start_project_generation)
register_job_kind("export", RepositoryExport, execute_repository_export)


@app.task(name="projects.reap_jobs", acks_late=True, ignore_result=True)
def reap_stuck_jobs() -> dict[str, int]:
    """Beat job: re-enqueue lost pending jobs, recover or fail running jobs with expired leases."""
    with named_lock("kiln-reaper") as acquired:
        if not acquired:
            logger.info("reaper already running elsewhere; skipped")
            return {}
        report = reap_jobs().as_dict()
    if any(report.values()):
        logger.warning("reaper: %s", report)
    return report


@app.task(name="projects.cleanup_old_generated_projects", acks_late=True, ignore_result=True)
def cleanup_old_generated_projects() -> dict[str, object]:
    """Beat job: delete generated projects older than the retention period (see services.cleanup)."""
    from apps.projects.services.cleanup import generated_projects_cleanup

    report = generated_projects_cleanup(dry_run=False)
    logger.info("cleanup: %s", report)
    return report
