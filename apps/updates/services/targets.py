"""The fleet of a template: every repository Kiln exported (or adopted) from it, and where each is.

A *target* is a completed GitHub, GitLab or git export. Its *current generation* is the one its
default branch holds: the export's own generation, or the new generation of the latest update
whose result reached the default branch (its pull/merge request merged, or its commit on the
branch). While an update's result is still a proposal, the target stays at that update's base
and the update is its *open update*; an update's result that was closed unmerged is ignored.

Only workers ask the provider or git what became of a proposal (`observe=True`, before a
rollout starts an item); web requests (drift) read what was last observed.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.utils import timezone

from apps.projects.models import ExportProvider, GeneratedProject, RepositoryExport, Role
from apps.projects.selectors import projects_with_role, role_at_least
from apps.projects.services.export_providers.common import check_provider_url, recheck_user_url
from apps.projects.services.gitops import GitAuth, branch_contains, init_scratch
from apps.projects.services.repository_exporter import ProposalRef, get_proposer, git_username
from apps.templates.models import ProjectTemplate
from apps.updates.models import TemplateUpdate, UpdateOutcome
from core.exceptions import ApplicationError
from core.jobs import JobStatus

logger = logging.getLogger("kiln.updates")

GIT_TARGETS = ("github", "gitlab", "git")
PUSHED_OUTCOMES = (UpdateOutcome.PROPOSED, UpdateOutcome.PUSHED, UpdateOutcome.UP_TO_DATE)


@dataclass
class Target:
    export: RepositoryExport
    generated: GeneratedProject  # the current generation
    open_update: TemplateUpdate | None  # the latest update whose result is still a proposal
    role: str


def _pushed(export_ids: Iterable[int]) -> dict[int, list[TemplateUpdate]]:
    """Each export's completed updates that pushed a result, newest first."""
    found: dict[int, list[TemplateUpdate]] = {}
    rows = (
        TemplateUpdate.objects.filter(export_id__in=list(export_ids), status=JobStatus.COMPLETED)
        .filter(outcome__in=PUSHED_OUTCOMES, new_generation__status=JobStatus.COMPLETED)
        .select_related("new_generation", "generated", "export__connection")
        .order_by("export_id", "-finished_at", "-id")
    )
    for update in rows:
        found.setdefault(update.export_id, []).append(update)
    return found


def _resolve(
    export: RepositoryExport, updates: list[TemplateUpdate], *, observe: bool
) -> tuple[GeneratedProject, TemplateUpdate | None]:
    open_update: TemplateUpdate | None = None
    for update in updates:  # newest first
        if update.merged_at is None and observe and update.proposal_state != "closed":
            observe_update(update)
        if update.merged_at is not None:
            assert update.new_generation is not None
            return update.new_generation, open_update
        if update.proposal_state == "closed":
            continue
        if open_update is None:
            open_update = update
    return (open_update.generated if open_update is not None else export.generated), open_update


def resolve(export: RepositoryExport, *, observe: bool = False) -> tuple[GeneratedProject, TemplateUpdate | None]:
    """(current generation, open update) of one target."""
    return _resolve(export, _pushed([export.pk]).get(export.pk, []), observe=observe)


def targets_of(
    template: ProjectTemplate, *, actor: Any, minimum: str = Role.VIEWER, observe: bool = False
) -> list[Target]:
    """Targets of `template` in the caller's projects where the caller has at least `minimum`."""
    roles = {p.pk: getattr(p, "caller_role", None) for p in projects_with_role(actor)}
    projects = {pk: role for pk, role in roles.items() if role is not None and role_at_least(role, minimum)}
    exports = list(
        RepositoryExport.objects.filter(
            generated__template=template,
            generated__project_id__in=projects,
            status=JobStatus.COMPLETED,
            provider__in=GIT_TARGETS,
        )
        .select_related("generated__project", "generated__template", "connection")
        .order_by("generated__project_id", "id")
    )
    # one target per repository: a second export to the same target is the same repository
    by_key: dict[tuple[int, str], RepositoryExport] = {}
    for export in exports:
        key = (export.generated.project_id, export.target_key or export.remote_url or f"export:{export.pk}")
        if key not in by_key or export.pk > by_key[key].pk:
            by_key[key] = export
    chosen = sorted(by_key.values(), key=lambda e: (e.generated.project_id, e.pk))
    pushed = _pushed({e.pk for e in chosen})
    targets = []
    for export in chosen:
        generation, open_update = _resolve(export, pushed.get(export.pk, []), observe=observe)
        targets.append(Target(export, generation, open_update, projects[export.generated.project_id]))
    return targets


@dataclass
class Access:
    url: str
    auth: GitAuth | None
    token: str | None
    branch: str


def target_access(export: RepositoryExport) -> Access:
    """The target's clone URL (checked again before git sees it) and git credentials."""
    from apps.projects.services.secrets import SecretUnreadable, decrypt_secret

    if not export.remote_url:
        raise ApplicationError("The export recorded no remote URL.", code="not_exported", status_code=409)
    if export.provider == ExportProvider.GIT:
        url = recheck_user_url(export.remote_url, what="remote_url")
    else:
        url = check_provider_url(export.remote_url, what="clone URL")
    token = None
    if export.connection_id is not None:
        assert export.connection is not None
        try:
            token = decrypt_secret(export.connection.token_encrypted)
        except SecretUnreadable:
            raise ApplicationError(
                "The connection's token cannot be decrypted (was KILN_FERNET_KEY changed?); add the token again.",
                code="connection_unreadable",
                status_code=422,
            ) from None
    elif export.provider != ExportProvider.GIT:
        raise ApplicationError(
            "The connection this export used was deleted; the repository cannot be reached.",
            code="connection_missing",
            status_code=409,
        )
    auth = GitAuth(git_username(export.provider), token) if token else None
    return Access(url=url, auth=auth, token=token, branch=export.branch or "main")


def observe_update(update: TemplateUpdate) -> str:
    """Ask what became of an update's result (the provider for a pull/merge request, git for a
    branch) and record it; returns `open`, `closed` or `merged`. Failures leave it unknown (open)."""
    export = update.export
    state = "open"
    try:
        access = target_access(export)
        proposer = get_proposer(export.provider)
        if update.pull_request and proposer is not None and access.token is not None:
            state = proposer.proposal_state(
                ProposalRef(
                    connection=export.connection,
                    token=access.token,
                    repository=export.remote_full_name,
                    repository_id=export.remote_repo_id,
                    number=int(update.pull_request["number"]),
                )
            )
        elif update.commit_sha:
            with tempfile.TemporaryDirectory(prefix="kiln-observe-") as scratch:
                git_dir = Path(scratch) / "repo.git"
                init_scratch(git_dir)
                merged = branch_contains(
                    git_dir, url=access.url, branch=access.branch, commit=update.commit_sha, auth=access.auth
                )
            state = "merged" if merged else "open"
    except ApplicationError as exc:
        logger.info("update %s: could not observe its result (%s)", update.pk, exc.code)
        return "open"
    fields: dict[str, Any] = {"proposal_state": state}
    if state == "merged":
        fields["merged_at"] = timezone.now()
    TemplateUpdate.objects.filter(pk=update.pk).update(**fields)
    for name, value in fields.items():
        setattr(update, name, value)
    return state
