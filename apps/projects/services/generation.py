"""Generated-project services: start, dry-run, cancel, retry and execute a generation.

`generated_project_start` is what the API (and a workflow's file_generation step) calls:
it validates, writes the row and enqueues the task on commit. `generated_project_execute`
is what the `file_generation` step executor runs inside a worker: it claims the job's
lease, renders into the blob store (each file stored once under its sha256, verified) and
records the files in one transaction, so a reader never sees half a project and a redelivered
task never does the work twice. A generation has no folder of its own: a step that needs a
working tree materialises one from the blobs (`generated_project_copy_to`).
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.projects.models import GeneratedProject, Project, ProjectFile, Role
from apps.projects.services.project_generator import (
    GenerationCancelled,
    GenerationFailed,
    GenerationResult,
    NullSink,
    ProgressThrottle,
    ProjectGenerator,
)
from apps.projects.services.projects import require_role
from apps.projects.services.stored_files import generation_files, manifest_of
from apps.storage.blobs import BlobWriter, VerifiedReader, blob_store, blob_writes, remove_tree
from apps.templates.models import ProjectTemplate, TemplateSource, TemplateVersion
from apps.templates.services import formats
from apps.templates.services.catalog import template_folder, template_get
from apps.templates.services.versions import version_for_generation, version_latest
from core.exceptions import ApplicationError, Conflict
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
    retry_fields,
)

logger = logging.getLogger("kiln.generation")


class JobBusy(Exception):
    """Another live execution holds the lease; try this delivery again later."""

    def __init__(self, retry_in: float) -> None:
        super().__init__(f"busy, retry in {retry_in:.0f}s")
        self.retry_in = retry_in


# --- the template version and its parameters ---------------------------------------------------


def _version(version: TemplateVersion | ProjectTemplate) -> TemplateVersion:
    return version_latest(version) if isinstance(version, ProjectTemplate) else version


def template_version_ref(version: TemplateVersion | ProjectTemplate) -> formats.VersionRef:
    """What the catalog records about a version (a template: its latest), for its format (`formats`)."""
    version = _version(version)
    template = version.template
    folder = template_folder(version)
    return formats.VersionRef(
        folder=folder,
        format=version.format,
        checksum=version.checksum,
        slug=template.slug,
        version=version.version,
        parameters=version.parameters or {"type": "object", "properties": {}},
        name=template.name,
        description=template.description,
        exclude=tuple(version.exclude),
        copy_without_render=tuple(version.copy_without_render),
        uses_code=tuple(version.uses_code or ()),
        trusted=version.is_trusted,
        source=_source_info(template, version),
    )


def _source_info(template: ProjectTemplate, version: TemplateVersion) -> formats.SourceInfo:
    """Where the version came from, as the tools would have been told: a git template's URL and tag
    (Copier's `_src_path` / `_commit` in the answers file, Cookiecutter's `_template` / `_checkout`)."""
    if template.source != TemplateSource.GIT or not template.git_url:
        return formats.SourceInfo()
    return formats.SourceInfo(
        url=template.git_url,
        commit=version.version,
        commit_hash=version.commit or None,
        checkout=version.version,
    )


def parameters_validate(
    *, template: ProjectTemplate, parameters: Any, version: TemplateVersion | None = None
) -> dict[str, Any]:
    """The answers checked with the rules of the version's format (default: the template's latest
    version), 400 with field errors: JSON Schema and defaults for native templates, the tool's own
    rules for Cookiecutter and Copier. A version that runs its author's code and is not trusted is
    refused (400 template_untrusted)."""
    return formats.validate(template_version_ref(version or template), parameters)


def _prepared(version: TemplateVersion | ProjectTemplate) -> formats.PreparedVersion:
    """The version prepared for rendering (a template: its latest version)."""
    ref = template_version_ref(version)
    if not ref.folder.is_dir():
        # Not the template's fault nor the caller's: this process cannot see the files (a
        # worker without the shared KILN_TEMPLATES_DIR, a volume not mounted).
        raise ApplicationError(
            f"The files of template '{ref.slug}' {ref.version} are not available to this Kiln process; "
            "check that KILN_TEMPLATES_DIR is shared by the web and worker processes.",
            code="template_files_missing",
            status_code=503,
        )
    return formats.prepare(ref)


def _generation_version(generated: GeneratedProject) -> TemplateVersion:
    """The version a generation renders: the one it pinned. A generation recorded before
    versions existed renders its template's latest version if that is still what it asked for."""
    if generated.template_version_ref is not None:
        return generated.template_version_ref
    template = generated.template
    latest = version_latest(template)
    if latest.checksum != generated.template_checksum:
        raise GenerationFailed(
            f"Template '{template.slug}' changed since this generation was requested.", code="template_changed"
        )
    return latest


