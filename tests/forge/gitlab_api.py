"""GitLab REST (`/api/v4`), the subset python-gitlab uses for Kiln's exports.

Shapes follow docs.gitlab.com ("Projects API", "Groups API", "Namespaces API", "Users
API", "Branches API", REST pagination and rate-limit headers) and the bodies in forge.md
§2.4. Errors use GitLab's two body styles: `{"message": ...}` from the API helpers
(`404 Project Not Found`, validation dicts) and `{"error": ...}` from parameter checks.
Every absolute URL points back at the forge, so python-gitlab's base-URL check passes.
"""

from __future__ import annotations

import html
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlencode

from tests.forge.model import (
    Namespace,
    Repo,
    Request,
    Response,
    User,
    fast_import_commit,
    iso_gitlab,
    json_response,
    run_git,
    utcnow,
)

if TYPE_CHECKING:
    from tests.forge.server import LocalForge

PREFIX = "/api/v4"
CONTENT_TYPE = "application/json"
SERVER_HEADER = "nginx"
RATE_LIMIT = 2000  # GitLab.com's authenticated API limit per minute

NAME_RE = re.compile(r"^[\w\u00a9-\U0001f9ff][\w\u00a9-\U0001f9ff\-\u2010-\u2015+. ]*$")
NAME_MESSAGE = (
    "can contain only letters, digits, emoji, '_', '.', '+', dashes, or spaces. "
    "It must start with a letter, digit, emoji, or '_'."
)
PATH_RE = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.\-]*$")
PATH_MESSAGE = (
    "can contain only letters, digits, '_', '-' and '.'. Cannot start with '-', end in '.git' or end in '.atom'"
)
# The documented rule ("Projects API", project `path`): only letters, digits, '_', '-' and
# '.'; no special character first or last, none twice in a row; not ending in .git/.atom.
STRICT_PATH_RE = re.compile(r"^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$")
STRICT_PATH_MESSAGE = (
    "can contain only letters, digits, '_', '-' and '.'. It must not start or end with a special character, "
    "must not contain consecutive special characters and must not end in '.git' or '.atom'"
)
# "Reserved project names" (docs, user/reserved_names): the one-segment ones.
RESERVED_PROJECT_PATHS = frozenset(
    {
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
    }
)
TAKEN = "has already been taken"
VISIBILITIES = ("private", "internal", "public")
OWNER = 50  # access level


# ----------------------------------------------------------------------------- knobs


@dataclass
class Throttle:
    """One queued 429 (see `Knobs.rate_limit`)."""

    method: str | None
    pattern: re.Pattern[str]
    times: int | None
    retry_after: int | None
    reset_in: float | None
    hits: int = 0


@dataclass
class Knobs:
    """How the forge plays GitLab where the docs allow more than one answer (`forge.gitlab_knobs`).

    `first_push_sets_default`: GitLab makes the first branch pushed to an empty project its
    default (Gitaly reports the only branch; Rails stores it). Off, a push never changes the
    default branch, as a server that only implements the documented `PUT /projects/:id`.

    `initial_default_branch`: what a project created without a README reports as
    `default_branch` before (and, with `first_push_sets_default` off, after) a push. GitLab
    reports null for an empty project; some versions report the instance default (`main`).

    `clash_status`: the answer to creating a project whose name or path exists. GitLab sends
    400 with `has already been taken` per field; the REST docs' status table gives `409
    Conflict` for exactly this case. `clash_message` replaces the 409's `message` (default:
    the same per-field dict as the 400).

    `no_create_in`: namespaces (full paths, any case) the caller can see but not create
    projects in (a Reporter, or a project creation level above the caller's role).
    `no_create_status` is GitLab's 400 `{"namespace": ["is not valid"]}` or a 403.

    `strict_paths`: hold project paths to the documented rule (no special character first,
    last or twice in a row; no reserved project name); off, the older, looser pattern.

    `rate_limit(...)`: answer the next matching API requests with Rack::Attack's 429
    (`Retry later`, RateLimit-* headers, `Retry-After` when given).
    """

    first_push_sets_default: bool = True
    initial_default_branch: str | None = None
    clash_status: int = 400
    clash_message: Any = None
    no_create_in: set[str] = field(default_factory=set)
    no_create_status: int = 400
    strict_paths: bool = True
    throttles: list[Throttle] = field(default_factory=list)

    def rate_limit(
        self,
        method: str | None,
        path_regex: str,
        *,
        times: int | None = 1,
        retry_after: int | None = None,
        reset_in: float | None = None,
    ) -> Throttle:
        """429 the next `times` requests matching `path_regex` (`re.search` on the raw path).

        `retry_after`: the `Retry-After` seconds (None: no such header). `reset_in`: seconds
        from now to the `RateLimit-Reset` Unix time (None: the usual end of the minute).
        """
        entry = Throttle(method.upper() if method else None, re.compile(path_regex), times, retry_after, reset_in)
        self.throttles.append(entry)
        return entry


