"""GitHub REST (`/api/v3`, the GitHub Enterprise Server layout PyGithub's `base_url` takes).

Shapes follow docs.github.com ("full-repository", "organization-full", "private-user",
"git-ref", "rate-limit-overview", "basic-error", "validation-failed") and the bodies in
forge.md §2.4. Every absolute URL points back at the forge (unless `Knobs.api_links`
says otherwise). Written from the docs; no PyGithub replay data is used.

Where github.com does more than its documentation promises, the forge follows the
documentation by default (`Knobs`): `GET /repositories/{id}` is not served unless
switched on, and the switches choose between documented variants of an answer. The
`inject_*` helpers answer with the documented rate-limit and authentication errors.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from tests.forge.git_http import basic_credentials
from tests.forge.model import (
    Fault,
    Namespace,
    Repo,
    Request,
    Response,
    User,
    fast_import_commit,
    iso_github,
    json_response,
    node_id,
    read_refs,
    utcnow,
)

if TYPE_CHECKING:
    from tests.forge.server import LocalForge

PREFIX = "/api/v3"
CONTENT_TYPE = "application/json; charset=utf-8"
SERVER_HEADER = "GitHub.com"
DOCS = "https://docs.github.com/rest"
DOC_CREATE_USER = "https://docs.github.com/rest/repos/repos#create-a-repository-for-the-authenticated-user"
DOC_CREATE_ORG = "https://docs.github.com/rest/repos/repos#create-an-organization-repository"
DOC_UPDATE = "https://docs.github.com/rest/repos/repos#update-a-repository"
DOC_DELETE = "https://docs.github.com/rest/repos/repos#delete-a-repository"
DOC_TOPICS = "https://docs.github.com/rest/repos/repos#replace-all-repository-topics"
DOC_REF = "https://docs.github.com/rest/git/refs#get-a-reference"
DOC_USER = "https://docs.github.com/rest/users/users#get-the-authenticated-user"

CORE_LIMIT = 5000
ANONYMOUS_LIMIT = 60
NAME_EXISTS = "name already exists on this account"
TOPIC_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,49}$")
MAX_TOPICS = 20


# ----------------------------------------------------------------------------- knobs

NAME_EXISTS_STYLES = ("custom", "already_exists")


@dataclass
class Knobs:
    """How the forge plays GitHub where the docs leave room (`forge.github_knobs`).

    `repositories_by_id`: serve `GET /repositories/{id}`. github.com answers it, but the
    REST docs do not list it, so an emulator written from them answers 404: off.

    `name_exists`: the 422 for a name clash on create or rename. `"custom"` is what
    github.com sends (`code: custom`, message "name already exists on this account");
    `"already_exists"` is the documented validation error code, with no message.

    `api_links`: base of the absolute API URLs in response bodies (`url`, `repos_url`,
    ...); None means the forge's own `api_url`. Set to `https://api.github.com` (no
    `/api/v3` prefix) a client that follows them instead of building documented paths
    from `full_name` misses the forge.
    """

    repositories_by_id: bool = False
    name_exists: str = "custom"
    api_links: str | None = None


def knobs(forge: LocalForge) -> Knobs:
    return forge.github_knobs


def api_base(forge: LocalForge) -> str:
    """The API root written into response bodies (see `Knobs.api_links`)."""
    return (knobs(forge).api_links or forge.api_url).rstrip("/")


# ----------------------------------------------------------------------------- fault helpers

RATE_LIMIT_DOC = "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api"
PRIMARY_LIMIT_MESSAGE = "API rate limit exceeded for user ID 1001."
SECONDARY_LIMIT_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID F0RGE:1."
)


def inject_primary_rate_limit(
    forge: LocalForge,
    method: str | None,
    path_regex: str,
    *,
    status: int = 403,
    message: str = PRIMARY_LIMIT_MESSAGE,
    reset_in: float = 3600.0,
    times: int | None = 1,
) -> Fault:
    """The primary limit: 403 or 429 with `x-ratelimit-remaining: 0` and the reset time.

    The docs identify it by those headers, not by the message, so `message` may be anything.
    """
    reset = str(int(time.time() + reset_in))
    headers = {
        "X-RateLimit-Limit": str(CORE_LIMIT),
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Used": str(CORE_LIMIT),
        "X-RateLimit-Reset": reset,
    }
    body = {"message": message, "documentation_url": RATE_LIMIT_DOC, "status": str(status)}
    return forge.inject(method, path_regex, status, body, headers, times)


def inject_secondary_rate_limit(
    forge: LocalForge,
    method: str | None,
    path_regex: str,
    *,
    status: int = 403,
    retry_after: int | None = 60,
    message: str = SECONDARY_LIMIT_MESSAGE,
    times: int | None = 1,
) -> Fault:
    """A secondary limit: 403 or 429, with `retry-after` when given (the docs say "may")."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    body = {"message": message, "documentation_url": RATE_LIMIT_DOC, "status": str(status)}
    return forge.inject(method, path_regex, status, body, headers, times)