# --- start, dry run, cancel, retry ----------------------------------------------------------


def _check_active_cap(project: Project) -> None:
    check_capacity(GeneratedProject.objects.filter(project=project), what="generations")


def generated_project_start(
    *,
    project: Project,
    template_slug: str,
    parameters: Any,
    actor: Any,
    version: str | None = None,
    enqueue: bool = True,
) -> GeneratedProject:
    """Validate and record a generation of the template's `version` (default: the latest),
    then enqueue it after commit (202 semantics)."""
    require_role(actor=actor, project=project, minimum=Role.DEVELOPER, action="generate projects")
    template = template_get(slug=template_slug)
    pinned = version_for_generation(template, version)
    values = parameters_validate(template=template, parameters=parameters, version=pinned)
    with transaction.atomic():
        # Lock the project row so concurrent requests see each other's rows for the cap.
        Project.objects.select_for_update().filter(pk=project.pk).first()
        _check_active_cap(project)
        generated = GeneratedProject.objects.create(
            project=project,
            template=template,
            template_version=pinned.version,
            template_version_ref=pinned,
            template_checksum=pinned.checksum,
            parameters=values,
            created_by=actor if getattr(actor, "pk", None) and actor.is_authenticated else None,
            progress_total=pinned.file_count,
            enqueued_at=timezone.now(),
        )
        if enqueue:
            _enqueue(generated)
    return generated


def _enqueue(generated: GeneratedProject) -> None:
    from apps.projects.tasks import start_project_generation

    enqueue_on_commit(start_project_generation, generated.pk, model=GeneratedProject)


def generated_project_dry_run(
    *, project: Project, template_slug: str, parameters: Any, actor: Any, version: str | None = None
) -> GenerationResult:
    """Render `version` (default: the latest) in memory and return the manifest; nothing is
    stored or written."""
    require_role(actor=actor, project=project, minimum=Role.DEVELOPER, action="generate projects")
    template = template_get(slug=template_slug)
    pinned = version_for_generation(template, version)
    values = parameters_validate(template=template, parameters=parameters, version=pinned)
    try:
        return ProjectGenerator(_prepared(pinned)).render(
            values, NullSink(), time_limit=settings.KILN_DRY_RUN_TIME_LIMIT
        )
    except GenerationFailed as exc:
        exc.status_code = 422
        raise


def generated_project_cancel(*, generated: GeneratedProject, actor: Any) -> GeneratedProject:
    require_role(actor=actor, project=generated.project, minimum=Role.DEVELOPER, action="cancel generations")
    now = timezone.now()
    with transaction.atomic():
        row = GeneratedProject.objects.select_for_update().get(pk=generated.pk)
        if row.status == JobStatus.PENDING:
            GeneratedProject.objects.filter(pk=row.pk).update(
                status=JobStatus.CANCELLED, finished_at=now, cancel_requested=True, updated_at=now
            )
            job_log(GeneratedProject, row.pk, "INFO cancelled before it started")
            announce_status(GeneratedProject, row.pk, JobStatus.CANCELLED)
        elif row.status == JobStatus.RUNNING:
            GeneratedProject.objects.filter(pk=row.pk).update(cancel_requested=True, updated_at=now)
            job_log(GeneratedProject, row.pk, "INFO cancellation requested")
        else:
            raise Conflict(
                f"The generation is already {row.status}; only pending or running generations can be cancelled.",
                code="not_cancellable",
                extra={"status": row.status},
            )
    generated.refresh_from_db()
    return generated


