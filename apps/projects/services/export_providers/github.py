"""`github`: create a repository through GitHub's documented REST paths and push the generated commit.

Every request is one GitHub's REST docs list, with a path Kiln builds from names it knows
(`GET /user`, `GET /orgs/{org}`, `POST /user/repos` or `POST /orgs/{org}/repos`,
`GET`/`PATCH /repos/{owner}/{repo}`, `PUT .../topics`), never from the `url` links in a
response: a GitHub Enterprise Server or an emulator under a path prefix answers those
paths whatever links its bodies carry. PyGithub's Requester is the HTTP client (auth,
timeouts, errors as `GithubException` with status, body and headers); its throttling (0.25 s
between requests, 1 s between writes) and its retry (which sleeps until a rate-limit
reset, possibly an hour) are switched off and Kiln's capped policy in `with_retries`
applies instead, with GitHub's documented rate-limit rules (`rate_limit_wait`).

Creation is made idempotent with the database: the repository id is recorded right after
creation and a redelivered export adopts it, looked up by its recorded full name. A name
clash is adopted only when the existing repository is one a Kiln export to the same
target created (its id is on record) or an interrupted delivery of this export made it;
anything else, including a repository the token cannot see, is `name_taken`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests
from django.conf import settings
from github import Auth, Github, GithubException
from github.GithubException import RateLimitExceededException

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
    validate_owner,
    validate_topics,
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

REPOSITORY_FIELDS = {"owner", "name", "visibility", "description", "default_branch", "topics"}
# The media type GitHub's REST docs ask clients to send.
MEDIA_TYPE = "application/vnd.github+json"
# GitHub's docs: a rate-limited answer with neither `retry-after` nor a spent primary limit
# means "wait at least one minute".
SECONDARY_LIMIT_WAIT = 60.0
INTERNAL_NEEDS_ORG = (
    "Visibility 'internal' exists only for organisation repositories: set repository.owner to an "
    "organisation, or choose 'private' or 'public'."
)
UNREADABLE_REPOSITORY = "GitHub answered with a repository document Kiln cannot read."


class BearerToken(Auth.Token):
    """`Authorization: Bearer <token>`, as GitHub's REST docs write it (`Auth.Token` sends `token <token>`)."""

    @property
    def token_type(self) -> str:
        return "Bearer"


def api_url(connection: ProviderConnection | None) -> str:
    return (connection.base_url if connection and connection.base_url else settings.KILN_GITHUB_API_URL).rstrip("/")


def client(connection: ProviderConnection | None, token: str) -> Github:
    return Github(
        auth=BearerToken(token),
        base_url=api_url(connection),
        timeout=int(settings.KILN_PROVIDER_TIMEOUT),
        retry=None,
        seconds_between_requests=None,
        seconds_between_writes=None,
        per_page=100,
    )


def target_key(connection: ProviderConnection, owner: str | None, name: str) -> str:
    owner_key = owner or f"connection:{connection.pk}"
    return f"github|{api_url(connection)}|{owner_key.lower()}|{name.lower()}"


def repo_path(full_name: str) -> str:
    """`/repos/{owner}/{repo}` for a full name, each part percent-encoded."""
    owner, sep, name = full_name.partition("/")
    if not sep or not owner or not name or "/" in name:
        raise ExportFailed(
            f"GitHub returned a repository name Kiln will not use: {full_name!r}.", code="provider_error"
        )
    return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"


@dataclass(frozen=True)
class RemoteRepo:
    """The fields of GitHub's "full-repository" document Kiln uses."""

    id: int
    full_name: str
    clone_url: str
    html_url: str
    default_branch: str
    size: int
    created_at: datetime | None

    @classmethod
    def parse(cls, data: Any) -> RemoteRepo:
        try:
            created = data.get("created_at")
            ident = data["id"]
            if isinstance(ident, bool) or not isinstance(ident, int):
                raise TypeError("id")
            return cls(
                id=ident,
                full_name=str(data["full_name"]),
                clone_url=str(data["clone_url"]),
                html_url=str(data.get("html_url") or ""),
                default_branch=str(data.get("default_branch") or ""),
                size=int(data.get("size") or 0),
                created_at=datetime.fromisoformat(created) if isinstance(created, str) else None,
            )
        except (AttributeError, KeyError, TypeError, ValueError):
            raise ExportFailed(UNREADABLE_REPOSITORY, code="provider_error") from None