def knobs(forge: LocalForge) -> Knobs:
    return forge.gitlab_knobs


def _throttled(forge: LocalForge, req: Request) -> Throttle | None:
    with forge.lock:
        for entry in knobs(forge).throttles:
            if entry.method not in (None, req.method) or not entry.pattern.search(req.path):
                continue
            if entry.times is not None and entry.hits >= entry.times:
                continue
            entry.hits += 1
            return entry
    return None


def too_many_requests(entry: Throttle) -> Response:
    """Rack::Attack's throttled answer as GitLab configures it (plain text, RateLimit-*)."""
    headers = [
        ("Content-Type", "text/plain"),
        ("RateLimit-Name", "throttle_authenticated_api"),
        ("RateLimit-Limit", str(RATE_LIMIT)),
        ("RateLimit-Observed", str(RATE_LIMIT + 1)),
        ("RateLimit-Remaining", "0"),
    ]
    if entry.reset_in is not None:
        reset = math.ceil(time.time() + entry.reset_in)
        headers += [("RateLimit-Reset", str(reset)), ("RateLimit-ResetTime", formatdate(reset, usegmt=True))]
    if entry.retry_after is not None:
        headers.append(("Retry-After", str(entry.retry_after)))
    return Response(429, b"Retry later\n", headers, "Retry later\n")


# ----------------------------------------------------------------------------- plumbing


