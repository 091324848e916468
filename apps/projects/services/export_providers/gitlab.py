"""`gitlab`: create a project with python-gitlab and push the generated commit to it.

The namespace (a group path, nested paths too) is resolved to its id first; no namespace
means the token user's personal namespace. python-gitlab's own 429 retries are off so
Kiln's capped policy applies; python-gitlab's errors keep no response, so the client
remembers the headers of the last answer and hangs them on the error, where `classify`
reads `Retry-After` / `RateLimit-Reset` (GitLab's "Rate limits" docs).

GitLab reports no default branch until the first push, and only GitLab itself (not every
server speaking its API) makes the first pushed branch the default, so after the push
Kiln reads the project back and sets `default_branch` when it differs.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import gitlab
import requests
from django.conf import settings
from gitlab.exceptions import (
    GitlabAuthenticationError,
    GitlabCreateError,
    GitlabDeleteError,
    GitlabError,
    GitlabGetError,
)
from gitlab.v4.objects import Project as GitlabProject

from apps.projects.models import Provider, ProviderConnection, RepositoryExport
from apps.projects.services.export_providers.common import (
    build_and_push,
    check_provider_url,
    clean_repository,
    created_by_this_export,
    name_taken,
    namespace_not_found,
    note_create_request,
)
from apps.projects.services.git_names import (
    validate_namespace,
)
from apps.projects.services.gitops import GitAuth
from apps.projects.services.repository_exporter import (
    CleanTarget,
    ExistingRepository,
    ExportContext,
    ExportFailed,
    ExportResult,
    Proposal,
    ProposalRef,
    ProposalRequest,
    Retry,
    register_provider,
    retry_after_seconds,
    with_retries,
)
from core.exceptions import ApplicationError, ValidationFailed

REPOSITORY_FIELDS = {"namespace", "name", "visibility", "description", "default_branch"}

# GitLab's project path rules ("Projects API" / "Reserved project and group names"): letters,
# digits, '_', '-' and '.'; no special character first, last or twice in a row; not ending in
# '.git' or '.atom'. Kiln sends the repository name as both `name` and `path`, and every valid
# path is also a valid project name.
PATH_RE = re.compile(r"^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$")
PATH_SUFFIXES = (".git", ".atom")
# "Reserved project names" (the one-segment ones; '-' already fails PATH_RE).
RESERVED_PATHS = frozenset(
    [
        "badges",
        "blame",
        "blob",
        "builds",
        "commits",
        "create",
        "create_dir",
        "edit",
        "files",
        "find_file",
        "new",
        "preview",
        "raw",
        "refs",
        "tree",
        "update",
        "wikis",
    ]
)
PATH_MESSAGE = (
    "GitLab project paths use letters, digits, '_', '-' and '.', must start and end with a letter or digit, "
    "must not contain two special characters in a row and must not end in '.git' or '.atom'."
)
# 400 keys under which GitLab reports that a project of this name or path exists.
CLASH_FIELDS = ("name", "path", "project_namespace.name")
TAKEN = "has already been taken"
# A 429 that says nothing about when to come back.
DEFAULT_RATE_LIMIT_WAIT = 60.0


def base_url(connection: ProviderConnection | None) -> str:
    return (connection.base_url if connection and connection.base_url else settings.KILN_GITLAB_URL).rstrip("/")


class CrossOriginRedirect(requests.RequestException):
    """GitLab's API answered with a redirect to another origin."""


class _SameOriginSession(requests.Session):
    """Follows redirects only within the origin it was sent to.

    python-gitlab authenticates with a `PRIVATE-TOKEN` header, which requests carries across a
    redirect to another host (it strips only `Authorization`), and the new host would skip the
    private-network check made on the connection's URL. Another origin is refused instead.
    """

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        source = response.request.url or ""
        if self.should_strip_auth(source, prepared_request.url or ""):
            raise CrossOriginRedirect(
                f"GitLab redirected {response.request.method} {source} to another origin "
                f"({prepared_request.url}); Kiln does not follow it with the token."
            )
        super().rebuild_auth(prepared_request, response)


