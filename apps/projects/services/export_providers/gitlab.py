"""`gitlab`: create a project with python-gitlab and push the generated commit to it.

The namespace (a group path, nested paths too) is resolved to its id first; no namespace
means the token user's personal namespace. python-gitlab's own 429 retries are off so
Kiln's capped policy applies. GitLab reports no default branch until the first push, so
Kiln pushes an explicit refspec and reads nothing from the create response's branch.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import gitlab
import requests
from django.conf import settings
from gitlab.exceptions import GitlabAuthenticationError, GitlabError, GitlabGetError
from gitlab.v4.objects import Project as GitlabProject

from apps.projects.models import Provider, ProviderConnection, RepositoryExport
from apps.projects.services.export_providers.common import (
    build_and_push,
    check_provider_url,
    clean_repository,
    created_by_this_export,
)
from apps.projects.services.git_names import (
    validate_namespace,
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

REPOSITORY_FIELDS = {"namespace", "name", "visibility", "description", "default_branch"}


def base_url(connection: ProviderConnection | None) -> str:
    return (connection.base_url if connection and connection.base_url else settings.KILN_GITLAB_URL).rstrip("/")


class _Gitlab(gitlab.Gitlab):
    """python-gitlab with its own 429/5xx sleeping switched off for every request.

    These options are per request in python-gitlab (the constructor hands unknown
    arguments to the HTTP backend), so they are forced here, in the one place all
    requests pass; Kiln's capped `with_retries` policy decides instead.
    """

    def http_request(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["obey_rate_limit"] = False
        kwargs["max_retries"] = 0
        kwargs["retry_transient_errors"] = False
        return super().http_request(*args, **kwargs)


def client(connection: ProviderConnection | None, token: str) -> gitlab.Gitlab:
    return _Gitlab(
        base_url(connection),
        private_token=token,
        timeout=settings.KILN_PROVIDER_TIMEOUT,
        retry_transient_errors=False,
    )


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _taken(exc: GitlabError) -> bool:
    message = exc.error_message
    text = str(message)
    return exc.response_code == 400 and "has already been taken" in text


def classify(exc: BaseException) -> Retry | ApplicationError:
    if isinstance(exc, GitlabAuthenticationError):
        return ExportFailed("GitLab rejected the token (401 Unauthorized).", code="invalid_token", status_code=401)
    if isinstance(exc, GitlabError):
        code = exc.response_code or 0
        if code == 429:
            headers = dict(getattr(getattr(exc, "response", None), "headers", {}) or {})
            wait = retry_after_seconds(headers)
            return Retry(wait=wait if wait is not None else 60.0)
        if code >= 500:
            return Retry()
        if code == 403:
            return ExportFailed(
                "GitLab refused the request (403 Forbidden).", code="permission_denied", status_code=403
            )
        if code == 404:
            return ExportFailed("GitLab could not find the namespace or project.", code="not_found", status_code=404)
        return ExportFailed(f"GitLab rejected the request ({code}): {exc.error_message}", code="provider_error")
    if isinstance(exc, (requests.Timeout, requests.ConnectionError)):
        return Retry()
    return ExportFailed(f"Unexpected error talking to GitLab: {type(exc).__name__}", code="provider_error")


@register_provider
class GitLabProvider:
    id = "gitlab"
    needs_connection = True
    connection_provider: str | None = Provider.GITLAB

    def clean_target(self, data: dict[str, Any], *, connection: ProviderConnection | None) -> CleanTarget:
        repo, target, branch = clean_repository(data, label="GitLab", fields=REPOSITORY_FIELDS, max_description=2000)
        if repo.get("namespace"):
            target["namespace"] = validate_namespace(repo["namespace"])
        assert connection is not None
        namespace_key = target.get("namespace") or f"connection:{connection.pk}"
        key = f"gitlab|{base_url(connection)}|{namespace_key.lower()}|{target['name'].lower()}"
        return CleanTarget(target=target, branch=branch, target_key=key)

    def export(self, ctx: ExportContext) -> ExportResult:
        assert ctx.token is not None
        gl = client(ctx.connection, ctx.token)
        project = self._project(ctx, gl)
        clone_url = check_provider_url(project.http_url_to_repo, what="http_url_to_repo")
        ctx.record(remote_url=clone_url, web_url=project.web_url)
        commit, pushed = build_and_push(ctx, url=clone_url, auth=GitAuth("oauth2", ctx.token))
        return ExportResult(
            remote_url=clone_url,
            web_url=project.web_url,
            commit_sha=commit,
            pushed=pushed,
            remote_repo_id=str(project.id),
            remote_full_name=project.path_with_namespace,
        )

    def _project(self, ctx: ExportContext, gl: gitlab.Gitlab) -> GitlabProject:
        export = ctx.export
        if export.remote_repo_id:
            ctx.log(f"adopting project {export.remote_full_name} created by an earlier delivery")
            return with_retries(
                lambda: gl.projects.get(int(export.remote_repo_id)),
                classify=classify,
                what="reading the project",
                ctx=ctx,
            )
        target = export.target
        namespace = target.get("namespace")
        payload: dict[str, Any] = {
            "name": target["name"],
            "path": target["name"],
            "visibility": target.get("visibility", "private"),
            "initialize_with_readme": False,
        }
        if target.get("description"):
            payload["description"] = target["description"]
        namespace_path = namespace
        if namespace:

            def resolve() -> Any:
                try:
                    return gl.namespaces.get(namespace)
                except GitlabGetError as exc:
                    if exc.response_code == 404:
                        raise ExportFailed(
                            f"GitLab namespace '{namespace}' was not found (or the token cannot see it).",
                            code="namespace_not_found",
                            status_code=404,
                        ) from None
                    raise

            resolved = with_retries(resolve, classify=classify, what="resolving the namespace", ctx=ctx)
            payload["namespace_id"] = resolved.id
            namespace_path = resolved.full_path
        else:
            with_retries(gl.auth, classify=classify, what="reading the token user", ctx=ctx)
            assert gl.user is not None
            namespace_path = gl.user.username

        ctx.record(remote_full_name=f"{namespace_path}/{target['name']}")  # the intent, before creating

        def create_or_adopt() -> GitlabProject:
            try:
                return gl.projects.create(payload)  # type: ignore[return-value]
            except GitlabError as exc:
                if _taken(exc):
                    return self._adopt_existing(ctx, gl, f"{namespace_path}/{target['name']}")
                raise

        project = with_retries(create_or_adopt, classify=classify, what="creating the project", ctx=ctx)
        ctx.record(remote_repo_id=str(project.id), remote_full_name=project.path_with_namespace)
        ctx.log(f"project {project.path_with_namespace} (id {project.id}) ready")
        return project

    def _adopt_existing(self, ctx: ExportContext, gl: gitlab.Gitlab, full_path: str) -> GitlabProject:
        project = gl.projects.get(full_path)
        ours = RepositoryExport.objects.filter(
            target_key=ctx.export.target_key, provider=self.id, remote_repo_id=str(project.id)
        ).exclude(pk=ctx.export.pk)
        if ours.exists():
            ctx.log(f"project {full_path} was created by an earlier Kiln export to this target; adopting it")
            return project
        created_at = _parse_time(getattr(project, "created_at", None))
        if created_by_this_export(
            ctx,
            full_name=project.path_with_namespace,
            created_at=created_at,
            empty=bool(getattr(project, "empty_repo", False)),
        ):
            ctx.log(f"project {full_path} was created by an interrupted delivery of this export; adopting it")
            return project
        raise ExportFailed(
            f"A project '{full_path}' already exists and was not created by Kiln for this target. "
            "Choose another name or delete that project.",
            code="name_taken",
            status_code=409,
            extra={"hint": "choose another project name", "repository": full_path},
        )


def verify(connection: ProviderConnection, token: str) -> str:
    gl = client(connection, token)
    with_retries(gl.auth, classify=classify, what="verifying the token")
    assert gl.user is not None
    return str(gl.user.username)