def ok(payload: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
    return json_response(status, payload, headers, ctype=CONTENT_TYPE)


def message(status: int, text: Any) -> Response:
    return ok({"message": text}, status)


def grape_error(text: str, status: int = 400) -> Response:
    return ok({"error": text}, status)


def not_found(what: str) -> Response:
    return message(404, f"404 {what} Not Found")


def _token(req: Request) -> tuple[str | None, bool]:
    token = req.header("private-token")
    if token is not None:
        return token.strip(), True
    header = req.header("authorization")
    if header:
        scheme, _, value = header.strip().partition(" ")
        return (value.strip() if scheme.lower() == "bearer" else ""), True
    token = req.arg("private_token") or req.arg("access_token")
    if token is not None:
        return token, True
    return None, False


def decorate(forge: LocalForge, req: Request, resp: Response, user: User | None) -> None:
    """The headers every GitLab API answer carries (RateLimit-*)."""
    if user is None:
        token, _ = _token(req)
        user = forge.user_for_token(token)
    observed = forge.count_request(user.login.lower() if user else "anonymous")
    reset = (int(time.time()) // 60 + 1) * 60  # end of the current one-minute window
    resp.add_default("Content-Type", CONTENT_TYPE)
    resp.add_default("RateLimit-Limit", str(RATE_LIMIT))
    resp.add_default("RateLimit-Observed", str(observed))
    resp.add_default("RateLimit-Remaining", str(max(0, RATE_LIMIT - observed)))
    resp.add_default("RateLimit-Reset", str(reset))
    resp.add_default("RateLimit-ResetTime", formatdate(reset, usegmt=True))
    resp.add_default("Cache-Control", "max-age=0, private, must-revalidate")
    resp.add_default("Vary", "Origin, Accept-Encoding")
    resp.add_default("X-Content-Type-Options", "nosniff")
    resp.add_default("X-Frame-Options", "SAMEORIGIN")


Handler = Callable[..., Response]
ROUTES: list[tuple[str, re.Pattern[str], Handler, bool]] = []


def route(method: str, pattern: str, *, auth: bool = True) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        ROUTES.append((method, re.compile(pattern), fn, auth))
        return fn

    return register


def handle(forge: LocalForge, req: Request) -> Response:
    token, sent = _token(req)
    user = forge.user_for_token(token) if sent else None
    throttle = _throttled(forge, req)
    if throttle is not None:
        resp = too_many_requests(throttle)
    elif sent and user is None:
        resp = message(401, "401 Unauthorized")
    else:
        resp = _route(forge, req, user)
    decorate(forge, req, resp, user)
    return resp


def _route(forge: LocalForge, req: Request, user: User | None) -> Response:
    if not req.path.startswith(PREFIX + "/"):
        return grape_error("404 Not Found", 404)
    sub = req.path[len(PREFIX) :]
    method = "GET" if req.method == "HEAD" else req.method
    for verb, pattern, fn, needs_auth in ROUTES:
        match = pattern.fullmatch(sub)
        if match is None or verb != method:
            continue
        if needs_auth and user is None:
            return message(401, "401 Unauthorized")
        return fn(forge, req, user, **{k: unquote(v) for k, v in match.groupdict().items() if v is not None})
    return grape_error("404 Not Found", 404)


def _params(req: Request) -> tuple[dict[str, Any], Response | None]:
    """Query parameters merged with a JSON or form body, as Grape sees them."""
    params: dict[str, Any] = {k: v[-1] for k, v in req.query.items()}
    if not req.body.strip():
        return params, None
    ctype = (req.header("content-type") or "").lower()
    if "application/x-www-form-urlencoded" in ctype:
        form = parse_qs(req.body.decode("utf-8", "replace"), keep_blank_values=True)
        params.update({k: v[-1] for k, v in form.items()})
        return params, None
    try:
        data = json.loads(req.body)
    except ValueError:
        return params, message(400, "400 Bad request - Invalid JSON")  # [U] exact text not verified
    if not isinstance(data, dict):
        return params, message(400, "400 Bad request - The request body must be a JSON object")
    params.update(data)
    return params, None


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "t"):
        return True
    if isinstance(value, str) and value.lower() in ("false", "0", "no", "f"):
        return False
    return None


def _paginate(forge: LocalForge, req: Request, items: list[Any]) -> Response:
    try:
        page = max(1, int(req.arg("page") or 1))
    except ValueError:
        return grape_error("page is invalid")
    try:
        per_page = min(100, max(1, int(req.arg("per_page") or 20)))
    except ValueError:
        return grape_error("per_page is invalid")
    total = len(items)
    pages = max(1, math.ceil(total / per_page))
    chunk = items[(page - 1) * per_page : page * per_page]
    others = [(k, v) for k, values in req.query.items() if k not in ("page", "per_page") for v in values]

    def link(number: int) -> str:
        query = urlencode([*others, ("page", str(number)), ("per_page", str(per_page))])
        return f"{forge.base_url}{req.path}?{query}"

    links = []
    if page > 1:
        links.append(f'<{link(page - 1)}>; rel="prev"')
    if page < pages:
        links.append(f'<{link(page + 1)}>; rel="next"')
    links.append(f'<{link(1)}>; rel="first"')
    links.append(f'<{link(pages)}>; rel="last"')
    headers = [
        ("X-Page", str(page)),
        ("X-Per-Page", str(per_page)),
        ("X-Total", str(total)),
        ("X-Total-Pages", str(pages)),
        ("X-Next-Page", str(page + 1) if page < pages else ""),
        ("X-Prev-Page", str(page - 1) if page > 1 else ""),
        ("Link", ", ".join(links)),
    ]
    return ok(chunk, 200, headers)


def _lookup(raw: str) -> int | str:
    return int(raw) if raw.isdigit() else raw


# ----------------------------------------------------------------------------- JSON shapes


def _avatar(forge: LocalForge, user: User) -> str:
    return f"{forge.base_url}/uploads/-/system/user/avatar/{user.id}/avatar.png"


def user_basic(forge: LocalForge, user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.login,
        "public_email": None,
        "name": user.name,
        "state": "active",
        "locked": False,
        "avatar_url": _avatar(forge, user),
        "web_url": f"{forge.base_url}/{user.login}",
    }


def current_user_json(forge: LocalForge, user: User) -> dict[str, Any]:
    created = iso_gitlab(user.created_at)
    return {
        **user_basic(forge, user),
        "created_at": created,
        "bio": "",
        "location": "",
        "linkedin": "",
        "twitter": "",
        "discord": "",
        "website_url": "",
        "github": "",
        "job_title": "",
        "pronouns": None,
        "organization": "",
        "bot": False,
        "work_information": None,
        "local_time": None,
        "last_sign_in_at": created,
        "confirmed_at": created,
        "last_activity_on": user.created_at.date().isoformat(),
        "email": user.email,
        "theme_id": 3,
        "color_scheme_id": 1,
        "projects_limit": 100000,
        "current_sign_in_at": created,
        "identities": [],
        "can_create_group": True,
        "can_create_project": True,
        "two_factor_enabled": False,
        "external": False,
        "private_profile": False,
        "commit_email": user.email,
        "preferred_language": "en",
    }


def _web_url(forge: LocalForge, ns: Namespace) -> str:
    return f"{forge.base_url}/{ns.full_path}" if ns.kind == "user" else f"{forge.base_url}/groups/{ns.full_path}"


def _full_name(forge: LocalForge, ns: Namespace) -> str:
    names, path = [], ""
    for part in ns.full_path.split("/"):
        path = f"{path}/{part}" if path else part
        current = forge.namespace_by_path(path)
        names.append(current.name if current else part)
    return " / ".join(names)


def namespace_json(forge: LocalForge, ns: Namespace) -> dict[str, Any]:
    return {
        "id": ns.id,
        "name": ns.name,
        "path": ns.path,
        "kind": "user" if ns.kind == "user" else "group",
        "full_path": ns.full_path,
        "parent_id": ns.parent_id,
        "avatar_url": None,
        "web_url": _web_url(forge, ns),
    }


def group_json(forge: LocalForge, ns: Namespace, viewer: User | None, *, with_projects: bool) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": ns.id,
        "web_url": _web_url(forge, ns),
        "name": ns.name,
        "path": ns.path,
        "description": ns.description,
        "visibility": ns.visibility,
        "share_with_group_lock": False,
        "require_two_factor_authentication": False,
        "two_factor_grace_period": 48,
        "project_creation_level": "developer",
        "auto_devops_enabled": None,
        "subgroup_creation_level": "maintainer",
        "emails_disabled": False,
        "emails_enabled": True,
        "mentions_disabled": None,
        "lfs_enabled": True,
        "default_branch": None,
        "default_branch_protection": 2,
        "avatar_url": None,
        "request_access_enabled": True,
        "full_name": _full_name(forge, ns),
        "full_path": ns.full_path,
        "created_at": iso_gitlab(ns.created_at),
        "parent_id": ns.parent_id,
        "organization_id": 1,
        "shared_runners_setting": "enabled",
        "ldap_cn": None,
        "ldap_access": None,
        "wiki_access_level": "enabled",
        "marked_for_deletion_on": None,
        "shared_with_groups": [],
        "prevent_sharing_groups_outside_hierarchy": False,
    }
    if with_projects:
        projects = [r for r in forge.repos_in(ns) if forge.can_read(viewer, r)]
        payload["projects"] = [project_json(forge, r, viewer) for r in projects]
        payload["shared_projects"] = []
    return payload


