"""`github`: create a repository with PyGithub and push the generated commit to it.

PyGithub's own throttling (0.25 s between requests, 1 s between writes) and its retry
(which sleeps until a rate-limit reset, possibly an hour) are switched off; Kiln's capped
policy in `with_retries` applies instead. Creation is made idempotent with the database:
the repository id is recorded right after creation, a redelivered export adopts it, and
a name clash is adopted only when the existing repository is one a Kiln export to the
same target created (its id is on record); anything else is `name_taken`.
"""

from __future__ import annotations

from typing import Any

import requests
from django.conf import settings
from github import Auth, Github, GithubException
from github.GithubException import BadCredentialsException, RateLimitExceededException, UnknownObjectException
from github.Repository import Repository

from apps.projects.models import Provider, ProviderConnection, RepositoryExport
from apps.projects.services.export_providers.common import (
    build_and_push,
    check_provider_url,
    clean_repository,
    created_by_this_export,
)
from apps.projects.services.git_names import (
    validate_owner,
    validate_topics,
)
from apps.projects.services.gitops import GitAuth
from apps.projects.services.repository_exporter import (
    CleanTarget,
    ExportContext,
    ExportFailed,
    ExportResult,
    Retry,
    register_provider,
    retry_after_seconds,
    with_retries,
)
from core.exceptions import ApplicationError

REPOSITORY_FIELDS = {"owner", "name", "visibility", "description", "default_branch", "topics"}


def api_url(connection: ProviderConnection | None) -> str:
    return (connection.base_url if connection and connection.base_url else settings.KILN_GITHUB_API_URL).rstrip("/")


def client(connection: ProviderConnection | None, token: str) -> Github:
    return Github(
        auth=Auth.Token(token),
        base_url=api_url(connection),
        timeout=int(settings.KILN_PROVIDER_TIMEOUT),
        retry=None,
        seconds_between_requests=None,
        seconds_between_writes=None,
        per_page=100,
    )


def _message(exc: GithubException) -> str:
    data = exc.data if isinstance(exc.data, dict) else {}
    message = str(data.get("message") or "")
    errors = data.get("errors") or []
    details = "; ".join(str(e.get("message") or e.get("code")) for e in errors if isinstance(e, dict))
    return f"{message} ({details})" if details else message


def classify(exc: BaseException) -> Retry | ApplicationError:
    if isinstance(exc, BadCredentialsException):
        return ExportFailed("GitHub rejected the token (401 Bad credentials).", code="invalid_token", status_code=401)
    if isinstance(exc, RateLimitExceededException) or (isinstance(exc, GithubException) and exc.status == 429):
        headers = dict(exc.headers or {})  # type: ignore[union-attr]
        wait = retry_after_seconds(headers)
        return Retry(wait=wait if wait is not None else 60.0)
    if isinstance(exc, GithubException):
        if exc.status >= 500:
            return Retry()
        if exc.status == 403:
            return ExportFailed(
                f"GitHub refused the request: {_message(exc)}", code="permission_denied", status_code=403
            )
        if exc.status == 404:
            return ExportFailed("GitHub could not find the owner or repository.", code="not_found", status_code=404)
        return ExportFailed(f"GitHub rejected the request ({exc.status}): {_message(exc)}", code="provider_error")
    if isinstance(exc, (requests.Timeout, requests.ConnectionError)):
        return Retry()
    return ExportFailed(f"Unexpected error talking to GitHub: {type(exc).__name__}", code="provider_error")


def _name_exists(exc: GithubException) -> bool:
    if exc.status != 422:
        return False
    errors = (exc.data or {}).get("errors", []) if isinstance(exc.data, dict) else []
    return any("already exists" in str(e.get("message", "")) for e in errors if isinstance(e, dict))