class _Gitlab(gitlab.Gitlab):
    """python-gitlab with its own 429/5xx sleeping switched off and response headers kept.

    These options are per request in python-gitlab (the constructor hands unknown
    arguments to the HTTP backend), so they are forced here, in the one place all
    requests pass; Kiln's capped `with_retries` policy decides instead. python-gitlab's
    `GitlabError` carries only the message, status and body, so a session hook keeps the
    last response's headers and a failing request attaches them to the error as
    `response_headers` (python-gitlab re-raises it as the `__cause__` of its own error).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("session", _SameOriginSession())
        super().__init__(*args, **kwargs)
        self.last_response_headers: dict[str, str] = {}
        self.session.hooks.setdefault("response", []).append(self._remember_headers)

    def _remember_headers(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.last_response_headers = dict(response.headers)

    def http_request(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["obey_rate_limit"] = False
        kwargs["max_retries"] = 0
        kwargs["retry_transient_errors"] = False
        self.last_response_headers = {}
        try:
            return super().http_request(*args, **kwargs)
        except GitlabError as exc:
            exc.response_headers = dict(self.last_response_headers)  # type: ignore[attr-defined]
            raise


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


def response_headers(exc: BaseException) -> dict[str, str]:
    """The headers `_Gitlab` attached to this error or to the one it was raised from."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            break
        headers = getattr(seen, "response_headers", None)
        if isinstance(headers, dict):
            return headers
        seen = seen.__cause__ or seen.__context__
    return {}


def is_clash(exc: GitlabError) -> bool:
    """Did creating the project fail because a project (or group) of that name/path exists?

    GitLab's REST docs list `409 Conflict` for "creating a project with a name that
    already exists"; GitLab itself answers 400 with `has already been taken` under
    `name`, `path` or `project_namespace.name`.
    """
    if exc.response_code == 409:
        return True
    if exc.response_code != 400:
        return False
    message = exc.error_message
    if isinstance(message, dict):
        for key in CLASH_FIELDS:
            value = message.get(key)
            values = value if isinstance(value, list) else [value]
            if any(isinstance(v, str) and TAKEN in v for v in values):
                return True
        return False
    return TAKEN in str(message)


def is_namespace_refusal(exc: GitlabError) -> bool:
    """GitLab's answer to a create in a namespace the token user may not create projects in:
    400 `{"message": {"namespace": ["is not valid"]}}` (Projects::CreateService), or 403."""
    if exc.response_code == 403:
        return True
    if exc.response_code != 400:
        return False
    message = exc.error_message
    if isinstance(message, dict):
        return "namespace" in message or "namespace_id" in message
    text = str(message).lower()
    return "namespace" in text and "is not valid" in text


def classify(exc: BaseException) -> Retry | ApplicationError:
    if isinstance(exc, GitlabAuthenticationError):
        return ExportFailed("GitLab rejected the token (401 Unauthorized).", code="invalid_token", status_code=401)
    if isinstance(exc, GitlabError):
        code = exc.response_code or 0
        if code == 429:
            wait = retry_after_seconds(response_headers(exc))
            if wait is None:
                wait = DEFAULT_RATE_LIMIT_WAIT
            return Retry(
                wait=wait,
                error=ExportFailed(
                    f"GitLab's rate limit was hit; it asks to wait {round(wait)} s. Try the export again later.",
                    code="rate_limited",
                    status_code=429,
                    extra={"retry_after": round(wait)},
                ),
            )
        if code >= 500:
            return Retry()
        if code == 403:
            return ExportFailed(
                "GitLab refused the request (403 Forbidden).", code="permission_denied", status_code=403
            )
        if code == 404:
            return ExportFailed("GitLab could not find the namespace or project.", code="not_found", status_code=404)
        return ExportFailed(f"GitLab rejected the request ({code}): {exc.error_message}", code="provider_error")
    if isinstance(exc, CrossOriginRedirect):
        return ExportFailed(str(exc), code="provider_error", status_code=502)
    if isinstance(exc, (requests.Timeout, requests.ConnectionError)):
        return Retry()
    return ExportFailed(f"Unexpected error talking to GitLab: {type(exc).__name__}", code="provider_error")


def validate_gitlab_path(name: str, *, field: str = "repository.name") -> str:
    if not PATH_RE.match(name) or name.lower().endswith(PATH_SUFFIXES):
        raise ValidationFailed(PATH_MESSAGE, code="invalid_repo_name", extra={"fields": {field: [PATH_MESSAGE]}})
    if name.lower() in RESERVED_PATHS:
        message = f"'{name}' is a reserved GitLab project name; choose another name."
        raise ValidationFailed(message, code="invalid_repo_name", extra={"fields": {field: [message]}})
    return name