def generated_project_retry(*, generated: GeneratedProject, actor: Any) -> GeneratedProject:
    require_role(actor=actor, project=generated.project, minimum=Role.DEVELOPER, action="retry generations")
    with transaction.atomic():
        row = GeneratedProject.objects.select_for_update().get(pk=generated.pk)
        if row.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            raise Conflict(
                f"The generation is {row.status}; only failed or cancelled generations can be retried.",
                code="not_retryable",
                extra={"status": row.status},
            )
        template = row.template
        if row.template_version_ref_id is None and template.checksum != row.template_checksum:
            # recorded before versions existed, and its version was replaced since
            raise Conflict(
                f"Template '{template.slug}' changed since this generation (now version {template.version}); "
                "start a new generation instead.",
                code="template_changed",
            )
        _check_active_cap(row.project)
        GeneratedProject.objects.filter(pk=row.pk).update(**retry_fields(row))
        job_log(GeneratedProject, row.pk, f"INFO retried: attempt {row.attempts + 1}")
        announce_status(GeneratedProject, row.pk, JobStatus.PENDING)
        _enqueue(row)
    generated.refresh_from_db()
    return generated


def generated_project_delete(*, generated: GeneratedProject, actor: Any) -> None:
    """Delete a generation for people (maintainer and above): its files and archives go, the row stays.

    The exports' records stay as history (provider, repository, commit); their archives are
    removed with the files. Readers no longer see the generation (404). A generation that
    is still pending or running, or has an export that is, is refused (409): cancel or wait.
    """
    from apps.projects.models import RepositoryExport
    from apps.projects.signals import audit
    from apps.storage.sweep import blobs_sweep

    require_role(actor=actor, project=generated.project, minimum=Role.MAINTAINER, action="delete generations")
    with transaction.atomic():
        row = GeneratedProject.objects.select_for_update().get(pk=generated.pk)
        busy = (
            row.status in (JobStatus.PENDING, JobStatus.RUNNING)
            or RepositoryExport.objects.filter(
                generated_id=row.pk, status__in=[JobStatus.PENDING, JobStatus.RUNNING]
            ).exists()
        )
        if busy:
            raise Conflict(
                "The generation or one of its exports is still pending or running; cancel it or wait, then delete.",
                code="generation_busy",
                extra={"status": row.status},
            )
        exports = RepositoryExport.objects.filter(generated_id=row.pk)
        # the archives' hashes stay in the audit event; the rows stop pointing at the blobs
        archives = {str(pk): sha for pk, sha in exports.exclude(archive_sha256="").values_list("pk", "archive_sha256")}
        exports.update(archive_path="", archive_sha256="")
        ProjectFile.objects.filter(generated_id=row.pk).delete()
        GeneratedProject.objects.filter(pk=row.pk).update(deleted_at=timezone.now(), updated_at=timezone.now())
        audit(
            "generation.deleted",
            obj=row,
            project_id=row.project_id,
            actor=actor,
            file_count=row.file_count,
            content_sha256=row.content_sha256,
            exports_kept=exports.count(),
            archives=archives,
        )

        def remove_blobs() -> None:
            # the blobs no row points at any more (shared ones stay); a sweep already running
            # elsewhere leaves them to the next one (the retention cleanup sweeps daily)
            blobs_sweep(dry_run=False, scan_storage=False)

        transaction.on_commit(remove_blobs, robust=True)


# --- execution (inside a worker) --------------------------------------------------------------


class _BlobSink:
    """Hands each rendered file to the job's blob writer (stored once, verified; see apps.storage)."""

    def __init__(self, writer: BlobWriter) -> None:
        self.writer = writer

    def add(self, path: str, data: bytes, mode: int, sha256: str) -> None:
        self.writer.add(data, sha256=sha256)


@dataclass
class ExecuteOutcome:
    generated: GeneratedProject
    ran: bool