def _access(forge: LocalForge, repo: Repo, viewer: User | None) -> dict[str, Any]:
    level = {"access_level": OWNER, "notification_level": 3}
    if viewer is None or not forge.can_write(viewer, repo):
        return {"project_access": None, "group_access": None}
    if repo.namespace.kind == "user":
        return {"project_access": level, "group_access": None}
    return {"project_access": None, "group_access": level}


def project_json(forge: LocalForge, repo: Repo, viewer: User | None) -> dict[str, Any]:
    heads = forge.sync_default_branch(repo)
    base, full, ns = forge.base_url, repo.full_name, repo.namespace
    web = f"{base}/{full}"
    api_self = f"{base}{PREFIX}/projects/{repo.id}"
    empty = not heads
    default = repo.default_branch if not empty or knobs(forge).initial_default_branch else None
    creator = forge.user(repo.creator)
    has_readme = bool(
        default
        and run_git(
            ["cat-file", "-e", f"refs/heads/{default}:README.md"], home=forge.home, git_dir=repo.bare_path, check=False
        ).returncode
        == 0
    )
    payload: dict[str, Any] = {
        "id": repo.id,
        "description": repo.description,
        "name": repo.name,
        "name_with_namespace": f"{_full_name(forge, ns)} / {repo.name}",
        "path": repo.path,
        "path_with_namespace": full,
        "created_at": iso_gitlab(repo.created_at),
        "default_branch": default,
        "tag_list": list(repo.topics),
        "topics": list(repo.topics),
        "ssh_url_to_repo": f"git@127.0.0.1:{full}.git",
        "http_url_to_repo": f"{base}/{full}.git",
        "web_url": web,
        "readme_url": f"{web}/-/blob/{default}/README.md" if has_readme else None,
        "forks_count": 0,
        "avatar_url": None,
        "star_count": 0,
        "last_activity_at": iso_gitlab(max(repo.updated_at, repo.pushed_at)),
        "visibility": repo.visibility,
        "namespace": namespace_json(forge, ns),
        "container_registry_image_prefix": f"registry.{forge.host}/{full}".lower(),
        "_links": {
            "self": api_self,
            "issues": f"{api_self}/issues",
            "merge_requests": f"{api_self}/merge_requests",
            "repo_branches": f"{api_self}/repository/branches",
            "labels": f"{api_self}/labels",
            "events": f"{api_self}/events",
            "members": f"{api_self}/members",
            "cluster_agents": f"{api_self}/cluster_agents",
        },
        "packages_enabled": True,
        "empty_repo": empty,
        "archived": repo.archived,
        "resolve_outdated_diff_discussions": False,
        "repository_object_format": "sha1",
        "issues_enabled": True,
        "merge_requests_enabled": True,
        "wiki_enabled": True,
        "jobs_enabled": True,
        "snippets_enabled": True,
        "container_registry_enabled": True,
        "service_desk_enabled": False,
        "can_create_merge_request_in": forge.can_write(viewer, repo),
        "issues_access_level": "enabled",
        "repository_access_level": "enabled",
        "merge_requests_access_level": "enabled",
        "forking_access_level": "enabled",
        "wiki_access_level": "enabled",
        "builds_access_level": "enabled",
        "snippets_access_level": "enabled",
        "pages_access_level": "private",
        "analytics_access_level": "enabled",
        "container_registry_access_level": "enabled",
        "security_and_compliance_access_level": "private",
        "releases_access_level": "enabled",
        "environments_access_level": "enabled",
        "feature_flags_access_level": "enabled",
        "infrastructure_access_level": "enabled",
        "monitor_access_level": "enabled",
        "emails_disabled": False,
        "emails_enabled": True,
        "shared_runners_enabled": True,
        "lfs_enabled": True,
        "creator_id": creator.id if creator else None,
        "import_url": None,
        "import_type": None,
        "import_status": "none",
        "import_error": None,
        "open_issues_count": 0,
        "description_html": (
            f'<p data-sourcepos="1:1-1:{len(repo.description)}" dir="auto">{html.escape(repo.description)}</p>'
            if repo.description
            else ""
        ),
        "updated_at": iso_gitlab(repo.updated_at),
        "ci_default_git_depth": 20,
        "ci_forward_deployment_enabled": True,
        "ci_job_token_scope_enabled": False,
        "ci_separated_caches": True,
        "public_jobs": True,
        "build_timeout": 3600,
        "auto_cancel_pending_pipelines": "enabled",
        "ci_config_path": None,
        "shared_with_groups": [],
        "only_allow_merge_if_pipeline_succeeds": False,
        "allow_merge_on_skipped_pipeline": None,
        "request_access_enabled": True,
        "only_allow_merge_if_all_discussions_are_resolved": False,
        "remove_source_branch_after_merge": True,
        "printing_merge_request_link_enabled": True,
        "merge_method": "merge",
        "squash_option": "default_off",
        "enforce_auth_checks_on_uploads": True,
        "suggestion_commit_message": None,
        "merge_commit_template": None,
        "squash_commit_template": None,
        "issue_branch_template": None,
        "autoclose_referenced_issues": True,
        "permissions": _access(forge, repo, viewer),
    }
    if ns.kind == "user":
        owner = forge.owner_user(ns)
        if owner is not None:
            payload["owner"] = user_basic(forge, owner)
    return payload


