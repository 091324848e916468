"""What the git-based providers share: build the deterministic commit and push it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.projects.services.git_names import (
    check_git_url,
    validate_branch,
    validate_repo_name,
    validate_visibility,
)
from apps.projects.services.gitops import GitAuth, GitFailed, build_commit, push_commit
from apps.projects.services.repository_exporter import ExportContext, ExportFailed, backoff
from core.exceptions import ValidationFailed

# Right after a repository is created a forge may still answer 404 for a short while.
NOT_READY_ATTEMPTS = 5
# Clock skew allowed between Kiln and the forge when comparing creation times.
CLOCK_SKEW = timedelta(seconds=120)


def namespace_not_found(what: str) -> ExportFailed:
    """`what` (an organisation, a namespace) does not exist or the token cannot see it."""
    return ExportFailed(
        f"{what} was not found (or the token cannot see it).", code="namespace_not_found", status_code=404
    )


def name_taken(noun: str, full_name: str, *, why: str = "was not created by Kiln for this target") -> ExportFailed:
    """The repository name is in use by something that is not this target's Kiln export."""
    return ExportFailed(
        f"A {noun} named '{full_name}' already exists and {why}. Choose another name or delete that {noun}.",
        code="name_taken",
        status_code=409,
        extra={"hint": f"choose another {noun} name", "repository": full_name},
    )


def note_create_request(ctx: ExportContext) -> datetime | None:
    """Record that a create request is about to leave (the first one's time is kept).

    Returns when an earlier create request of this export left, or None when this is its
    first: a repository that already exists when the first request arrives cannot be ours.
    """
    earlier = ctx.export.create_requested_at
    if earlier is None:
        ctx.record(create_requested_at=timezone.now())
    return earlier


def created_by_this_export(
    ctx: ExportContext, *, full_name: str, created_at: datetime | None, empty: bool, since: datetime | None
) -> bool:
    """Was this existing repository made by a create request of this very export?

    A delivery that dies while its create request is in flight, or a create answered with a
    5xx after the forge did the work, leaves a repository whose id was never recorded. Before
    creating, the export records the name it is about to create and when its first create
    request left (`note_create_request`). A repository of exactly that name, still empty,
    created no earlier than `since` (that request's time, less the clock skew allowed between
    Kiln and the forge) is that request's work and is adopted. `since` is None when no request
    of this export could have made it (the name was taken before the first one): anything
    else is someone else's.
    """
    intended = ctx.export.remote_full_name
    if not empty or since is None or created_at is None or intended.lower() != full_name.lower():
        return False
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    return created_at >= since - CLOCK_SKEW


def check_provider_url(url: str, *, what: str) -> str:
    """A clone URL taken from a provider response is still checked before git sees it."""
    return _recheck_url(url, what=what, refused=f"The provider returned a {what} Kiln will not use")


def recheck_user_url(url: str, *, what: str) -> str:
    """A URL the user gave when the export was requested, checked again before git sees it.

    It passed when it was recorded; settings or DNS may have changed since (a retried export
    runs later), and the error must say that, not blame a provider that never sent it.
    """
    return _recheck_url(url, what=what, refused=f"The {what} of this export is no longer allowed")


def _recheck_url(url: str, *, what: str, refused: str) -> str:
    try:
        check_git_url(url, field=what)
    except ValidationFailed as exc:
        raise ExportFailed(f"{refused}: {exc.message}", code=exc.code) from None
    return url


def build_and_push(ctx: ExportContext, *, url: str, auth: GitAuth | None) -> tuple[str, bool]:
    """Build the commit for the export's branch and push it to `url`; returns (sha, pushed)."""
    git_dir = ctx.workspace / "repo.git"
    commit = build_commit(
        files=ctx.files(),
        read_many=ctx.read_many,
        git_dir=git_dir,
        branch=ctx.export.branch,
        message=ctx.commit_message(),
        timestamp=ctx.commit_timestamp(),
    )
    ctx.log(f"built commit {commit} on {ctx.export.branch}")
    ctx.record(commit_sha=commit)
    # A forge may answer 404 for a moment after creating the repository, and 429/5xx or a
    # dropped connection while busy: those pushes are tried again (never forced: the remote
    # is read first on every attempt), everything else fails at once.
    attempts = {"remote_not_found": NOT_READY_ATTEMPTS, "remote_unavailable": settings.KILN_PROVIDER_MAX_ATTEMPTS}
    attempt = 0
    while True:
        attempt += 1
        ctx.heartbeat()
        try:
            outcome = push_commit(git_dir=git_dir, url=url, branch=ctx.export.branch, commit=commit, auth=auth)
            break
        except GitFailed as exc:
            if attempt >= attempts.get(exc.code, 1):
                raise
            wait = min(backoff(attempt), settings.KILN_PROVIDER_MAX_WAIT)
            reason = "remote not ready yet" if exc.code == "remote_not_found" else "remote unavailable"
            ctx.log(f"{reason}; retrying the push in {wait:.1f}s")
            time.sleep(wait)
    ctx.log("pushed" if outcome.pushed else "the remote already had this commit; nothing pushed")
    return commit, outcome.pushed


def clean_repository(
    data: dict[str, Any], *, label: str, fields: set[str], max_description: int
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The checks GitHub and GitLab targets share: allowed keys, name, visibility,
    description and default branch. Returns (raw repository dict, target, branch)."""
    extra = sorted(set(data) - {"provider", "connection", "repository"})
    if extra:
        raise ValidationFailed(
            f"Unexpected fields for a {label} export: {', '.join(extra)}.",
            extra={"fields": {key: [f"Not accepted for {label} exports."] for key in extra}},
        )
    repo = data.get("repository")
    if not isinstance(repo, dict) or not repo.get("name"):
        raise ValidationFailed(
            f"repository.name is required for {label} exports.", extra={"fields": {"repository.name": ["Required."]}}
        )
    unknown = sorted(set(repo) - fields)
    if unknown:
        raise ValidationFailed(
            f"Unknown repository fields: {', '.join(unknown)}.",
            extra={"fields": {f"repository.{key}": ["Unknown field."] for key in unknown}},
        )
    target: dict[str, Any] = {"name": validate_repo_name(repo["name"])}
    target["visibility"] = validate_visibility(repo.get("visibility") or "private")
    description = repo.get("description") or ""
    if not isinstance(description, str) or len(description) > max_description:
        raise ValidationFailed(
            f"repository.description must be at most {max_description} characters.",
            extra={"fields": {"repository.description": ["Too long."]}},
        )
    target["description"] = description
    branch = validate_branch(repo.get("default_branch") or "main", field="repository.default_branch")
    return repo, target, branch