def generated_project_execute(*, generated_id: int, owner: str) -> ExecuteOutcome:
    """Run one delivery of a generation job. Idempotent; see the module docstring."""
    result = claim(GeneratedProject, generated_id, owner=owner)
    if result.outcome == ClaimOutcome.MISSING:
        raise ApplicationError(f"Generated project {generated_id} does not exist.", code="job_not_found")
    if result.outcome == ClaimOutcome.BUSY:
        raise JobBusy(result.retry_in)
    generated = GeneratedProject.objects.select_related(
        "template", "project", "template_version_ref", "template_version_ref__template"
    ).get(pk=generated_id)
    if result.outcome != ClaimOutcome.CLAIMED:
        return ExecuteOutcome(generated, ran=False)
    lease = result.lease
    assert lease is not None

    def report(done: int, total: int) -> None:
        if lease.heartbeat(done=done, total=total):
            raise GenerationCancelled()

    try:
        template = generated.template
        version = _generation_version(generated)
        job_log(
            GeneratedProject,
            generated.pk,
            f"INFO rendering template {template.slug} {version.version} ({version.file_count} template files)",
        )
        lease.heartbeat(done=0)
        # From the first blob lookup to the commit of the rows that point at the blobs, the
        # sweeper keeps off (apps.storage.sweep); the rows appear in one transaction, after every
        # blob was stored and verified, so a reader never sees half a project.
        with blob_writes():
            with blob_store().writer() as writer:
                outcome = ProjectGenerator(_prepared(version)).render(
                    generated.parameters, _BlobSink(writer), progress=ProgressThrottle(report)
                )
            with transaction.atomic():
                ProjectFile.objects.filter(generated_id=generated.pk).delete()
                ProjectFile.objects.insert_many(
                    generated.pk, [(f.path, f.size, f.sha256, f.mode, f.is_binary) for f in outcome.files]
                )
                job_log(
                    GeneratedProject,
                    generated.pk,
                    f"INFO wrote {outcome.file_count} files, {outcome.total_bytes} bytes, "
                    f"sha256 {outcome.content_sha256} ({writer.stored} new blobs stored)",
                )
                if not lease.finish(
                    JobStatus.COMPLETED,
                    file_count=outcome.file_count,
                    total_bytes=outcome.total_bytes,
                    content_sha256=outcome.content_sha256,
                    progress_done=outcome.file_count,
                    progress_total=outcome.file_count,
                ):
                    raise LeaseLost("lease lost before commit")
    except GenerationCancelled:
        job_log(GeneratedProject, generated.pk, "INFO cancelled")
        lease.finish(JobStatus.CANCELLED)
    except LeaseLost:
        logger.warning("generation %s: lease lost; another delivery owns it", generated.pk)
    except ApplicationError as exc:
        job_log(GeneratedProject, generated.pk, f"ERROR {exc.code}: {exc.message}")
        lease.finish(JobStatus.FAILED, error=error_payload(exc.code, exc.message, exc.extra or None))
    except SoftTimeLimitExceeded:
        lease.finish(
            JobStatus.FAILED,
            error=error_payload("time_limit", "The generation took longer than the task time limit."),
        )
    except OSError as exc:
        lease.finish(
            JobStatus.FAILED,
            error=error_payload("storage_error", f"Writing the generated files failed: {exc.strerror or exc}."),
        )
    generated.refresh_from_db()
    return ExecuteOutcome(generated, ran=True)


def generated_file_open(project_file: ProjectFile) -> VerifiedReader:
    """A recorded file of a generation, opened for reading from the blob store.

    The stream checks the recorded size and sha256 as it is read (`blob_corrupt` at the end
    otherwise); 410 `blob_missing` when the storage lost it. The REST download and the agents'
    `read_file` tool read with it.
    """
    return blob_store().open(project_file.sha256, size=project_file.size)


def generated_project_copy_to(*, generated: GeneratedProject, destination: Path) -> int:
    """Write a completed generation's recorded files into `destination` (a new or empty folder).

    The files come from the blob store as recorded (verified sizes and hashes) and are written
    with `SafeWriter` into a sibling staging folder that is renamed into place, so `destination`
    appears whole or not at all. Returns the number of files.
    """
    if generated.status != JobStatus.COMPLETED:
        raise Conflict(
            f"The generation is {generated.status}; only completed generations can be copied.",
            code="not_completed",
            extra={"status": generated.status},
        )
    if destination.is_symlink() or (destination.exists() and (not destination.is_dir() or any(destination.iterdir()))):
        raise Conflict(f"{destination} exists and is not an empty folder.", code="destination_not_empty")
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = destination.parent / f".{destination.name}.kiln-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        count = blob_store().materialise(manifest_of(generation_files(generated.pk)), staging)
        if destination.exists():
            destination.rmdir()
        os.rename(staging, destination)
    except BaseException:
        remove_tree(staging)
        raise
    return count