def _call(gh: Github, verb: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One REST call on a path relative to the API root; returns the decoded JSON body."""
    # A fresh dict each time: the Requester writes the Authorization header into it.
    headers = {"Accept": MEDIA_TYPE}
    _, data = gh.requester.requestJsonAndCheck(verb, path, headers=headers, input=body)
    return data


def _login(gh: Github) -> str:
    data = _call(gh, "GET", "/user")
    login = data.get("login") if isinstance(data, dict) else None
    if not isinstance(login, str) or not login:
        raise ExportFailed("GitHub's GET /user answer has no login.", code="provider_error")
    return login


def _find(gh: Github, path: str) -> RemoteRepo | None:
    """The repository at `path`, or None when GitHub answers 404 (absent or invisible to the token)."""
    try:
        return RemoteRepo.parse(_call(gh, "GET", path))
    except GithubException as exc:
        if exc.status == 404:
            return None
        raise


def _message(exc: GithubException) -> str:
    data = exc.data if isinstance(exc.data, dict) else {}
    message = str(data.get("message") or "")
    errors = data.get("errors") or []
    details = "; ".join(str(e.get("message") or e.get("code")) for e in errors if isinstance(e, dict))
    return f"{message} ({details})" if details else message


def rate_limit_wait(exc: GithubException) -> float | None:
    """Seconds to wait if this answer is a rate limit by GitHub's documented rules, else None.

    Primary limit: 403 or 429 with `x-ratelimit-remaining: 0`, wait until `x-ratelimit-reset`.
    Secondary limit: 403 or 429; honour `retry-after`, else wait at least a minute. The headers
    decide, whatever the message says; PyGithub's message-based `RateLimitExceededException`
    and a bare 429 count too. A 403 with none of these is a refusal, not a limit.
    """
    if exc.status not in (403, 429):
        return None
    headers = {str(k).lower(): str(v) for k, v in (exc.headers or {}).items()}
    limited = "retry-after" in headers or headers.get("x-ratelimit-remaining") == "0"
    if not (limited or exc.status == 429 or isinstance(exc, RateLimitExceededException)):
        return None
    wait = retry_after_seconds(headers)
    return wait if wait is not None else SECONDARY_LIMIT_WAIT


def classify(exc: BaseException) -> Retry | ApplicationError:
    if isinstance(exc, GithubException):
        if exc.status == 401:
            detail = _message(exc) or "Unauthorized"
            return ExportFailed(
                f"GitHub rejected the token (401: {detail}). Check or replace the connection's token.",
                code="invalid_token",
                status_code=401,
            )
        wait = rate_limit_wait(exc)
        if wait is not None:
            return Retry(wait=wait)
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


def _says_name_exists(exc: GithubException) -> bool:
    """A 422 that says the name is taken: the documented `already_exists` code, or github.com's
    `custom` error with the message "name already exists on this account"."""
    data = exc.data if isinstance(exc.data, dict) else {}
    errors = [e for e in data.get("errors") or [] if isinstance(e, dict)]
    if any(e.get("code") == "already_exists" for e in errors):
        return True
    texts = [str(data.get("message") or ""), *(str(e.get("message") or "") for e in errors)]
    return any("already exists" in text.lower() for text in texts)


def _internal_needs_org() -> ExportFailed:
    return ExportFailed(
        INTERNAL_NEEDS_ORG,
        code="validation_error",
        status_code=400,
        extra={"fields": {"repository.visibility": [INTERNAL_NEEDS_ORG]}},
    )


def _find_pull(gh: Github, path: str, *, head: str, base: str) -> dict[str, Any] | None:
    """The open pull request from `head` (owner:branch) into `base`, if any (GitHub allows one)."""
    _, items = gh.requester.requestJsonAndCheck(
        "GET",
        f"{path}/pulls",
        parameters={"state": "open", "head": head, "base": base, "per_page": 100},
        headers={"Accept": MEDIA_TYPE},
    )
    if not isinstance(items, list):
        raise ExportFailed("GitHub answered the pull request list with something else.", code="provider_error")
    return next((item for item in items if isinstance(item, dict)), None)


def _says_pull_exists(exc: GithubException) -> bool:
    return exc.status == 422 and "already exists" in _message(exc).lower()


@register_provider
class GitHubProvider:
    id = "github"
    needs_connection = True
    connection_provider: str | None = Provider.GITHUB
    git_username = "x-access-token"

    def delete_repository(
        self, *, connection: ProviderConnection | None, token: str, remote_repo_id: str, full_name: str
    ) -> str:
        return delete_repository(connection=connection, token=token, remote_repo_id=remote_repo_id, full_name=full_name)

    def clean_target(self, data: dict[str, Any], *, connection: ProviderConnection | None) -> CleanTarget:
        repo, target, branch = clean_repository(data, label="GitHub", fields=REPOSITORY_FIELDS, max_description=350)
        if repo.get("owner"):
            target["owner"] = validate_owner(repo["owner"])
        if target["visibility"] == "internal" and not target.get("owner"):
            # POST /user/repos has no `visibility`: it would quietly become a private repository.
            fields = {"repository.visibility": [INTERNAL_NEEDS_ORG]}
            raise ValidationFailed(INTERNAL_NEEDS_ORG, extra={"fields": fields})
        target["topics"] = validate_topics(repo.get("topics") or [])
        assert connection is not None
        key = target_key(connection, target.get("owner"), target["name"])
        return CleanTarget(target=target, branch=branch, target_key=key)

    def export(self, ctx: ExportContext) -> ExportResult:
        assert ctx.token is not None
        gh = client(ctx.connection, ctx.token)
        repo = self._repository(ctx, gh)
        clone_url = check_provider_url(repo.clone_url, what="clone_url")
        ctx.record(remote_url=clone_url, web_url=repo.html_url)
        path = repo_path(repo.full_name)
        topics = ctx.export.target.get("topics") or []
        if topics:
            with_retries(
                lambda: _call(gh, "PUT", f"{path}/topics", {"names": topics}),
                classify=classify,
                what="setting topics",
                ctx=ctx,
            )
        commit, pushed = build_and_push(ctx, url=clone_url, auth=GitAuth("x-access-token", ctx.token))
        if repo.default_branch != ctx.export.branch:
            with_retries(
                lambda: _call(gh, "PATCH", path, {"default_branch": ctx.export.branch}),
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

    def propose(self, request: ProposalRequest) -> Proposal:
        """Open the pull request for an update branch, or update the open one (never a second one).

        `GET /repos/{o}/{r}/pulls?state=open&head=owner:branch&base=...` finds an open one; else
        `POST .../pulls` (`draft` when the update left conflicts; GitHub's REST API cannot turn a
        draft into a ready pull request later, so a re-run only updates title and body). A create
        that loses a race answers 422 "A pull request already exists": the one found is used.
        """
        gh = client(request.connection, request.token)
        path = repo_path(request.repository)
        head = f"{request.repository.partition('/')[0]}:{request.head}"
        opened: list[bool] = []

        def find() -> dict[str, Any] | None:
            return _find_pull(gh, path, head=head, base=request.base)

        def create() -> dict[str, Any]:
            payload = {
                "title": request.title,
                "head": request.head,
                "base": request.base,
                "body": request.body,
                "draft": request.draft,
            }
            try:
                data = dict(_call(gh, "POST", f"{path}/pulls", payload))
            except GithubException as exc:
                found = find() if _says_pull_exists(exc) else None
                if found is None:
                    raise
                return found
            opened.append(True)
            return data

        pull = with_retries(find, classify=classify, what="looking for the pull request")
        if pull is None:
            pull = with_retries(create, classify=classify, what="opening the pull request")
        if pull.get("title") != request.title or (pull.get("body") or "") != request.body:
            number = int(pull["number"])
            changes = {"title": request.title, "body": request.body}
            pull = with_retries(
                lambda: dict(_call(gh, "PATCH", f"{path}/pulls/{number}", changes)),
                classify=classify,
                what="updating the pull request",
            )
        try:
            number, url = int(pull["number"]), str(pull["html_url"])
        except (KeyError, TypeError, ValueError):
            raise ExportFailed("GitHub answered with a pull request Kiln cannot read.", code="provider_error") from None
        request.log(f"pull request #{number} {'opened' if opened else 'updated'}: {url}")
        return Proposal(number=number, url=url, created=bool(opened))

    def lookup(
        self, target: dict[str, Any], *, connection: ProviderConnection | None, token: str | None
    ) -> ExistingRepository:
        """`GET /repos/{owner}/{repo}` (owner: the target's, else the token's own login)."""
        assert token is not None
        gh = client(connection, token)
        owner = target.get("owner") or with_retries(
            lambda: _login(gh), classify=classify, what="reading the token user"
        )
        full_name = f"{owner}/{target['name']}"
        repo = with_retries(lambda: _find(gh, repo_path(full_name)), classify=classify, what="reading the repository")
        if repo is None:
            raise ExportFailed(
                f"GitHub has no repository {full_name} the token can see.", code="not_found", status_code=404
            )
        return ExistingRepository(
            clone_url=check_provider_url(repo.clone_url, what="clone_url"),
            web_url=repo.html_url,
            full_name=repo.full_name,
            repo_id=str(repo.id),
            default_branch=repo.default_branch or "main",
        )

    def proposal_state(self, ref: ProposalRef) -> str:
        """`GET /repos/{o}/{r}/pulls/{n}`: merged, closed (unmerged) or open."""
        gh = client(ref.connection, ref.token)
        path = f"{repo_path(ref.repository)}/pulls/{int(ref.number)}"
        data = with_retries(lambda: _call(gh, "GET", path), classify=classify, what="reading the pull request")
        if not isinstance(data, dict):
            raise ExportFailed("GitHub answered with a pull request Kiln cannot read.", code="provider_error")
        if data.get("merged") or data.get("merged_at"):
            return "merged"
        return "closed" if data.get("state") == "closed" else "open"

    def _repository(self, ctx: ExportContext, gh: Github) -> RemoteRepo:
        if ctx.export.remote_repo_id:
            return self._recorded(ctx, gh)
        target = ctx.export.target
        name = target["name"]
        login = with_retries(lambda: _login(gh), classify=classify, what="reading the token user", ctx=ctx)
        owner = target.get("owner")
        # An owner that is the token's own account is a user repository: GET /orgs/{login} is a 404.
        org = owner if owner and owner.lower() != login.lower() else None
        visibility = target.get("visibility", "private")
        if org is None and visibility == "internal":
            raise _internal_needs_org()
        payload: dict[str, Any] = {"name": name, "private": visibility != "public", "auto_init": False}
        if visibility == "internal":
            del payload["private"]
            payload["visibility"] = "internal"
        if target.get("description"):
            payload["description"] = target["description"]
        if org is not None:
            with_retries(lambda: self._check_org(gh, org), classify=classify, what="reading the organisation", ctx=ctx)
            create_path = f"/orgs/{quote(org, safe='')}/repos"
        else:
            if owner:
                ctx.log(f"owner '{owner}' is the token's own account; creating a user repository")
            create_path = "/user/repos"
        full_name = f"{org or login}/{name}"
        ctx.record(remote_full_name=full_name)  # the intent, before the create request leaves
        keys = self._target_keys(ctx, login=login, own_account=org is None)

        def create_or_adopt() -> RemoteRepo:
            earlier = note_create_request(ctx)
            try:
                return RemoteRepo.parse(_call(gh, "POST", create_path, payload))
            except GithubException as exc:
                if exc.status == 422:
                    # the name was taken before this request: only an earlier one of ours made it
                    return self._after_refusal(ctx, gh, full_name, exc, keys, since=earlier)
                if exc.status == 404 and org is not None:
                    raise namespace_not_found(f"GitHub organisation '{org}'") from None
                if exc.status >= 500:
                    existing = self._created_despite_error(ctx, gh, full_name, since=ctx.export.create_requested_at)
                    if existing is not None:
                        return existing
                raise

        repo = with_retries(create_or_adopt, classify=classify, what="creating the repository", ctx=ctx)
        # with its id, whether this export made it: only such a repository may ever be deleted by Kiln
        ctx.record(
            remote_repo_id=str(repo.id), remote_full_name=repo.full_name, repository_created=not ctx.adopted_repository
        )
        ctx.log(f"repository {repo.full_name} (id {repo.id}) ready")
        return repo

    def _check_org(self, gh: Github, org: str) -> None:
        try:
            _call(gh, "GET", f"/orgs/{quote(org, safe='')}")
        except GithubException as exc:
            if exc.status == 404:
                raise namespace_not_found(f"GitHub organisation '{org}'") from None
            raise

    def _recorded(self, ctx: ExportContext, gh: Github) -> RemoteRepo:
        """The repository an earlier delivery created: by its recorded full name, checked by id.

        `GET /repos/{owner}/{repo}` is the documented lookup. Only if the name no longer leads
        to that id (renamed, or the name reused) is `GET /repositories/{id}` tried, which
        github.com serves but the docs do not list; where it is absent the export fails.
        """
        export = ctx.export
        recorded_id, full_name = export.remote_repo_id, export.remote_full_name
        ctx.log(f"adopting repository {full_name or '?'} (id {recorded_id}) created by an earlier delivery")
        if full_name:
            repo = with_retries(
                lambda: _find(gh, repo_path(full_name)), classify=classify, what="reading the repository", ctx=ctx
            )
            if repo is not None and str(repo.id) == recorded_id:
                return repo
            if repo is None:
                ctx.log(f"{full_name} was not found; looking for repository id {recorded_id}")
            else:
                ctx.log(f"{full_name} is now another repository (id {repo.id}); looking for id {recorded_id}")
        if recorded_id.isdigit():
            moved = with_retries(
                lambda: _find(gh, f"/repositories/{int(recorded_id)}"),
                classify=classify,
                what="reading the repository by id",
                ctx=ctx,
            )
            if moved is not None and str(moved.id) == recorded_id:
                ctx.log(f"repository id {recorded_id} is now {moved.full_name}; adopting it")
                ctx.record(remote_full_name=moved.full_name)
                return moved
        raise ExportFailed(
            f"The repository this export created ({full_name or 'unknown name'}, id {recorded_id}) no longer exists "
            "under that name, or the token cannot see it.",
            code="not_found",
            status_code=404,
            extra={"repository": full_name, "remote_repo_id": recorded_id},
        )

    def _target_keys(self, ctx: ExportContext, *, login: str, own_account: bool) -> set[str]:
        """The target keys that name this same repository: an owner equal to the token's own
        login and no owner at all both mean the token user's account."""
        keys = {ctx.export.target_key}
        if own_account and ctx.connection is not None:
            name = ctx.export.target["name"]
            keys |= {target_key(ctx.connection, None, name), target_key(ctx.connection, login, name)}
        return keys

    def _after_refusal(
        self,
        ctx: ExportContext,
        gh: Github,
        full_name: str,
        exc: GithubException,
        keys: set[str],
        *,
        since: datetime | None,
    ) -> RemoteRepo:
        """A 422 on create: whether the name is taken is decided by looking the repository up."""
        existing = _find(gh, repo_path(full_name))
        if existing is not None:
            return self._adopt_existing(ctx, existing, keys, since=since)
        if _says_name_exists(exc):
            # GitHub answers 404 for a private repository the token cannot read.
            raise name_taken("repository", full_name, why="is not visible to the connection's token")
        raise exc

    def _adopt_existing(
        self, ctx: ExportContext, repo: RemoteRepo, keys: set[str], *, since: datetime | None
    ) -> RemoteRepo:
        ours = RepositoryExport.objects.filter(
            target_key__in=keys, provider=self.id, remote_repo_id=str(repo.id)
        ).exclude(pk=ctx.export.pk)
        if ours.exists():
            ctx.log(f"repository {repo.full_name} was created by an earlier Kiln export to this target; adopting it")
            ctx.adopted_repository = True
            return repo
        if created_by_this_export(
            ctx, full_name=repo.full_name, created_at=repo.created_at, empty=repo.size == 0, since=since
        ):
            ctx.log(f"repository {repo.full_name} was created by an interrupted delivery of this export; adopting it")
            return repo
        raise name_taken("repository", repo.full_name)

    def _created_despite_error(
        self, ctx: ExportContext, gh: Github, full_name: str, *, since: datetime | None
    ) -> RemoteRepo | None:
        """After a 5xx on create, the repository may exist anyway: adopt it only if this export made it."""
        repo = _find(gh, repo_path(full_name))
        if repo is not None and created_by_this_export(
            ctx, full_name=repo.full_name, created_at=repo.created_at, empty=repo.size == 0, since=since
        ):
            ctx.log(f"creation answered with an error but {repo.full_name} exists, new and empty; adopting it")
            return repo
        return None


def delete_repository(*, connection: ProviderConnection | None, token: str, remote_repo_id: str, full_name: str) -> str:
    """`DELETE /repos/{owner}/{repo}` of a repository an export created; "deleted" or "already_gone".

    Only while that name still leads to the recorded id: a repository renamed away and replaced
    by another of the same name is refused (`repository_replaced`), never deleted in its place.
    """
    gh = client(connection, token)
    path = repo_path(full_name)
    repo = with_retries(lambda: _find(gh, path), classify=classify, what="reading the repository")
    if repo is None:
        return "already_gone"
    if str(repo.id) != remote_repo_id:
        raise ExportFailed(
            f"{full_name} is now another repository (id {repo.id}, not {remote_repo_id}); it was not deleted.",
            code="repository_replaced",
            status_code=409,
        )
    with_retries(lambda: _call(gh, "DELETE", path), classify=classify, what="deleting the repository")
    return "deleted"


def verify(connection: ProviderConnection, token: str) -> str:
    gh = client(connection, token)
    return with_retries(lambda: _login(gh), classify=classify, what="verifying the token")
