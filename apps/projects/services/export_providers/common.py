"""What the git-based providers share: build the deterministic commit and push it."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from django.conf import settings

from apps.projects.services.git_names import validate_remote_url
from apps.projects.services.gitops import GitAuth, GitFailed, build_commit, push_commit
from apps.projects.services.repository_exporter import ExportContext, ExportFailed, backoff
from core.exceptions import ValidationFailed
from core.netguard import check_url

# Right after a repository is created a forge may still answer 404 for a short while.
NOT_READY_ATTEMPTS = 5


def check_provider_url(url: str, *, what: str) -> str:
    """A clone URL taken from a provider response is still checked before git sees it."""
    try:
        validate_remote_url(url, field=what)
        if urlsplit(url).scheme != "file":
            check_url(url, field=what)
    except ValidationFailed as exc:
        raise ExportFailed(f"The provider returned a {what} Kiln will not use: {exc.message}", code=exc.code) from None
    return url


def build_and_push(ctx: ExportContext, *, url: str, auth: GitAuth | None) -> tuple[str, bool]:
    """Build the commit for the export's branch and push it to `url`; returns (sha, pushed)."""
    git_dir = ctx.workspace / "repo.git"
    commit = build_commit(
        root=ctx.files_root,
        files=ctx.files(),
        git_dir=git_dir,
        branch=ctx.export.branch,
        message=ctx.commit_message(),
        timestamp=ctx.commit_timestamp(),
    )
    ctx.log(f"built commit {commit} on {ctx.export.branch}")
    ctx.record(commit_sha=commit)
    for attempt in range(1, NOT_READY_ATTEMPTS + 1):
        ctx.heartbeat()
        try:
            outcome = push_commit(git_dir=git_dir, url=url, branch=ctx.export.branch, commit=commit, auth=auth)
            break
        except GitFailed as exc:
            if exc.code != "remote_not_found" or attempt == NOT_READY_ATTEMPTS:
                raise
            wait = min(backoff(attempt), settings.KILN_PROVIDER_MAX_WAIT)
            ctx.log(f"remote not ready yet; retrying the push in {wait:.1f}s")
            time.sleep(wait)
    ctx.log("pushed" if outcome.pushed else "the remote already had this commit; nothing pushed")
    return commit, outcome.pushed