@register_provider
class GitLabProvider:
    id = "gitlab"
    needs_connection = True
    connection_provider: str | None = Provider.GITLAB
    git_username = "oauth2"

    def delete_repository(
        self, *, connection: ProviderConnection | None, token: str, remote_repo_id: str, full_name: str
    ) -> str:
        return delete_project(connection=connection, token=token, remote_repo_id=remote_repo_id, full_name=full_name)

    def clean_target(self, data: dict[str, Any], *, connection: ProviderConnection | None) -> CleanTarget:
        repo, target, branch = clean_repository(data, label="GitLab", fields=REPOSITORY_FIELDS, max_description=2000)
        validate_gitlab_path(target["name"])
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
        self._ensure_default_branch(ctx, gl, project.id)
        return ExportResult(
            remote_url=clone_url,
            web_url=project.web_url,
            commit_sha=commit,
            pushed=pushed,
            remote_repo_id=str(project.id),
            remote_full_name=project.path_with_namespace,
        )

    def propose(self, request: ProposalRequest) -> Proposal:
        """Open the merge request for an update branch, or update the open one (never a second one).

        `GET /projects/:id/merge_requests?source_branch=...&target_branch=...&state=opened` finds an
        open one; else `POST .../merge_requests`. Conflicts make it a draft the GitLab way, a
        `Draft:` title prefix, which a re-run without conflicts removes again. A create that
        loses a race answers 409 "Another open merge request already exists": that one is used.
        """
        gl = client(request.connection, request.token)
        if not request.repository_id.isdigit():
            raise ExportFailed("The export recorded no GitLab project id.", code="not_exported", status_code=409)
        project = gl.projects.get(int(request.repository_id), lazy=True)
        title = f"Draft: {request.title}" if request.draft else request.title
        opened: list[bool] = []

        def find() -> Any:
            found = project.mergerequests.list(
                source_branch=request.head, target_branch=request.base, state="opened", get_all=False
            )
            return found[0] if found else None

        def create() -> Any:
            payload = {
                "source_branch": request.head,
                "target_branch": request.base,
                "title": title,
                "description": request.body,
            }
            try:
                created = project.mergerequests.create(payload)
            except GitlabCreateError as exc:
                found = find() if exc.response_code == 409 else None
                if found is None:
                    raise
                return found
            opened.append(True)
            return created

        mr = with_retries(find, classify=classify, what="looking for the merge request")
        if mr is None:
            mr = with_retries(create, classify=classify, what="opening the merge request")
        if mr.title != title or (mr.description or "") != request.body:
            mr.title = title
            mr.description = request.body
            with_retries(mr.save, classify=classify, what="updating the merge request")
        number, url = int(mr.iid), str(mr.web_url)
        request.log(f"merge request !{number} {'opened' if opened else 'updated'}: {url}")
        return Proposal(number=number, url=url, created=bool(opened))

    def lookup(
        self, target: dict[str, Any], *, connection: ProviderConnection | None, token: str | None
    ) -> ExistingRepository:
        """`GET /projects/:namespace%2F:name` (namespace: the target's, else the token user's)."""
        assert token is not None
        gl = client(connection, token)
        namespace = target.get("namespace")
        if not namespace:
            with_retries(gl.auth, classify=classify, what="reading the token user")
            assert gl.user is not None
            namespace = gl.user.username
        full_path = f"{namespace}/{target['name']}"

        def find() -> Any:
            try:
                return gl.projects.get(full_path)
            except GitlabGetError as exc:
                if exc.response_code == 404:
                    return None
                raise

        project = with_retries(find, classify=classify, what="reading the project")
        if project is None:
            raise ExportFailed(
                f"GitLab has no project {full_path} the token can see.", code="not_found", status_code=404
            )
        return ExistingRepository(
            clone_url=check_provider_url(project.http_url_to_repo, what="http_url_to_repo"),
            web_url=project.web_url,
            full_name=project.path_with_namespace,
            repo_id=str(project.id),
            default_branch=getattr(project, "default_branch", None) or "main",
        )

    def proposal_state(self, ref: ProposalRef) -> str:
        """`GET /projects/:id/merge_requests/:iid`: merged, closed (or locked) or open."""
        gl = client(ref.connection, ref.token)
        project = gl.projects.get(int(ref.repository_id), lazy=True)
        mr = with_retries(
            lambda: project.mergerequests.get(int(ref.number)), classify=classify, what="reading the merge request"
        )
        state = str(getattr(mr, "state", ""))
        return "merged" if state == "merged" else "open" if state == "opened" else "closed"

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
                        raise namespace_not_found(f"GitLab namespace '{namespace}'") from None
                    raise

            resolved = with_retries(resolve, classify=classify, what="resolving the namespace", ctx=ctx)
            payload["namespace_id"] = resolved.id
            namespace_path = resolved.full_path
        else:
            with_retries(gl.auth, classify=classify, what="reading the token user", ctx=ctx)
            assert gl.user is not None
            namespace_path = gl.user.username

        full_path = f"{namespace_path}/{target['name']}"
        ctx.record(remote_full_name=full_path)  # the intent, before creating

        def create_or_adopt() -> GitlabProject:
            earlier = note_create_request(ctx)
            try:
                return gl.projects.create(payload)  # type: ignore[return-value]
            except GitlabError as exc:
                if is_clash(exc):
                    # the path was taken before this request: only an earlier one of ours made it
                    return self._adopt_existing(ctx, gl, full_path, since=earlier)
                if is_namespace_refusal(exc):
                    raise ExportFailed(
                        f"The GitLab token cannot create projects in namespace '{namespace_path}' "
                        f"(GitLab answered {exc.response_code}: {exc.error_message}). Use a namespace where the "
                        "token's user may create projects, or ask a group owner for that permission.",
                        code="permission_denied",
                        status_code=403,
                        extra={"namespace": namespace_path},
                    ) from None
                raise

        project = with_retries(create_or_adopt, classify=classify, what="creating the project", ctx=ctx)
        # with its id, whether this export made it: only such a project may ever be deleted by Kiln
        ctx.record(
            remote_repo_id=str(project.id),
            remote_full_name=project.path_with_namespace,
            repository_created=not ctx.adopted_repository,
        )
        ctx.log(f"project {project.path_with_namespace} (id {project.id}) ready")
        return project

    def _adopt_existing(
        self, ctx: ExportContext, gl: gitlab.Gitlab, full_path: str, *, since: datetime | None
    ) -> GitlabProject:
        taken = name_taken("project", full_path)
        try:
            project = gl.projects.get(full_path)
        except GitlabGetError as exc:
            if exc.response_code == 404:
                # The name or path is taken by something the token cannot read: another
                # user's private project, a subgroup of that path, a project of that name
                # under another path. Not ours in any case.
                raise taken from None
            raise
        ours = RepositoryExport.objects.filter(
            target_key=ctx.export.target_key, provider=self.id, remote_repo_id=str(project.id)
        ).exclude(pk=ctx.export.pk)
        if ours.exists():
            ctx.log(f"project {full_path} was created by an earlier Kiln export to this target; adopting it")
            ctx.adopted_repository = True
            return project
        created_at = _parse_time(getattr(project, "created_at", None))
        if created_by_this_export(
            ctx,
            full_name=project.path_with_namespace,
            created_at=created_at,
            empty=bool(getattr(project, "empty_repo", False)),
            since=since,
        ):
            ctx.log(f"project {full_path} was created by an interrupted delivery of this export; adopting it")
            return project
        raise taken

    def _ensure_default_branch(self, ctx: ExportContext, gl: gitlab.Gitlab, project_id: int) -> None:
        """Make the export's branch the project's default after the push.

        `default_branch` on create only applies with `initialize_with_readme`; GitLab then
        makes the first pushed branch the default (in a background job), but an empty
        project may report none (or the instance's default name) and other servers need
        not follow GitLab there. A 400 right after the push may be GitLab's branch cache
        not knowing the new branch yet, so it is retried (re-reading the project first);
        a 403 is not.
        """
        branch = ctx.export.branch

        def ensure() -> None:
            project = gl.projects.get(project_id)
            current = getattr(project, "default_branch", None)
            if current == branch:
                return
            ctx.log(f"default branch is {current or 'not set'}; setting it to {branch}")
            project.default_branch = branch
            project.save()

        def refused(exc: GitlabError, decision: ExportFailed) -> ExportFailed:
            return ExportFailed(
                f"The commit was pushed to '{branch}', but GitLab would not make it the default branch "
                f"({exc.response_code}: {exc.error_message}).",
                code=decision.code,
                status_code=decision.status_code,
            )

        def classify_update(exc: BaseException) -> Retry | ApplicationError:
            decision = classify(exc)
            if isinstance(decision, ExportFailed) and isinstance(exc, GitlabError):
                if exc.response_code == 400:
                    return Retry(error=refused(exc, decision))
                if exc.response_code == 403:
                    return refused(exc, decision)
            return decision

        with_retries(ensure, classify=classify_update, what="setting the default branch", ctx=ctx)


def delete_project(*, connection: ProviderConnection | None, token: str, remote_repo_id: str, full_name: str) -> str:
    """`DELETE /projects/:id` of a project an export created, by its recorded id (ids are never
    reused); "deleted" (GitLab may keep it marked for deletion a while) or "already_gone"."""
    gl = client(connection, token)

    def delete() -> str:
        try:
            gl.projects.delete(int(remote_repo_id))
        except GitlabDeleteError as exc:
            if exc.response_code == 404:
                return "already_gone"
            raise
        return "deleted"

    return with_retries(delete, classify=classify, what="deleting the project")


def verify(connection: ProviderConnection, token: str) -> str:
    gl = client(connection, token)
    with_retries(gl.auth, classify=classify, what="verifying the token")
    assert gl.user is not None
    return str(gl.user.username)
