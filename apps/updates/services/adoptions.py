"""Adopting repositories Kiln did not generate: Copier (`.copier-answers.yml`) or cruft (`.cruft.json`).

`POST /projects/{p}/adoptions/` names a repository (as an export would: GitHub, GitLab or a git
remote, with a connection) and optionally the registered template and version. The job:

1. finds the repository through its provider module (`lookup`: the one door to the provider),
2. fetches its default branch shallow and reads the answers file (untrusted, bounded),
3. picks the template (the one named, else the registered git template whose URL is the answers
   file's source) and version (the one named, else the recorded one: Copier's `_commit` tag,
   cruft's commit sha),
4. renders that version with the recorded answers as a generation (recorded like any other),
5. records the repository as that generation's export target.

From then on the repository updates like one Kiln exported: `POST .../generated/{g}/updates/`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.projects.models import ExportProvider, Project, RepositoryExport, Role
from apps.projects.services.exports import connection_for
from apps.projects.services.generation import JobBusy, generated_project_execute
from apps.projects.services.gitops import GitAuth, fetch_heads, init_scratch, list_tree, read_blobs
from apps.projects.services.projects import require_role
from apps.projects.services.repository_exporter import get_adopter, get_provider, git_username
from apps.storage.blobs import scratch_folder
from apps.templates.models import ProjectTemplate
from apps.updates.models import Adoption
from apps.updates.services import versions
from apps.updates.services.answers_files import COPIER_FILES, CRUFT_FILE, MAX_BYTES, find_answers
from core.exceptions import ApplicationError, NotFound, ValidationFailed
from core.jobs import ClaimOutcome, JobStatus, LeaseLost, claim, enqueue_on_commit, error_payload, job_log
from core.redaction import redact

logger = logging.getLogger("kiln.updates")

GIT_PROVIDERS = (ExportProvider.GITHUB, ExportProvider.GITLAB, ExportProvider.GIT)
ADOPTION_FIELDS = {"template", "version"}


class AdoptionFailed(ApplicationError):
    status_code = 422
    default_code = "adoption_failed"


def adoption_start(*, project: Project, data: Any, actor: Any, enqueue: bool = True) -> Adoption:
    """Validate the target as an export would be validated, record the adoption, enqueue it."""
    require_role(actor=actor, project=project, minimum=Role.MAINTAINER, action="adopt repositories")
    if not isinstance(data, dict):
        raise ValidationFailed("The body must be a JSON object.")
    provider_id = data.get("provider")
    if provider_id not in GIT_PROVIDERS:
        raise ValidationFailed(
            "provider must be one of github, gitlab, git.", extra={"fields": {"provider": ["Invalid choice."]}}
        )
    extra = {key: data[key] for key in ADOPTION_FIELDS if key in data}
    for key, value in extra.items():
        if not isinstance(value, str) or not value.strip() or len(value) > 100:
            raise ValidationFailed(f"{key} must be a text.", extra={"fields": {key: ["Invalid."]}})
    target_data = {key: value for key, value in data.items() if key not in ADOPTION_FIELDS}
    provider = get_provider(provider_id)
    connection = connection_for(actor, target_data.get("connection"), provider_id)
    clean = provider.clean_target(target_data, connection=connection)
    if "template" in extra:
        from apps.templates.services.catalog import template_get

        template_get(slug=extra["template"])  # 404 now rather than in the job
    adoption = Adoption.objects.create(
        project=project,
        provider=provider_id,
        connection=connection,
        target=clean.target,
        target_key=clean.target_key,
        branch=clean.branch or "",
        template_slug=extra.get("template", ""),
        version_label=extra.get("version", ""),
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
        enqueued_at=timezone.now(),
    )
    if enqueue:
        from apps.updates.tasks import execute_adoption

        enqueue_on_commit(execute_adoption, adoption.pk, model=Adoption)
    return adoption


def adoptions_of(project: Project) -> QuerySet[Adoption]:
    return Adoption.objects.filter(project=project).select_related("template", "generated", "export")


def _template_for(adoption: Adoption, source: str) -> ProjectTemplate:
    if adoption.template_slug:
        from apps.templates.services.catalog import template_get

        return template_get(slug=adoption.template_slug)
    found = versions.template_for_source(source)
    if found is not None:
        return found
    raise NotFound(
        f"No registered template comes from {source!r}; register it (POST /templates/ with its git URL) "
        "or name the template to link.",
        code="template_not_found",
        extra={"source": source},
    )


def adoption_execute(*, adoption_id: int, owner: str) -> Adoption:
    """One delivery of an adoption job (idempotent: an adoption that finished is not run again)."""
    from apps.projects.services.secrets import SecretUnreadable, decrypt_secret

    result = claim(Adoption, adoption_id, owner=owner)
    if result.outcome == ClaimOutcome.MISSING:
        raise NotFound(f"Adoption {adoption_id} does not exist.", code="job_not_found")
    if result.outcome == ClaimOutcome.BUSY:
        raise JobBusy(result.retry_in)
    adoption = Adoption.objects.select_related("project", "connection", "created_by").get(pk=adoption_id)
    if result.outcome != ClaimOutcome.CLAIMED:
        return adoption
    lease = result.lease
    assert lease is not None
    secrets: tuple[str, ...] = ()

    def record(**fields: Any) -> None:
        if not Adoption.objects.filter(pk=adoption_id, lease_owner=owner).update(updated_at=timezone.now(), **fields):
            raise LeaseLost(f"adoption {adoption_id}: lease lost")
        for name, value in fields.items():
            setattr(adoption, name, value)

    try:
        token = None
        if adoption.connection is not None:
            try:
                token = decrypt_secret(adoption.connection.token_encrypted)
            except SecretUnreadable:
                raise AdoptionFailed(
                    "The connection's token cannot be decrypted.", code="connection_unreadable"
                ) from None
            secrets = (token,)
        elif adoption.provider != ExportProvider.GIT:
            raise AdoptionFailed("The connection was deleted.", code="connection_missing", status_code=409)
        repository = get_adopter(adoption.provider).lookup(adoption.target, connection=adoption.connection, token=token)
        branch = adoption.branch if adoption.provider == ExportProvider.GIT else repository.default_branch
        auth = GitAuth(git_username(adoption.provider), token) if token else None
        lease.heartbeat(done=1, total=3)
        with scratch_folder(f"adoption-{int(adoption.pk)}") as work:
            head, recorded = _read_answers(work / "repo.git", url=repository.clone_url, branch=branch, auth=auth)
        record(
            answers_file=recorded.path,
            recorded={"tool": recorded.tool, "source": recorded.source, "version": recorded.version},
        )
        template = _template_for(adoption, recorded.source)
        label = adoption.version_label or versions.version_for_recorded(template, recorded)
        version = versions.target_version(template, label)
        record(template=template, version=version.label)
        job_log(Adoption, adoption.pk, f"INFO {recorded.path}: {template.slug} {version.label} ({recorded.tool})")
        answers = versions.new_answers(generated=None, version=version, changed={}, renamed=recorded.answers)
        generation = versions.start_generation(
            project=adoption.project, version=version, answers=answers, actor=adoption.created_by
        )
        record(generated=generation)
        generated_project_execute(generated_id=generation.pk, owner=owner)
        generation.refresh_from_db()
        if generation.status != JobStatus.COMPLETED:
            error = generation.error or {}
            raise AdoptionFailed(
                f"Rendering {template.slug} {version.label} with the recorded answers failed: "
                f"{error.get('message') or generation.status}",
                code="generation_failed",
                extra={"generation": generation.pk, "error": error},
            )
        lease.heartbeat(done=2)
        with transaction.atomic():
            now = timezone.now()
            export = RepositoryExport.objects.create(
                generated=generation,
                provider=adoption.provider,
                connection=adoption.connection,
                target={**adoption.target, "adopted": True},
                target_key=adoption.target_key,
                branch=branch,
                remote_url=repository.clone_url,
                web_url=repository.web_url,
                commit_sha=head,
                remote_repo_id=repository.repo_id,
                remote_full_name=repository.full_name,
                pushed=False,
                status=JobStatus.COMPLETED,
                started_at=now,
                finished_at=now,
                created_by=adoption.created_by,
            )
            record(export=export)
            if not lease.finish(JobStatus.COMPLETED, progress_done=3, progress_total=3):
                raise LeaseLost("lease lost before finishing")
    except LeaseLost:
        logger.warning("adoption %s: lease lost", adoption_id)
    except ApplicationError as exc:
        message = redact(exc.message, secrets)
        job_log(Adoption, adoption_id, f"ERROR {exc.code}: {message}")
        lease.finish(JobStatus.FAILED, error=error_payload(exc.code, message, exc.extra or None))
    except SoftTimeLimitExceeded:
        lease.finish(JobStatus.FAILED, error=error_payload("time_limit", "The adoption took too long."))
    adoption.refresh_from_db()
    return adoption


def _read_answers(git_dir: Path, *, url: str, branch: str, auth: GitAuth | None) -> tuple[str, Any]:
    init_scratch(git_dir)
    heads = fetch_heads(git_dir, url=url, branches=[branch], auth=auth)
    if branch not in heads:
        raise AdoptionFailed(f"The repository has no branch '{branch}'.", code="target_branch_missing", status_code=409)
    tree = list_tree(git_dir, heads[branch])
    names = [name for name in (*COPIER_FILES, CRUFT_FILE) if name in tree]
    blobs = read_blobs(git_dir, [tree[name].oid for name in names], max_bytes=MAX_BYTES)
    files = {name: blobs[tree[name].oid] for name in names if tree[name].oid in blobs}
    recorded = find_answers(files)
    if recorded is None:
        too_big = [name for name in names if name not in files]
        reason = f"{too_big[0]} is larger than {MAX_BYTES} bytes" if too_big else "no answers file"
        raise AdoptionFailed(
            f"The repository's {branch} branch has {reason}: Kiln adopts repositories made by Copier "
            f"({COPIER_FILES[0]}) or cruft ({CRUFT_FILE}).",
            code="no_answers_file",
        )
    return heads[branch], recorded