def branch_json(forge: LocalForge, repo: Repo, branch: str, sha: str) -> dict[str, Any]:
    fmt = "%H%x00%h%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%s%x00%B"
    out = run_git(["log", "-1", f"--format={fmt}", sha], home=forge.home, git_dir=repo.bare_path).stdout.decode()
    full, short, parents, an, ae, ad, cn, ce, cd, subject, body = out.split("\x00", 10)
    web = f"{forge.base_url}/{repo.full_name}"
    is_default = branch == repo.default_branch
    return {
        "name": branch,
        "commit": {
            "id": full,
            "short_id": short,
            "created_at": cd,
            "parent_ids": parents.split(),
            "title": subject,
            "message": body.rstrip("\n") + "\n" if body.strip() else subject,
            "author_name": an,
            "author_email": ae,
            "authored_date": ad,
            "committer_name": cn,
            "committer_email": ce,
            "committed_date": cd,
            "trailers": {},
            "extended_trailers": {},
            "web_url": f"{web}/-/commit/{full}",
        },
        "merged": False,
        "protected": is_default,
        "developers_can_push": False,
        "developers_can_merge": False,
        "can_push": True,
        "default": is_default,
        "web_url": f"{web}/-/tree/{branch}",
    }


# ----------------------------------------------------------------------------- lookups