def inject_requires_authentication(
    forge: LocalForge, method: str | None, path_regex: str, *, times: int | None = 1
) -> Fault:
    """The 401 GitHub sends when a request reached it without usable credentials."""
    body = {"message": "Requires authentication", "documentation_url": DOCS, "status": "401"}
    return forge.inject(method, path_regex, 401, body, None, times)


# ----------------------------------------------------------------------------- plumbing


def error(status: int, message: str, doc: str = DOCS, errors: list[dict[str, Any]] | None = None) -> Response:
    payload: dict[str, Any] = {"message": message}
    if errors is not None:
        payload["errors"] = errors
    payload["documentation_url"] = doc
    payload["status"] = str(status)
    return json_response(status, payload, ctype=CONTENT_TYPE)


def not_found(doc: str = DOCS) -> Response:
    return error(404, "Not Found", doc)


def validation_failed(errors: list[dict[str, Any]], doc: str) -> Response:
    return error(422, "Validation Failed", doc, errors)


def ok(payload: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
    return json_response(status, payload, headers, ctype=CONTENT_TYPE)


def _token(req: Request) -> tuple[str | None, bool]:
    """(token, whether an Authorization header was sent): `token X`, `Bearer X` or Basic."""
    header = req.header("authorization")
    if not header:
        return None, False
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() in ("token", "bearer"):
        return value.strip(), True
    if scheme.lower() == "basic":
        creds = basic_credentials(header)
        return (creds[1] if creds else ""), True
    return "", True


def decorate(forge: LocalForge, req: Request, resp: Response, user: User | None) -> None:
    """The headers every GitHub API answer carries (rate limit, media type)."""
    if user is None:
        token, _ = _token(req)
        user = forge.user_for_token(token)
    key = user.login.lower() if user else "anonymous"
    limit = CORE_LIMIT if user else ANONYMOUS_LIMIT
    used = forge.usage(key) if req.path.endswith("/rate_limit") else forge.count_request(key)
    reset = int(forge.started_at) + 3600
    resp.add_default("Content-Type", CONTENT_TYPE)
    resp.add_default("X-RateLimit-Limit", str(limit))
    resp.add_default("X-RateLimit-Remaining", str(max(0, limit - used)))
    resp.add_default("X-RateLimit-Reset", str(reset))
    resp.add_default("X-RateLimit-Used", str(used))
    resp.add_default("X-RateLimit-Resource", "core")
    resp.add_default("X-GitHub-Media-Type", "github.v3; format=json")
    resp.add_default("X-GitHub-Api-Version-Selected", "2022-11-28")
    resp.add_default("X-GitHub-Request-Id", f"F0RGE:{os.getpid():X}:{used:X}")
    resp.add_default("Cache-Control", "private, max-age=60, s-maxage=60")
    resp.add_default("Vary", "Accept, Authorization, Cookie, X-GitHub-OTP")
    if user is not None:
        resp.add_default("X-OAuth-Scopes", "repo, read:org")
        resp.add_default("X-Accepted-OAuth-Scopes", "")


Handler = Callable[..., Response]
ROUTES: list[tuple[str, re.Pattern[str], Handler, bool]] = []
REPO = r"/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)"


def route(method: str, pattern: str, *, auth: bool) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        ROUTES.append((method, re.compile(pattern), fn, auth))
        return fn

    return register


def handle(forge: LocalForge, req: Request) -> Response:
    token, sent = _token(req)
    user = forge.user_for_token(token) if sent else None
    resp = error(401, "Bad credentials") if sent and user is None else _route(forge, req, user)
    decorate(forge, req, resp, user)
    return resp


def _route(forge: LocalForge, req: Request, user: User | None) -> Response:
    if not req.path.startswith(PREFIX + "/"):
        return not_found()
    sub = req.path[len(PREFIX) :]
    method = "GET" if req.method == "HEAD" else req.method
    for verb, pattern, fn, needs_auth in ROUTES:
        match = pattern.fullmatch(sub)
        if match is None or verb != method:
            continue
        if needs_auth and user is None:
            return error(401, "Requires authentication", DOC_USER if sub == "/user" else DOCS)
        args = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
        return fn(forge, req, user, **args)
    return not_found()


def _json_object(req: Request, doc: str) -> tuple[dict[str, Any], Response | None]:
    if not req.body.strip():
        return {}, None
    try:
        data = json.loads(req.body)
    except ValueError:
        return {}, error(400, "Problems parsing JSON", doc)
    if not isinstance(data, dict):
        return {}, error(400, "Body should be a JSON object", doc)
    return data, None


# ----------------------------------------------------------------------------- JSON shapes


def _simple_user(forge: LocalForge, login: str, ident: int, kind: str) -> dict[str, Any]:
    api, base = api_base(forge), forge.base_url
    return {
        "login": login,
        "id": ident,
        "node_id": node_id("User" if kind == "User" else "Organization", ident),
        "avatar_url": f"{base}/avatars/u/{ident}?v=4",
        "gravatar_id": "",
        "url": f"{api}/users/{login}",
        "html_url": f"{base}/{login}",
        "followers_url": f"{api}/users/{login}/followers",
        "following_url": f"{api}/users/{login}/following{{/other_user}}",
        "gists_url": f"{api}/users/{login}/gists{{/gist_id}}",
        "starred_url": f"{api}/users/{login}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/users/{login}/subscriptions",
        "organizations_url": f"{api}/users/{login}/orgs",
        "repos_url": f"{api}/users/{login}/repos",
        "events_url": f"{api}/users/{login}/events{{/privacy}}",
        "received_events_url": f"{api}/users/{login}/received_events",
        "type": kind,
        "user_view_type": "public",
        "site_admin": False,
    }


def owner_json(forge: LocalForge, ns: Namespace) -> dict[str, Any]:
    if ns.kind == "user":
        user = forge.owner_user(ns)
        assert user is not None
        return _simple_user(forge, user.login, user.id, "User")
    return _simple_user(forge, ns.full_path, ns.id, "Organization")


def user_json(forge: LocalForge, user: User, *, private: bool) -> dict[str, Any]:
    owned = [r for r in forge.repos_in(forge.user_namespace(user))]
    payload = _simple_user(forge, user.login, user.id, "User")
    payload.update(
        {
            "name": user.name,
            "company": None,
            "blog": "",
            "location": None,
            "email": user.email if private else None,
            "hireable": None,
            "bio": None,
            "twitter_username": None,
            "notification_email": user.email if private else None,
            "public_repos": sum(1 for r in owned if not r.private),
            "public_gists": 0,
            "followers": 0,
            "following": 0,
            "created_at": iso_github(user.created_at),
            "updated_at": iso_github(user.created_at),
        }
    )
    if private:
        payload.update(
            {
                "private_gists": 0,
                "total_private_repos": sum(1 for r in owned if r.private),
                "owned_private_repos": sum(1 for r in owned if r.private),
                "disk_usage": 0,
                "collaborators": 0,
                "two_factor_authentication": False,
                "plan": {"name": "free", "space": 976562499, "collaborators": 0, "private_repos": 10000},
            }
        )
    return payload


def org_json(forge: LocalForge, ns: Namespace, viewer: User | None) -> dict[str, Any]:
    api, base, login = api_base(forge), forge.base_url, ns.full_path
    repos = forge.repos_in(ns)
    payload: dict[str, Any] = {
        "login": login,
        "id": ns.id,
        "node_id": node_id("Organization", ns.id),
        "url": f"{api}/orgs/{login}",
        "repos_url": f"{api}/orgs/{login}/repos",
        "events_url": f"{api}/orgs/{login}/events",
        "hooks_url": f"{api}/orgs/{login}/hooks",
        "issues_url": f"{api}/orgs/{login}/issues",
        "members_url": f"{api}/orgs/{login}/members{{/member}}",
        "public_members_url": f"{api}/orgs/{login}/public_members{{/member}}",
        "avatar_url": f"{base}/avatars/u/{ns.id}?v=4",
        "description": ns.description or None,
        "name": ns.name,
        "company": None,
        "blog": "",
        "location": None,
        "email": None,
        "twitter_username": None,
        "is_verified": False,
        "has_organization_projects": True,
        "has_repository_projects": True,
        "public_repos": sum(1 for r in repos if not r.private),
        "public_gists": 0,
        "followers": 0,
        "following": 0,
        "html_url": f"{base}/{login}",
        "created_at": iso_github(ns.created_at),
        "updated_at": iso_github(ns.created_at),
        "archived_at": None,
        "type": "Organization",
    }
    if forge.is_member(viewer, ns):
        payload.update(
            {
                "total_private_repos": sum(1 for r in repos if r.private),
                "owned_private_repos": sum(1 for r in repos if r.private),
                "private_gists": 0,
                "disk_usage": 0,
                "collaborators": 0,
                "billing_email": None,
                "default_repository_permission": "read",
                "members_can_create_repositories": True,
                "two_factor_requirement_enabled": False,
                "members_allowed_repository_creation_type": "all",
                "members_can_create_public_repositories": True,
                "members_can_create_private_repositories": True,
                "members_can_create_internal_repositories": False,
                "members_can_fork_private_repositories": False,
                "web_commit_signoff_required": False,
                "plan": {"name": "free", "space": 976562499, "private_repos": 10000, "filled_seats": 1, "seats": 1},
            }
        )
    return payload


def _size_kb(repo: Repo) -> int:
    objects = repo.bare_path / "objects"
    total = 0
    for dirpath, _, files in os.walk(objects):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(dirpath, name))
    return max(1, -(-total // 1024))  # KiB, rounded up: a repository with commits is never size 0


def repo_json(forge: LocalForge, repo: Repo, viewer: User | None) -> dict[str, Any]:
    heads = forge.sync_default_branch(repo)
    api, base, full = api_base(forge), forge.base_url, repo.full_name
    r = f"{api}/repos/{full}"
    admin = forge.can_write(viewer, repo)
    payload: dict[str, Any] = {
        "id": repo.id,
        "node_id": node_id("Repository", repo.id),
        "name": repo.name,
        "full_name": full,
        "private": repo.private,
        "owner": owner_json(forge, repo.namespace),
        "html_url": f"{base}/{full}",
        "description": repo.description,
        "fork": False,
        "url": r,
        "forks_url": f"{r}/forks",
        "keys_url": f"{r}/keys{{/key_id}}",
        "collaborators_url": f"{r}/collaborators{{/collaborator}}",
        "teams_url": f"{r}/teams",
        "hooks_url": f"{r}/hooks",
        "issue_events_url": f"{r}/issues/events{{/number}}",
        "events_url": f"{r}/events",
        "assignees_url": f"{r}/assignees{{/user}}",
        "branches_url": f"{r}/branches{{/branch}}",
        "tags_url": f"{r}/tags",
        "blobs_url": f"{r}/git/blobs{{/sha}}",
        "git_tags_url": f"{r}/git/tags{{/sha}}",
        "git_refs_url": f"{r}/git/refs{{/sha}}",
        "trees_url": f"{r}/git/trees{{/sha}}",
        "statuses_url": f"{r}/statuses/{{sha}}",
        "languages_url": f"{r}/languages",
        "stargazers_url": f"{r}/stargazers",
        "contributors_url": f"{r}/contributors",
        "subscribers_url": f"{r}/subscribers",
        "subscription_url": f"{r}/subscription",
        "commits_url": f"{r}/commits{{/sha}}",
        "git_commits_url": f"{r}/git/commits{{/sha}}",
        "comments_url": f"{r}/comments{{/number}}",
        "issue_comment_url": f"{r}/issues/comments{{/number}}",
        "contents_url": f"{r}/contents/{{+path}}",
        "compare_url": f"{r}/compare/{{base}}...{{head}}",
        "merges_url": f"{r}/merges",
        "archive_url": f"{r}/{{archive_format}}{{/ref}}",
        "downloads_url": f"{r}/downloads",
        "issues_url": f"{r}/issues{{/number}}",
        "pulls_url": f"{r}/pulls{{/number}}",
        "milestones_url": f"{r}/milestones{{/number}}",
        "notifications_url": f"{r}/notifications{{?since,all,participating}}",
        "labels_url": f"{r}/labels{{/name}}",
        "releases_url": f"{r}/releases{{/id}}",
        "deployments_url": f"{r}/deployments",
        "created_at": iso_github(repo.created_at),
        "updated_at": iso_github(repo.updated_at),
        "pushed_at": iso_github(repo.pushed_at),
        "git_url": f"git://{forge.host}/{full}.git",
        "ssh_url": f"git@127.0.0.1:{full}.git",
        "clone_url": f"{base}/{full}.git",
        "svn_url": f"{base}/{full}",
        "homepage": repo.create_params.get("homepage"),
        "size": _size_kb(repo) if heads else 0,
        "stargazers_count": 0,
        "watchers_count": 0,
        "language": None,
        "has_issues": repo.has_issues,
        "has_projects": repo.has_projects,
        "has_downloads": True,
        "has_wiki": repo.has_wiki,
        "has_pages": False,
        "has_discussions": False,
        "forks_count": 0,
        "mirror_url": None,
        "archived": repo.archived,
        "disabled": False,
        "open_issues_count": 0,
        "license": None,
        "allow_forking": True,
        "is_template": bool(repo.create_params.get("is_template", False)),
        "web_commit_signoff_required": False,
        "topics": list(repo.topics),
        "visibility": repo.visibility,
        "forks": 0,
        "open_issues": 0,
        "watchers": 0,
        "default_branch": repo.default_branch or "main",
        "permissions": {
            "admin": admin,
            "maintain": admin,
            "push": admin,
            "triage": admin,
            "pull": forge.can_read(viewer, repo),
        },
        "temp_clone_token": None,
        "allow_squash_merge": True,
        "allow_merge_commit": True,
        "allow_rebase_merge": True,
        "allow_auto_merge": False,
        "delete_branch_on_merge": False,
        "allow_update_branch": False,
        "use_squash_pr_title_as_default": False,
        "squash_merge_commit_message": "COMMIT_MESSAGES",
        "squash_merge_commit_title": "COMMIT_OR_PR_TITLE",
        "merge_commit_message": "PR_TITLE",
        "merge_commit_title": "MERGE_MESSAGE",
        "custom_properties": {},
        "network_count": 0,
        "subscribers_count": 1,
    }
    if repo.namespace.kind == "org":
        payload["organization"] = owner_json(forge, repo.namespace)
    return payload


# ----------------------------------------------------------------------------- routes


@route("GET", r"/user", auth=True)
def get_authenticated_user(forge: LocalForge, req: Request, user: User) -> Response:
    return ok(user_json(forge, user, private=True))


@route("GET", r"/users/(?P<login>[^/]+)", auth=False)
def get_user(forge: LocalForge, req: Request, user: User | None, login: str) -> Response:
    ns = forge.namespace_by_path(login)
    if ns is None or "/" in ns.full_path:
        return not_found()
    if ns.kind == "user":
        target = forge.owner_user(ns)
        assert target is not None
        return ok(user_json(forge, target, private=False))
    return ok({**owner_json(forge, ns), "name": ns.name, "created_at": iso_github(ns.created_at)})


@route("GET", r"/orgs/(?P<org>[^/]+)", auth=False)
def get_org(forge: LocalForge, req: Request, user: User | None, org: str) -> Response:
    ns = forge.namespace_by_path(org)
    if ns is None or ns.kind != "org":
        return not_found()
    return ok(org_json(forge, ns, user))


def _check_types(data: dict[str, Any], doc: str) -> Response | None:
    bools = ("private", "auto_init", "has_issues", "has_projects", "has_wiki", "has_discussions", "is_template")
    errors = [
        {"resource": "Repository", "code": "invalid", "field": key}
        for key in bools
        if key in data and not isinstance(data[key], bool)
    ]
    for key in ("description", "homepage", "default_branch"):
        if key in data and data[key] is not None and not isinstance(data[key], str):
            errors.append({"resource": "Repository", "code": "invalid", "field": key})
    if "visibility" in data and data["visibility"] not in ("public", "private", "internal"):
        errors.append({"resource": "Repository", "code": "invalid", "field": "visibility"})
    return validation_failed(errors, doc) if errors else None


def sanitize_name(name: str) -> str:
    """GitHub turns each run of characters outside `[A-Za-z0-9._-]` into one `-`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name)


def _name_problem(name: Any, doc: str) -> Response | None:
    if name is None:
        return validation_failed([{"resource": "Repository", "code": "missing_field", "field": "name"}], doc)
    if not isinstance(name, str):
        return validation_failed([{"resource": "Repository", "code": "invalid", "field": "name"}], doc)
    clean = sanitize_name(name)
    if clean in ("", ".", ".."):
        return validation_failed([{"resource": "Repository", "code": "invalid", "field": "name"}], doc)
    if len(clean) > 100:
        return error(
            422,
            "Repository creation failed.",
            doc,
            [
                {
                    "resource": "Repository",
                    "code": "custom",
                    "field": "name",
                    "message": "name is too long (maximum is 100 characters)",
                }
            ],
        )
    return None


def _name_exists(forge: LocalForge, doc: str) -> Response:
    style = knobs(forge).name_exists
    if style == "already_exists":
        return validation_failed([{"resource": "Repository", "code": "already_exists", "field": "name"}], doc)
    if style != "custom":
        raise ValueError(f"Knobs.name_exists must be one of {NAME_EXISTS_STYLES}, not {style!r}")
    return error(
        422,
        "Repository creation failed.",
        doc,
        [{"resource": "Repository", "code": "custom", "field": "name", "message": NAME_EXISTS}],
    )


def _taken(forge: LocalForge, ns: Namespace, path: str, exclude: Repo | None = None) -> bool:
    return any(r.path.lower() == path.lower() and r is not exclude for r in forge.repos_in(ns))


def _create(forge: LocalForge, req: Request, user: User, ns: Namespace, doc: str) -> Response:
    data, problem = _json_object(req, doc)
    problem = problem or _name_problem(data.get("name"), doc) or _check_types(data, doc)
    if problem is not None:
        return problem
    if data.get("visibility") == "internal" and ns.kind != "org":
        return validation_failed([{"resource": "Repository", "code": "invalid", "field": "visibility"}], doc)
    name = sanitize_name(data["name"])
    visibility = data.get("visibility") or ("private" if data.get("private") else "public")
    with forge.lock:
        if _taken(forge, ns, name):
            return _name_exists(forge, doc)
        repo = forge.create_repo(
            ns,
            name=name,
            path=name,
            creator=user.login.lower(),
            description=data.get("description"),
            visibility=visibility,
            default_branch="main",  # GitHub ignores a requested default_branch on create
            params=data,
        )
        repo.has_issues = data.get("has_issues", True)
        repo.has_projects = data.get("has_projects", True)
        repo.has_wiki = data.get("has_wiki", True)
    if data.get("auto_init"):
        readme = f"# {name}\n" + (f"\n{data['description']}\n" if data.get("description") else "")
        fast_import_commit(
            repo.bare_path,
            forge.home,
            branch="main",
            files={"README.md": readme.encode()},
            message="Initial commit",
            parent=None,
            when=utcnow(),
        )
        forge.after_push(repo)
    location = f"{api_base(forge)}/repos/{repo.full_name}"
    return ok(repo_json(forge, repo, user), 201, [("Location", location)])


@route("POST", r"/user/repos", auth=True)
def create_user_repo(forge: LocalForge, req: Request, user: User) -> Response:
    return _create(forge, req, user, forge.user_namespace(user), DOC_CREATE_USER)


@route("POST", r"/orgs/(?P<org>[^/]+)/repos", auth=True)
def create_org_repo(forge: LocalForge, req: Request, user: User, org: str) -> Response:
    ns = forge.namespace_by_path(org)
    if ns is None or ns.kind != "org":
        return not_found(DOC_CREATE_ORG)
    if not forge.is_member(user, ns):
        return error(403, "You need admin access to the organization before adding a repository to it.", DOC_CREATE_ORG)
    return _create(forge, req, user, ns, DOC_CREATE_ORG)


def _visible(forge: LocalForge, user: User | None, owner: str, name: str) -> Repo | None:
    repo = forge.find_repo(f"{owner}/{name}")
    if repo is None or "/" in repo.namespace.full_path or not forge.can_read(user, repo):
        return None
    return repo


@route("GET", REPO, auth=False)
def get_repo(forge: LocalForge, req: Request, user: User | None, owner: str, name: str) -> Response:
    repo = _visible(forge, user, owner, name)
    return ok(repo_json(forge, repo, user)) if repo else not_found()


@route("GET", r"/repositories/(?P<ident>\d+)", auth=False)
def get_repo_by_id(forge: LocalForge, req: Request, user: User | None, ident: str) -> Response:
    """Undocumented (github.com serves it; the REST docs do not): only with `Knobs.repositories_by_id`."""
    if not knobs(forge).repositories_by_id:
        return not_found()
    repo = forge.repo_by_id(int(ident))
    if repo is None or not forge.can_read(user, repo):
        return not_found()
    return ok(repo_json(forge, repo, user))


@route("DELETE", REPO, auth=True)
def delete_repo(forge: LocalForge, req: Request, user: User, owner: str, name: str) -> Response:
    repo = _visible(forge, user, owner, name)
    if repo is None:
        return not_found()
    if not forge.can_write(user, repo):
        return error(403, "Must have admin rights to Repository.", DOC_DELETE)
    forge.delete_repo(repo)
    return Response(204)


def _topic_problem(names: Any, doc: str) -> tuple[list[str], Response | None]:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return [], validation_failed([{"resource": "Repository", "code": "invalid", "field": "names"}], doc)
    clean = list(dict.fromkeys(n.strip().lower() for n in names))
    bad = [n for n in clean if not TOPIC_RE.match(n)]
    if bad:
        message = (
            f"{bad[0]} is not a valid topic. Topics must start with a lowercase letter or number, "
            "consist of 50 characters or less, and can include hyphens."
        )
        return [], validation_failed(
            [{"resource": "Repository", "code": "invalid", "field": "topics", "message": message}], doc
        )
    if len(clean) > MAX_TOPICS:
        message = f"A repository cannot have more than {MAX_TOPICS} topics."
        return [], validation_failed(
            [{"resource": "Repository", "code": "invalid", "field": "topics", "message": message}], doc
        )
    return clean, None


@route("PATCH", REPO, auth=True)
def update_repo(forge: LocalForge, req: Request, user: User, owner: str, name: str) -> Response:
    repo = _visible(forge, user, owner, name)
    if repo is None:
        return not_found()
    if not forge.can_write(user, repo):
        return error(403, "Must have admin rights to Repository.", DOC_UPDATE)
    data, problem = _json_object(req, DOC_UPDATE)
    problem = problem or _check_types(data, DOC_UPDATE)
    if problem is None and "name" in data:
        problem = _name_problem(data["name"], DOC_UPDATE)
    if problem is not None:
        return problem
    topics: list[str] | None = None
    if "topics" in data:
        topics, problem = _topic_problem(data["topics"], DOC_UPDATE)
        if problem is not None:
            return problem
    branch = data.get("default_branch")
    if branch is not None:
        heads = forge.heads(repo)
        if heads and branch not in heads:
            return validation_failed(
                [{"resource": "Repository", "code": "invalid", "field": "default_branch"}], DOC_UPDATE
            )
    with forge.lock:
        if "name" in data:
            new = sanitize_name(data["name"])
            if new != repo.name:
                if _taken(forge, repo.namespace, new, exclude=repo):
                    return _name_exists(forge, DOC_UPDATE)
                forge.rename_repo(repo, new, new)
        if "description" in data:
            repo.description = data["description"]
        if "visibility" in data:
            repo.visibility = data["visibility"]
        elif "private" in data:
            repo.visibility = "private" if data["private"] else "public"
        for key in ("has_issues", "has_projects", "has_wiki"):
            if key in data:
                setattr(repo, key, data[key])
        if "archived" in data:
            repo.archived = bool(data["archived"])
        if topics is not None:
            repo.topics = topics
        if branch is not None:
            forge.set_default_branch(repo, branch)
        repo.updated_at = utcnow()
    return ok(repo_json(forge, repo, user))


@route("GET", REPO + r"/topics", auth=False)
def get_topics(forge: LocalForge, req: Request, user: User | None, owner: str, name: str) -> Response:
    repo = _visible(forge, user, owner, name)
    return ok({"names": list(repo.topics)}) if repo else not_found()


@route("PUT", REPO + r"/topics", auth=True)
def replace_topics(forge: LocalForge, req: Request, user: User, owner: str, name: str) -> Response:
    repo = _visible(forge, user, owner, name)
    if repo is None:
        return not_found()
    if not forge.can_write(user, repo):
        return not_found()
    data, problem = _json_object(req, DOC_TOPICS)
    if problem is not None:
        return problem
    if "names" not in data:
        return error(422, 'Invalid request.\n\n"names" wasn\'t supplied.', DOC_TOPICS)
    names, problem = _topic_problem(data["names"], DOC_TOPICS)
    if problem is not None:
        return problem
    with forge.lock:
        repo.topics = names
        repo.updated_at = utcnow()
    return ok({"names": names})


def _ref_json(forge: LocalForge, repo: Repo, ref: str, sha: str) -> dict[str, Any]:
    r = f"{api_base(forge)}/repos/{repo.full_name}"
    return {
        "ref": ref,
        "node_id": node_id("Ref", int(sha[:7], 16)),
        "url": f"{r}/git/{ref}",
        "object": {"sha": sha, "type": "commit", "url": f"{r}/git/commits/{sha}"},
    }


@route("GET", REPO + r"/git/ref/(?P<ref>.+)", auth=False)
def get_ref(forge: LocalForge, req: Request, user: User | None, owner: str, name: str, ref: str) -> Response:
    repo = _visible(forge, user, owner, name)
    if repo is None:
        return not_found(DOC_REF)
    refs = read_refs(repo.bare_path, forge.home)
    if not refs:
        return error(409, "Git Repository is empty.", DOC_REF)
    full = f"refs/{ref}"
    if full not in refs:
        return not_found(DOC_REF)
    return ok(_ref_json(forge, repo, full, refs[full]))


@route("GET", REPO + r"/git/refs(?:/(?P<ref>.+))?", auth=False)
def get_refs(
    forge: LocalForge, req: Request, user: User | None, owner: str, name: str, ref: str | None = None
) -> Response:
    """Legacy `git/refs/{ref}`: the object on an exact match, else the list of prefix matches."""
    repo = _visible(forge, user, owner, name)
    if repo is None:
        return not_found(DOC_REF)
    refs = read_refs(repo.bare_path, forge.home)
    if not refs:
        return error(409, "Git Repository is empty.", DOC_REF)
    if ref:
        full = f"refs/{ref}"
        if full in refs:
            return ok(_ref_json(forge, repo, full, refs[full]))
        matches = [k for k in sorted(refs) if k.startswith(full)]
    else:
        matches = sorted(refs)
    if not matches:
        return not_found(DOC_REF)
    return ok([_ref_json(forge, repo, k, refs[k]) for k in matches])


@route("GET", r"/rate_limit", auth=False)
def rate_limit(forge: LocalForge, req: Request, user: User | None) -> Response:
    key = user.login.lower() if user else "anonymous"
    used = forge.usage(key)
    reset = int(forge.started_at) + 3600
    core_limit = CORE_LIMIT if user else ANONYMOUS_LIMIT

    def bucket(limit: int, used_: int, resource: str) -> dict[str, Any]:
        return {"limit": limit, "used": used_, "remaining": max(0, limit - used_), "reset": reset, "resource": resource}

    resources = {
        "core": bucket(core_limit, used, "core"),
        "search": bucket(30 if user else 10, 0, "search"),
        "graphql": bucket(5000 if user else 0, 0, "graphql"),
        "integration_manifest": bucket(5000, 0, "integration_manifest"),
        "source_import": bucket(100, 0, "source_import"),
        "code_scanning_upload": bucket(1000, 0, "code_scanning_upload"),
        "actions_runner_registration": bucket(10000, 0, "actions_runner_registration"),
        "scim": bucket(15000, 0, "scim"),
        "dependency_snapshots": bucket(100, 0, "dependency_snapshots"),
        "code_search": bucket(10, 0, "code_search"),
    }
    return ok({"resources": resources, "rate": resources["core"]})
