"""Export services: start an export (validate, record, enqueue on commit) and run it in a worker.

Like generations, exports are jobs with a lease. What an export has achieved is
recorded at once and survives a killed worker: the remote repository id right after
creation, the commit sha before the push. A redelivered export adopts the recorded
repository and pushes the same deterministic commit, which the remote already has after
a completed push, so nothing is created or pushed twice.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction
from django.utils import timezone

from apps.approvals.services import approval_request, export_approval_reason
from apps.projects.models import ExportProvider, GeneratedProject, Project, ProviderConnection, RepositoryExport, Role
from apps.projects.services.generation import JobBusy
from apps.projects.services.projects import require_role
from apps.projects.services.repository_exporter import (
    CleanTarget,
    ExportFailed,
    ExportResult,
    RepositoryExporter,
    get_provider,
)
from apps.storage.blobs import BlobRef, blob_key, blob_writes
from core.exceptions import ApplicationError, Conflict, Gone, NotFound, ValidationFailed
from core.jobs import (
    ClaimOutcome,
    JobStatus,
    LeaseLost,
    announce_status,
    check_capacity,
    claim,
    enqueue_on_commit,
    error_payload,
    job_log,
    job_status_changed,
    retry_fields,
)

logger = logging.getLogger("kiln.exports")


def _connection_for(actor: Any, connection_id: Any, provider_id: str) -> ProviderConnection | None:
    provider = get_provider(provider_id)
    if connection_id in (None, ""):
        if provider.needs_connection:
            raise ValidationFailed(
                f"A connection is required for {provider_id} exports.", extra={"fields": {"connection": ["Required."]}}
            )
        return None
    if provider.connection_provider is None:
        raise ValidationFailed(
            f"{provider_id} exports take no connection.", extra={"fields": {"connection": ["Not accepted."]}}
        )
    try:
        pk = int(connection_id)
    except (TypeError, ValueError):
        raise ValidationFailed("connection must be an id.", extra={"fields": {"connection": ["Invalid id."]}}) from None
    connection = ProviderConnection.objects.filter(pk=pk, owner_id=getattr(actor, "pk", None)).first()
    if connection is None:
        raise ValidationFailed(
            "No such connection among yours.",
            code="connection_not_found",
            extra={"fields": {"connection": ["Unknown."]}},
        )
    if connection.provider != provider.connection_provider:
        raise ValidationFailed(
            f"Connection '{connection.name}' is for {connection.provider}, not {provider_id}.",
            extra={"fields": {"connection": ["Wrong provider."]}},
        )
    return connection


connection_for = _connection_for  # the same check for anything else that targets a provider (adoptions)


def repository_export_check(*, data: dict[str, Any], actor: Any) -> tuple[str, ProviderConnection | None, CleanTarget]:
    """The export body's provider, connection and target, checked as `repository_export_start` does,
    with no generation yet: for callers that check their arguments before doing any work (the CLI)."""
    provider_id = data.get("provider")
    if provider_id not in ExportProvider.values:
        raise ValidationFailed(
            f"provider must be one of {', '.join(ExportProvider.values)}.",
            extra={"fields": {"provider": ["Invalid choice."]}},
        )
    connection = _connection_for(actor, data.get("connection"), provider_id)
    return provider_id, connection, get_provider(provider_id).clean_target(data, connection=connection)


def repository_export_start(
    *, generated: GeneratedProject, data: dict[str, Any], actor: Any, enqueue: bool = True, approved: bool = False
) -> RepositoryExport:
    """Validate the target fully, record the export and enqueue it after commit.

    An agent's export to GitHub/GitLab in a project that requires approval is recorded
    `awaiting_approval` with its plan instead, and enqueued only once a person approves it
    (`apps.approvals`). `approved`: a workflow step whose run already passed that gate.
    """
    require_role(actor=actor, project=generated.project, minimum=Role.MAINTAINER, action="export repositories")
    provider_id, connection, clean = repository_export_check(data=data, actor=actor)
    if generated.status != JobStatus.COMPLETED:
        raise Conflict(
            f"The generation is {generated.status}; only completed generations can be exported.",
            code="generation_not_ready",
            extra={"status": generated.status},
        )
    gate = None if approved else export_approval_reason(actor=actor, project=generated.project, provider=provider_id)
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=generated.project_id).first()
        check_capacity(RepositoryExport.objects.filter(generated__project_id=generated.project_id), what="exports")
        export = RepositoryExport.objects.create(
            generated=generated,
            provider=provider_id,
            connection=connection,
            target=clean.target,
            target_key=clean.target_key,
            branch=clean.branch or "",
            remote_url=clean.remote_url,
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
            enqueued_at=None if gate else timezone.now(),
            status=JobStatus.AWAITING_APPROVAL if gate else JobStatus.PENDING,
        )
        if gate:
            approval_request(kind="export", project=generated.project, actor=actor, reason=gate, export=export)
            job_log(RepositoryExport, export.pk, "INFO waiting for a maintainer's approval before publishing")
        elif enqueue:
            _enqueue(export)
    return export


def repository_export_approved(*, export_id: int) -> None:
    """Its approval was granted: the export goes back to `pending` and is enqueued (caller's transaction)."""
    now = timezone.now()
    if RepositoryExport.objects.filter(pk=export_id, status=JobStatus.AWAITING_APPROVAL).update(
        status=JobStatus.PENDING, enqueued_at=now, updated_at=now
    ):
        job_log(RepositoryExport, export_id, "INFO approved; queued")
        announce_status(RepositoryExport, export_id, JobStatus.PENDING)
        _enqueue(RepositoryExport(pk=export_id))


def repository_export_rejected(*, export_id: int, error: dict[str, Any]) -> None:
    """Its approval was refused: the export ends `cancelled` with that error (caller's transaction)."""
    now = timezone.now()
    payload = error_payload(error["code"], error["message"])
    if RepositoryExport.objects.filter(pk=export_id, status=JobStatus.AWAITING_APPROVAL).update(
        status=JobStatus.CANCELLED, error=payload, finished_at=now, updated_at=now
    ):
        announce_status(RepositoryExport, export_id, JobStatus.CANCELLED, payload)
        transaction.on_commit(
            lambda: job_status_changed.send(sender=RepositoryExport, pk=export_id, status=JobStatus.CANCELLED)
        )


def _enqueue(export: RepositoryExport) -> None:
    from apps.projects.tasks import execute_repository_export

    enqueue_on_commit(execute_repository_export, export.pk, model=RepositoryExport)


def repository_export_execute(*, export_id: int, owner: str) -> tuple[RepositoryExport, list[str]]:
    """One delivery of an export job; idempotent (see the module docstring)."""
    result = claim(RepositoryExport, export_id, owner=owner)
    if result.outcome == ClaimOutcome.MISSING:
        raise NotFound(f"Export {export_id} does not exist.", code="job_not_found")
    if result.outcome == ClaimOutcome.BUSY:
        raise JobBusy(result.retry_in)
    export = RepositoryExport.objects.select_related("generated__template", "generated__project", "connection").get(
        pk=export_id
    )
    if result.outcome != ClaimOutcome.CLAIMED:
        return export, []
    lease = result.lease
    assert lease is not None

    def record(**fields: Any) -> None:
        """Persist progress at once, outside any surrounding transaction, while the lease is ours."""
        if not RepositoryExport.objects.filter(pk=export_id, lease_owner=owner).update(
            updated_at=timezone.now(), **fields
        ):
            raise LeaseLost(f"export {export_id}: lease lost")
        for name, value in fields.items():
            setattr(export, name, value)

    def heartbeat() -> None:
        if lease.heartbeat():
            raise _Cancelled()

    logs: list[str] = []
    # an archive is stored as a blob: hold the writers' fence until the row pointing at it is committed
    fence = blob_writes() if export.provider in ARCHIVE_PROVIDERS else contextlib.nullcontext()
    try:
        with fence:
            outcome, logs = RepositoryExporter(export, record=record, heartbeat=heartbeat).run()
            finished = _finish(lease, export, outcome)
        if not finished:
            raise LeaseLost("lease lost before finishing")
    except _Cancelled:
        job_log(RepositoryExport, export_id, "INFO cancelled")
        lease.finish(JobStatus.CANCELLED)
    except LeaseLost:
        logger.warning("export %s: lease lost; another delivery owns it", export_id)
    except ApplicationError as exc:
        job_log(RepositoryExport, export_id, f"ERROR {exc.code}: {exc.message}")
        lease.finish(JobStatus.FAILED, error=error_payload(exc.code, exc.message, exc.extra or None))
    except SoftTimeLimitExceeded:
        lease.finish(
            JobStatus.FAILED, error=error_payload("time_limit", "The export took longer than the task time limit.")
        )
    except OSError as exc:
        lease.finish(
            JobStatus.FAILED,
            error=error_payload("storage_error", f"Reading or writing files failed: {exc.strerror or exc}."),
        )
    export.refresh_from_db()
    return export, logs


class _Cancelled(Exception):
    pass


def repository_export_compensate(*, export_id: int) -> dict[str, Any]:
    """Undo what an export created, after a later step of its workflow run failed.

    Only the remote repository this export's own create request made (`repository_created`, the
    recorded id) is deleted, through its provider module; an adopted or pre-existing repository
    is kept. The outcome is returned (and logged on the export), never raised: a failed deletion
    is reported once, not retried again and again.
    """
    export = RepositoryExport.objects.select_related("connection").filter(pk=export_id).first()
    now = timezone.now().isoformat()
    if export is None:
        return {"outcome": "kept", "reason": f"export {export_id} no longer exists", "at": now}
    where = {"export": export.pk, "repository": export.remote_full_name, "remote_repo_id": export.remote_repo_id}
    provider = get_provider(export.provider)
    delete = getattr(provider, "delete_repository", None)
    if not export.repository_created or not export.remote_repo_id or delete is None:
        reason = (
            "the repository existed before this run (adopted), so it is kept"
            if export.remote_repo_id
            else "this export created no repository"
        )
        return {"outcome": "kept", "reason": reason, "at": now, **where}
    from apps.projects.services.secrets import SecretUnreadable, decrypt_secret

    try:
        if export.connection is None:
            raise ExportFailed("The export's connection was deleted.", code="connection_missing")
        try:
            token = decrypt_secret(export.connection.token_encrypted)
        except SecretUnreadable:
            raise ExportFailed("The connection's token cannot be decrypted.", code="connection_unreadable") from None
        outcome = delete(
            connection=export.connection,
            token=token,
            remote_repo_id=export.remote_repo_id,
            full_name=export.remote_full_name,
        )
    except ApplicationError as exc:
        job_log(RepositoryExport, export.pk, f"ERROR deleting {export.remote_full_name} failed: {exc.message}")
        return {"outcome": "failed", "error": error_payload(exc.code, exc.message), "at": now, **where}
    job_log(
        RepositoryExport, export.pk, f"WARNING {export.remote_full_name} {outcome.replace('_', ' ')} (compensation)"
    )
    return {"outcome": outcome, "at": now, **where}


ARCHIVE_PROVIDERS = frozenset({ExportProvider.ZIP, ExportProvider.TAR_GZ})


def _finish(lease: Any, export: RepositoryExport, outcome: ExportResult) -> bool:
    return bool(
        lease.finish(
            JobStatus.COMPLETED,
            remote_url=outcome.remote_url or export.remote_url,
            web_url=outcome.web_url or export.web_url,
            commit_sha=outcome.commit_sha,
            pushed=outcome.pushed,
            remote_repo_id=outcome.remote_repo_id or export.remote_repo_id,
            remote_full_name=outcome.remote_full_name or export.remote_full_name,
            archive_path=outcome.archive_path,
            archive_size=outcome.archive_size,
            archive_sha256=outcome.archive_sha256,
        )
    )


def repository_export_archive(export: RepositoryExport) -> BlobRef:
    """The stored archive of a completed zip/tar.gz export (409 while not ready, 410 when cleaned up)."""
    if export.provider not in ARCHIVE_PROVIDERS:
        raise ValidationFailed("Only zip and tar.gz exports have a download.", code="no_archive")
    if export.status != JobStatus.COMPLETED or not export.archive_sha256:
        raise Conflict(f"The export is {export.status}; the archive is not ready.", code="archive_not_ready")
    if export.archive_path != blob_key(export.archive_sha256):
        # an archive written before the blob store (a file under GENERATED_PROJECTS_DIR)
        raise Gone("The archive was removed (retention); export again.", code="files_expired")
    return BlobRef(export.archive_sha256, int(export.archive_size or 0))


def repository_export_retry(*, export: RepositoryExport, actor: Any) -> RepositoryExport:
    require_role(actor=actor, project=export.generated.project, minimum=Role.MAINTAINER, action="export repositories")
    with transaction.atomic():
        row = RepositoryExport.objects.select_for_update().get(pk=export.pk)
        if row.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            raise Conflict(
                f"The export is {row.status}; only failed or cancelled exports can be retried.", code="not_retryable"
            )
        # a retry by an agent is gated like a start: the attempt waits for approval again
        gate = export_approval_reason(actor=actor, project=export.generated.project, provider=row.provider)
        fields = retry_fields(row)
        if gate:
            fields.update(status=JobStatus.AWAITING_APPROVAL, enqueued_at=None)
        RepositoryExport.objects.filter(pk=row.pk).update(**fields)
        job_log(RepositoryExport, row.pk, f"INFO retried: attempt {row.attempts + 1}")
        announce_status(RepositoryExport, row.pk, fields["status"])
        if gate:
            row.refresh_from_db()
            approval_request(kind="export", project=export.generated.project, actor=actor, reason=gate, export=row)
        else:
            _enqueue(row)
    export.refresh_from_db()
    return export