def _project(forge: LocalForge, user: User | None, raw: str) -> Repo | None:
    key = _lookup(raw)
    repo = forge.repo_by_id(key) if isinstance(key, int) else forge.find_repo(key)
    return repo if repo is not None and forge.can_read(user, repo) else None


def _namespace_visible(forge: LocalForge, user: User | None, ns: Namespace) -> bool:
    """Namespaces API: your own namespace and groups you belong to (directly, by inheritance, or below)."""
    if ns.kind == "user":
        return user is not None and ns.full_path.lower() == user.login.lower()
    return forge.belongs_to(user, ns)


def _group(forge: LocalForge, raw: str) -> Namespace | None:
    key = _lookup(raw)
    ns = forge.namespace_by_id(key) if isinstance(key, int) else forge.namespace_by_path(key)
    return ns if ns is not None and ns.kind == "group" else None


# ----------------------------------------------------------------------------- routes


@route("GET", r"/user")
def get_current_user(forge: LocalForge, req: Request, user: User) -> Response:
    return ok(current_user_json(forge, user))


@route("GET", r"/version")
def get_version(forge: LocalForge, req: Request, user: User) -> Response:
    return ok({"version": "17.11.1-ee", "revision": "localforge", "kas": {"enabled": False}, "enterprise": True})


@route("GET", r"/namespaces")
def list_namespaces(forge: LocalForge, req: Request, user: User) -> Response:
    search = (req.arg("search") or "").lower()
    items = [
        namespace_json(forge, ns)
        for ns in forge.namespaces()
        if _namespace_visible(forge, user, ns)
        and (not search or search in ns.path.lower() or search in ns.name.lower() or search in ns.full_path.lower())
    ]
    return _paginate(forge, req, items)


@route("GET", r"/namespaces/(?P<ident>[^/]+)")
def get_namespace(forge: LocalForge, req: Request, user: User, ident: str) -> Response:
    key = _lookup(ident)
    ns = forge.namespace_by_id(key) if isinstance(key, int) else forge.namespace_by_path(key)
    if ns is None or not _namespace_visible(forge, user, ns):
        return not_found("Namespace")
    return ok(namespace_json(forge, ns))


