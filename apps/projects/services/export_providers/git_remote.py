"""`git`: push to any git remote over https (optional token), or a `file://` path where allowed."""

from __future__ import annotations

from typing import Any

from apps.projects.models import Provider, ProviderConnection
from apps.projects.services.export_providers.common import build_and_push, recheck_user_url
from apps.projects.services.git_names import check_git_url, validate_branch
from apps.projects.services.gitops import GitAuth
from apps.projects.services.repository_exporter import (
    CleanTarget,
    ExistingRepository,
    ExportContext,
    ExportResult,
    register_provider,
)
from core.exceptions import ValidationFailed

ALLOWED = {"provider", "remote_url", "connection", "branch"}


@register_provider
class GitRemoteProvider:
    id = "git"
    needs_connection = False
    connection_provider: str | None = Provider.GIT
    git_username = "x-access-token"

    def clean_target(self, data: dict[str, Any], *, connection: ProviderConnection | None) -> CleanTarget:
        extra = sorted(set(data) - ALLOWED)
        if extra:
            raise ValidationFailed(
                f"Unexpected fields for a git export: {', '.join(extra)}.",
                extra={"fields": {key: ["Not accepted for git exports."] for key in extra}},
            )
        url = data.get("remote_url")
        if not url:
            raise ValidationFailed(
                "remote_url is required for git exports.", extra={"fields": {"remote_url": ["Required."]}}
            )
        check_git_url(url, field="remote_url")
        branch = validate_branch(data.get("branch") or "main")
        return CleanTarget(target={"remote_url": url}, branch=branch, remote_url=url, target_key=f"git|{url}|{branch}")

    def lookup(
        self, target: dict[str, Any], *, connection: ProviderConnection | None, token: str | None
    ) -> ExistingRepository:
        """A plain remote is its URL (checked again before git sees it); its branch is the target's."""
        url = recheck_user_url(target["remote_url"], what="remote_url")
        return ExistingRepository(clone_url=url, web_url="", full_name="", repo_id="", default_branch="")

    def export(self, ctx: ExportContext) -> ExportResult:
        url = recheck_user_url(ctx.export.target["remote_url"], what="remote_url")
        auth = GitAuth("x-access-token", ctx.token) if ctx.token else None
        commit, pushed = build_and_push(ctx, url=url, auth=auth)
        return ExportResult(remote_url=url, web_url="", commit_sha=commit, pushed=pushed)