@register_provider
class GitHubProvider:
    id = "github"
    needs_connection = True
    connection_provider: str | None = Provider.GITHUB

    def clean_target(self, data: dict[str, Any], *, connection: ProviderConnection | None) -> CleanTarget:
        repo, target, branch = clean_repository(data, label="GitHub", fields=REPOSITORY_FIELDS, max_description=350)
        if repo.get("owner"):
            target["owner"] = validate_owner(repo["owner"])
        target["topics"] = validate_topics(repo.get("topics") or [])
        assert connection is not None
        owner_key = target.get("owner") or f"connection:{connection.pk}"
        key = f"github|{api_url(connection)}|{owner_key.lower()}|{target['name'].lower()}"
        return CleanTarget(target=target, branch=branch, target_key=key)

    def export(self, ctx: ExportContext) -> ExportResult:
        assert ctx.token is not None
        gh = client(ctx.connection, ctx.token)
        repo = self._repository(ctx, gh)
        clone_url = check_provider_url(repo.clone_url, what="clone_url")
        ctx.record(remote_url=clone_url, web_url=repo.html_url)
        topics = ctx.export.target.get("topics") or []
        if topics:
            with_retries(lambda: repo.replace_topics(topics), classify=classify, what="setting topics", ctx=ctx)
        commit, pushed = build_and_push(ctx, url=clone_url, auth=GitAuth("x-access-token", ctx.token))
        if repo.default_branch != ctx.export.branch:
            with_retries(
                lambda: repo.edit(default_branch=ctx.export.branch),
                classify=classify,
                what="setting the default branch",
                ctx=ctx,
            )
        return ExportResult(
            remote_url=clone_url,
            web_url=repo.html_url,
            commit_sha=commit,
            pushed=pushed,
            remote_repo_id=str(repo.id),
            remote_full_name=repo.full_name,
        )

    def _repository(self, ctx: ExportContext, gh: Github) -> Repository:
        export = ctx.export
        if export.remote_repo_id:
            ctx.log(f"adopting repository {export.remote_full_name} created by an earlier delivery")
            return with_retries(
                lambda: gh.get_repo(int(export.remote_repo_id)),
                classify=classify,
                what="reading the repository",
                ctx=ctx,
            )
        target = export.target
        private = target.get("visibility", "private") != "public"
        kwargs: dict[str, Any] = {"private": private, "auto_init": False}
        if target.get("description"):
            kwargs["description"] = target["description"]
        owner = target.get("owner")

        def create() -> Repository:
            if owner:
                org = gh.get_organization(owner)
                if target.get("visibility") == "internal":
                    kwargs.pop("private")
                    kwargs["visibility"] = "internal"
                return org.create_repo(target["name"], **kwargs)
            return gh.get_user().create_repo(target["name"], **kwargs)

        full_name = with_retries(
            lambda: self._full_name(gh, owner, target["name"]),
            classify=classify,
            what="reading the token user",
            ctx=ctx,
        )
        ctx.record(remote_full_name=full_name)  # the intent, before the create request leaves

        def create_or_adopt() -> Repository:
            try:
                return create()
            except GithubException as exc:
                if _name_exists(exc):
                    return self._adopt_existing(ctx, gh, owner)
                if exc.status == 404 and owner:
                    raise ExportFailed(
                        f"GitHub organisation '{owner}' was not found (or the token cannot see it).",
                        code="namespace_not_found",
                        status_code=404,
                    ) from None
                if exc.status >= 500:
                    existing = self._created_despite_error(ctx, gh, owner)
                    if existing is not None:
                        return existing
                raise

        repo = with_retries(create_or_adopt, classify=classify, what="creating the repository", ctx=ctx)
        ctx.record(remote_repo_id=str(repo.id), remote_full_name=repo.full_name)
        ctx.log(f"repository {repo.full_name} (id {repo.id}) ready")
        return repo

    def _full_name(self, gh: Github, owner: str | None, name: str) -> str:
        return f"{owner}/{name}" if owner else f"{gh.get_user().login}/{name}"

    def _adopt_existing(self, ctx: ExportContext, gh: Github, owner: str | None) -> Repository:
        full_name = self._full_name(gh, owner, ctx.export.target["name"])
        repo = gh.get_repo(full_name)
        ours = RepositoryExport.objects.filter(
            target_key=ctx.export.target_key, provider=self.id, remote_repo_id=str(repo.id)
        ).exclude(pk=ctx.export.pk)
        if ours.exists():
            ctx.log(f"repository {full_name} was created by an earlier Kiln export to this target; adopting it")
            return repo
        if created_by_this_export(ctx, full_name=repo.full_name, created_at=repo.created_at, empty=repo.size == 0):
            ctx.log(f"repository {full_name} was created by an interrupted delivery of this export; adopting it")
            return repo
        raise ExportFailed(
            f"A repository named '{full_name}' already exists and was not created by Kiln for this target. "
            "Choose another name or delete that repository.",
            code="name_taken",
            status_code=409,
            extra={"hint": "choose another repository name", "repository": full_name},
        )

    def _created_despite_error(self, ctx: ExportContext, gh: Github, owner: str | None) -> Repository | None:
        """After a 5xx on create, the repository may exist anyway: adopt it only if this export made it."""
        try:
            repo = gh.get_repo(self._full_name(gh, owner, ctx.export.target["name"]))
        except UnknownObjectException:
            return None
        if created_by_this_export(ctx, full_name=repo.full_name, created_at=repo.created_at, empty=repo.size == 0):
            ctx.log(f"creation answered with an error but {repo.full_name} exists, new and empty; adopting it")
            return repo
        return None


def verify(connection: ProviderConnection, token: str) -> str:
    gh = client(connection, token)
    return with_retries(lambda: gh.get_user().login, classify=classify, what="verifying the token")