@route("GET", r"/groups/(?P<ident>[^/]+)", auth=False)
def get_group(forge: LocalForge, req: Request, user: User | None, ident: str) -> Response:
    ns = _group(forge, ident)
    if ns is None or not forge.can_see_namespace(user, ns):
        return not_found("Group")
    with_projects = _bool(req.arg("with_projects")) is not False
    return ok(group_json(forge, ns, user, with_projects=with_projects))


@route("GET", r"/groups/(?P<ident>[^/]+)/projects", auth=False)
def list_group_projects(forge: LocalForge, req: Request, user: User | None, ident: str) -> Response:
    ns = _group(forge, ident)
    if ns is None or not forge.can_see_namespace(user, ns):
        return not_found("Group")
    search = (req.arg("search") or "").lower()
    repos = [
        r
        for r in forge.repos_in(ns)
        if forge.can_read(user, r) and (not search or search in r.name.lower() or search in r.path.lower())
    ]
    return _paginate(forge, req, [project_json(forge, r, user) for r in repos])


def slugify(name: str) -> str:
    """Rails' `parameterize`: GitLab derives a missing path from the name this way."""
    return re.sub(r"[^a-z0-9_\-]+", "-", name.lower()).strip("-")


@route("POST", r"/projects")
def create_project(forge: LocalForge, req: Request, user: User) -> Response:
    params, problem = _params(req)
    if problem is not None:
        return problem
    name = params.get("name")
    path = params.get("path")
    name = str(name) if isinstance(name, str | int) and str(name) != "" else None
    path = str(path) if isinstance(path, str | int) and str(path) != "" else None
    if name is None and path is None:
        return grape_error("name, path are missing, at least one parameter must be provided")
    visibility = params.get("visibility", "private")
    if visibility not in VISIBILITIES:
        return grape_error("visibility does not have a valid value")
    readme = _bool(params.get("initialize_with_readme", False))
    if readme is None:
        return grape_error("initialize_with_readme is invalid")
    description = params.get("description")
    if description is not None and not isinstance(description, str):
        return grape_error("description is invalid")
    branch = params.get("default_branch")
    if branch is not None and not isinstance(branch, str):
        return grape_error("default_branch is invalid")
    raw_ns = params.get("namespace_id")
    ns_id: int | None = None
    if raw_ns is not None and raw_ns != "":
        if isinstance(raw_ns, bool) or not (isinstance(raw_ns, int) or (isinstance(raw_ns, str) and raw_ns.isdigit())):
            return grape_error("namespace_id is invalid")
        ns_id = int(raw_ns)
    if path is None:
        path = slugify(name or "")
    if name is None:
        name = path

    conf = knobs(forge)
    with forge.lock:
        ns = forge.user_namespace(user) if ns_id is None else forge.namespace_by_id(ns_id)
        # Projects::CreateService#deny_namespace: an unknown namespace or one the user cannot
        # create projects in is a validation error, not a 403/404.
        if ns is None or not (
            forge.is_member(user, ns) if ns.kind == "group" else ns.full_path.lower() == user.login.lower()
        ):
            return message(400, {"namespace": ["is not valid"]})
        if ns.full_path.lower() in {p.lower() for p in conf.no_create_in}:
            if conf.no_create_status == 403:
                return message(403, "403 Forbidden")
            return message(conf.no_create_status, {"namespace": ["is not valid"]})
        errors: dict[str, list[str]] = {}
        if not NAME_RE.match(name):
            errors["name"] = [NAME_MESSAGE]
        path_re, path_message = (STRICT_PATH_RE, STRICT_PATH_MESSAGE) if conf.strict_paths else (PATH_RE, PATH_MESSAGE)
        if not path_re.match(path) or path.endswith((".git", ".atom")):
            errors["path"] = [path_message]
        elif conf.strict_paths and path.lower() in RESERVED_PROJECT_PATHS:
            errors["path"] = [f"{path} is a reserved name"]  # [U] exact text not verified
        siblings = forge.repos_in(ns)
        if "name" not in errors and any(r.name == name for r in siblings):
            errors["name"] = [TAKEN]
        child_group = forge.namespace_by_path(f"{ns.full_path}/{path}")
        if "path" not in errors and (any(r.path.lower() == path.lower() for r in siblings) or child_group is not None):
            errors["path"] = [TAKEN]
        if errors.get("name") == [TAKEN]:
            errors["project_namespace.name"] = [TAKEN]
        if errors and conf.clash_status != 400 and all(v == [TAKEN] for v in errors.values()):
            return message(conf.clash_status, errors if conf.clash_message is None else conf.clash_message)
        if errors:
            return message(400, errors)
        repo = forge.create_repo(
            ns,
            name=name,
            path=path,
            creator=user.login.lower(),
            description=description,
            visibility=visibility,
            default_branch=(branch or "main") if readme else conf.initial_default_branch,
            params=params,
        )
    if readme:
        fast_import_commit(
            repo.bare_path,
            forge.home,
            branch=repo.default_branch or "main",
            files={"README.md": f"# {name}\n\n{description or ''}\n".encode()},
            message="Initial commit",
            parent=None,
            when=utcnow(),
        )
        forge.after_push(repo)
    return ok(project_json(forge, repo, user), 201)


@route("GET", r"/projects/(?P<ident>[^/]+)", auth=False)
def get_project(forge: LocalForge, req: Request, user: User | None, ident: str) -> Response:
    repo = _project(forge, user, ident)
    return ok(project_json(forge, repo, user)) if repo else not_found("Project")


@route("PUT", r"/projects/(?P<ident>[^/]+)")
def update_project(forge: LocalForge, req: Request, user: User, ident: str) -> Response:
    """Edit a project: the attributes Kiln may change (`default_branch`, `description`, `visibility`)."""
    repo = _project(forge, user, ident)
    if repo is None:
        return not_found("Project")
    if not forge.can_write(user, repo):
        return message(403, "403 Forbidden")
    params, problem = _params(req)
    if problem is not None:
        return problem
    if "visibility" in params and params["visibility"] not in VISIBILITIES:
        return grape_error("visibility does not have a valid value")
    if "description" in params and not isinstance(params["description"], str):
        return grape_error("description is invalid")
    branch = params.get("default_branch")
    if "default_branch" in params and (not isinstance(branch, str) or not branch):
        return grape_error("default_branch is invalid")
    with forge.lock:
        if isinstance(branch, str):
            if branch not in forge.heads(repo):
                return message(400, "Could not set the default branch")  # [U] exact text not verified
            forge.set_default_branch(repo, branch)
        if "description" in params:
            repo.description = params["description"]
        if "visibility" in params:
            repo.visibility = params["visibility"]
        repo.updated_at = utcnow()
    return ok(project_json(forge, repo, user))


@route("DELETE", r"/projects/(?P<ident>[^/]+)")
def delete_project(forge: LocalForge, req: Request, user: User, ident: str) -> Response:
    repo = _project(forge, user, ident)
    if repo is None:
        return not_found("Project")
    if not forge.can_write(user, repo):
        return message(403, "403 Forbidden")
    forge.delete_repo(repo)
    return message(202, "202 Accepted")


@route("GET", r"/projects/(?P<ident>[^/]+)/repository/branches", auth=False)
def list_branches(forge: LocalForge, req: Request, user: User | None, ident: str) -> Response:
    repo = _project(forge, user, ident)
    if repo is None:
        return not_found("Project")
    heads = forge.sync_default_branch(repo)
    search = req.arg("search") or ""
    items = [branch_json(forge, repo, b, sha) for b, sha in sorted(heads.items()) if search in b]
    return _paginate(forge, req, items)


@route("GET", r"/projects/(?P<ident>[^/]+)/repository/branches/(?P<branch>.+)", auth=False)
def get_branch(forge: LocalForge, req: Request, user: User | None, ident: str, branch: str) -> Response:
    repo = _project(forge, user, ident)
    if repo is None:
        return not_found("Project")
    heads = forge.sync_default_branch(repo)
    if branch not in heads:
        return not_found("Branch")
    return ok(branch_json(forge, repo, branch, heads[branch]))
