"""GitHub pull requests and git references: the REST paths a template update uses.

Written from docs.github.com: "Pulls" (create, list with `state`/`head`/`base`, get,
update; the "pull-request" and "pull-request-simple" shapes) and "Git references" (create,
update with `force`, delete). Errors are the documented validation bodies (`422
Validation Failed` with `errors[]`) and the messages github.com sends for the cases the
docs name without a body: "A pull request already exists for owner:branch.", "No commits
between main and feature", "Reference already exists", "Update is not a fast forward".
Routes register on `github_api`'s router; state lives in `reviews.Change`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from tests.forge import reviews
from tests.forge.github_api import (
    REPO,
    _json_object,
    _ref_json,
    _visible,
    api_base,
    error,
    not_found,
    ok,
    owner_json,
    repo_json,
    route,
    validation_failed,
)
from tests.forge.model import Repo, Request, Response, User, iso_github, node_id, read_refs, run_git

if TYPE_CHECKING:
    from tests.forge.server import LocalForge

DOC_CREATE = "https://docs.github.com/rest/pulls/pulls#create-a-pull-request"
DOC_UPDATE = "https://docs.github.com/rest/pulls/pulls#update-a-pull-request"
DOC_LIST = "https://docs.github.com/rest/pulls/pulls#list-pull-requests"
DOC_GET = "https://docs.github.com/rest/pulls/pulls#get-a-pull-request"
DOC_CREATE_REF = "https://docs.github.com/rest/git/refs#create-a-reference"
DOC_UPDATE_REF = "https://docs.github.com/rest/git/refs#update-a-reference"
DOC_DELETE_REF = "https://docs.github.com/rest/git/refs#delete-a-reference"
SHA_RE = re.compile(r"^[0-9a-f]{40}$")
# git check-ref-format, roughly: what GitHub refuses as a branch name
BAD_REF = re.compile(r"(^|/)\.|\.\.|[\x00-\x20~^:?*\[\\]|@\{|\.lock(/|$)|/$|//|\.$")


# ----------------------------------------------------------------------------- JSON shapes


def _branch_end(forge: LocalForge, repo: Repo, branch: str, sha: str | None) -> dict[str, Any]:
    owner = repo.namespace.full_path
    return {
        "label": f"{owner}:{branch}",
        "ref": branch,
        "sha": sha,
        "user": owner_json(forge, repo.namespace),
        "repo": repo_json(forge, repo, None),
    }


def pull_json(forge: LocalForge, change: reviews.Change, *, full: bool) -> dict[str, Any]:
    """The "pull-request" document (`full`) or the "pull-request-simple" list item."""
    repo = change.repo
    api, base = api_base(forge), forge.base_url
    r = f"{api}/repos/{repo.full_name}"
    url = f"{r}/pulls/{change.number}"
    html = f"{base}/{repo.full_name}/pull/{change.number}"
    author = forge.user(change.author)
    user = owner_json(forge, forge.user_namespace(author)) if author else None
    head_sha = reviews.head_sha(forge, change)
    state = "open" if change.state == reviews.OPEN else "closed"
    payload: dict[str, Any] = {
        "url": url,
        "id": change.id,
        "node_id": node_id("PullRequest", change.id),
        "html_url": html,
        "diff_url": f"{html}.diff",
        "patch_url": f"{html}.patch",
        "issue_url": f"{r}/issues/{change.number}",
        "number": change.number,
        "state": state,
        "locked": False,
        "title": change.title,
        "user": user,
        "body": change.body,
        "created_at": iso_github(change.created_at),
        "updated_at": iso_github(change.updated_at),
        "closed_at": iso_github(change.closed_at) if change.closed_at else None,
        "merged_at": iso_github(change.merged_at) if change.merged_at else None,
        "merge_commit_sha": change.merge_commit_sha,
        "assignee": None,
        "assignees": [],
        "requested_reviewers": [],
        "requested_teams": [],
        "labels": [],
        "milestone": None,
        "draft": change.draft,
        "commits_url": f"{url}/commits",
        "review_comments_url": f"{url}/comments",
        "review_comment_url": f"{r}/pulls/comments{{/number}}",
        "comments_url": f"{r}/issues/{change.number}/comments",
        "statuses_url": f"{r}/statuses/{head_sha}",
        "head": _branch_end(forge, repo, change.head, head_sha),
        "base": _branch_end(forge, repo, change.base, reviews.base_sha(forge, change)),
        "_links": {
            "self": {"href": url},
            "html": {"href": html},
            "issue": {"href": f"{r}/issues/{change.number}"},
            "comments": {"href": f"{r}/issues/{change.number}/comments"},
            "review_comments": {"href": f"{url}/comments"},
            "review_comment": {"href": f"{r}/pulls/comments{{/number}}"},
            "commits": {"href": f"{url}/commits"},
            "statuses": {"href": f"{r}/statuses/{head_sha}"},
        },
        "author_association": "OWNER" if change.author == repo.creator else "MEMBER",
        "auto_merge": None,
        "active_lock_reason": None,
    }
    if full:
        facts = reviews.stats(forge, change)
        merged = change.state == reviews.MERGED
        merged_by = forge.user(change.merged_by) if change.merged_by else None
        mergeable = facts.mergeable if change.is_open else None
        payload.update(
            {
                "merged": merged,
                "mergeable": mergeable,
                "rebaseable": mergeable,
                "mergeable_state": ("draft" if change.draft else ("clean" if mergeable else "dirty"))
                if change.is_open
                else "unknown",
                "merged_by": owner_json(forge, forge.user_namespace(merged_by)) if merged_by else None,
                "comments": 0,
                "review_comments": 0,
                "maintainer_can_modify": change.maintainer_can_modify,
                "commits": facts.commits,
                "additions": facts.additions,
                "deletions": facts.deletions,
                "changed_files": facts.changed_files,
            }
        )
    return payload


# ----------------------------------------------------------------------------- helpers


def _writable(forge: LocalForge, user: User | None, owner: str, name: str) -> tuple[Repo | None, Response | None]:
    repo = _visible(forge, user, owner, name)
    if repo is None:
        return None, not_found()
    if not forge.can_write(user, repo):
        # GitHub hides what the token may not write behind 404 for private repositories and
        # answers 403 for public ones.
        return None, not_found() if repo.private else error(403, "Must have push access to repository.")
    return repo, None


def _head_branch(repo: Repo, head: str) -> str | None:
    """`branch` or `owner:branch` (the owner must be this repository's: no forks here)."""
    owner, sep, branch = head.rpartition(":")
    if sep and owner.lower() != repo.namespace.full_path.lower():
        return None
    return branch


def _invalid(field: str, doc: str) -> Response:
    return validation_failed([{"resource": "PullRequest", "field": field, "code": "invalid"}], doc)


def _custom(message: str, doc: str) -> Response:
    return validation_failed([{"resource": "PullRequest", "code": "custom", "message": message}], doc)


def _paginate(forge: LocalForge, req: Request, items: list[Any], doc: str) -> Response:
    try:
        page = max(1, int(req.arg("page") or 1))
        per_page = min(100, max(1, int(req.arg("per_page") or 30)))
    except ValueError:
        return error(400, "Invalid pagination parameters", doc)
    pages = max(1, -(-len(items) // per_page))
    chunk = items[(page - 1) * per_page : page * per_page]
    others = [(k, v) for k, values in req.query.items() if k not in ("page", "per_page") for v in values]

    def link(number: int) -> str:
        return f"{api_base(forge)}{req.path[len('/api/v3') :]}?{urlencode([*others, ('per_page', str(per_page)), ('page', str(number))])}"

    links = []
    if page < pages:
        links += [f'<{link(page + 1)}>; rel="next"', f'<{link(pages)}>; rel="last"']
    if page > 1:
        links += [f'<{link(1)}>; rel="first"', f'<{link(page - 1)}>; rel="prev"']
    return ok(chunk, 200, [("Link", ", ".join(links))] if links else None)


# ----------------------------------------------------------------------------- pulls


@route("POST", REPO + r"/pulls", auth=True)
def create_pull(forge: LocalForge, req: Request, user: User, owner: str, name: str) -> Response:
    repo, refused = _writable(forge, user, owner, name)
    if refused is not None:
        return refused
    assert repo is not None
    data, problem = _json_object(req, DOC_CREATE)
    if problem is not None:
        return problem
    missing = [key for key in ("head", "base") if not isinstance(data.get(key), str) or not data.get(key)]
    if not data.get("title") and "issue" not in data:
        missing.append("title")
    if missing:
        return validation_failed(
            [{"resource": "PullRequest", "code": "missing_field", "field": key} for key in missing], DOC_CREATE
        )
    for key, kind in (("title", str), ("body", str), ("draft", bool), ("maintainer_can_modify", bool)):
        if key in data and data[key] is not None and not isinstance(data[key], kind):
            return _invalid(key, DOC_CREATE)
    with forge.lock:
        heads = forge.heads(repo)
        if not heads:
            return error(409, "Git Repository is empty.", DOC_CREATE)
        branch = _head_branch(repo, data["head"])
        if branch is None or branch not in heads:
            return _invalid("head", DOC_CREATE)
        base = data["base"]
        if base not in heads:
            return _invalid("base", DOC_CREATE)
        label = f"{repo.namespace.full_path}:{branch}"
        if any(c.is_open and c.head == branch and c.base == base for c in repo.changes):
            return _custom(f"A pull request already exists for {label}.", DOC_CREATE)
        ahead = run_git(
            ["rev-list", "--count", f"{heads[base]}..{heads[branch]}"], home=forge.home, git_dir=repo.bare_path
        )
        if int(ahead.stdout.decode().strip() or 0) == 0:
            return _custom(f"No commits between {base} and {branch}", DOC_CREATE)
        change = reviews.open_change(
            forge,
            repo,
            author=user.login,
            title=data.get("title") or "",
            body=data.get("body"),
            head=branch,
            base=base,
            draft=bool(data.get("draft", False)),
            maintainer_can_modify=bool(data.get("maintainer_can_modify", False)),
            params=data,
        )
    payload = pull_json(forge, change, full=True)
    return ok(payload, 201, [("Location", payload["url"])])


@route("GET", REPO + r"/pulls", auth=False)
def list_pulls(forge: LocalForge, req: Request, user: User | None, owner: str, name: str) -> Response:
    repo = _visible(forge, user, owner, name)
    if repo is None:
        return not_found(DOC_LIST)
    state = req.arg("state") or "open"
    if state not in ("open", "closed", "all"):
        return _invalid("state", DOC_LIST)
    head, base = req.arg("head"), req.arg("base")
    items = []
    for change in repo.changes:
        if (state == "open" and not change.is_open) or (state == "closed" and change.is_open):
            continue
        if head is not None:
            # "Filter pulls by head user or head organization and branch name in the format of
            # user:ref-name or organization:ref-name."
            who, _, branch = head.partition(":")
            if who.lower() != repo.namespace.full_path.lower() or (branch and branch != change.head):
                continue
        if base is not None and change.base != base:
            continue
        items.append(change)
    sort, direction = req.arg("sort") or "created", req.arg("direction")
    key = {"created": lambda c: (c.created_at, c.id), "updated": lambda c: (c.updated_at, c.id)}.get(
        sort, lambda c: (c.created_at, c.id)
    )
    items.sort(key=key, reverse=(direction or "desc") == "desc")
    return _paginate(forge, req, [pull_json(forge, c, full=False) for c in items], DOC_LIST)


def _change_or_404(
    forge: LocalForge, user: User | None, owner: str, name: str, number: str, doc: str
) -> tuple[reviews.Change | None, Response | None]:
    repo = _visible(forge, user, owner, name)
    change = reviews.find(repo, int(number)) if repo is not None else None
    if change is None:
        return None, not_found(doc)
    return change, None


@route("GET", REPO + r"/pulls/(?P<number>\d+)", auth=False)
def get_pull(forge: LocalForge, req: Request, user: User | None, owner: str, name: str, number: str) -> Response:
    change, missing = _change_or_404(forge, user, owner, name, number, DOC_GET)
    if missing is not None:
        return missing
    assert change is not None
    return ok(pull_json(forge, change, full=True))


@route("PATCH", REPO + r"/pulls/(?P<number>\d+)", auth=True)
def update_pull(forge: LocalForge, req: Request, user: User, owner: str, name: str, number: str) -> Response:
    change, missing = _change_or_404(forge, user, owner, name, number, DOC_UPDATE)
    if missing is not None:
        return missing
    assert change is not None
    if not forge.can_write(user, change.repo) and change.author != user.login.lower():
        return error(403, "Must have push access to repository.", DOC_UPDATE)
    data, problem = _json_object(req, DOC_UPDATE)
    if problem is not None:
        return problem
    for key, kind in (("title", str), ("body", str), ("state", str), ("base", str), ("maintainer_can_modify", bool)):
        if key in data and data[key] is not None and not isinstance(data[key], kind):
            return _invalid(key, DOC_UPDATE)
    if "state" in data and data["state"] not in ("open", "closed"):
        return _invalid("state", DOC_UPDATE)
    with forge.lock:
        if change.state == reviews.MERGED and data.get("state") == "open":
            return _custom("Cannot reopen a merged pull request", DOC_UPDATE)
        if "base" in data and data["base"] not in forge.heads(change.repo):
            return _invalid("base", DOC_UPDATE)
        if data.get("state") == "open" and not change.is_open:
            clash = any(
                c.is_open and c.head == change.head and c.base == data.get("base", change.base)
                for c in change.repo.changes
            )
            if clash:
                label = f"{change.repo.namespace.full_path}:{change.head}"
                return _custom(f"A pull request already exists for {label}.", DOC_UPDATE)
            reviews.reopen(forge, change)
        elif data.get("state") == "closed":
            reviews.close(forge, change)
        for key in ("title", "body", "base", "maintainer_can_modify"):
            if key in data and data[key] is not None:
                setattr(change, key, data[key])
        change.updated_at = reviews.utcnow()
    return ok(pull_json(forge, change, full=True))


# ----------------------------------------------------------------------------- git references


def _object_exists(forge: LocalForge, repo: Repo, sha: str) -> bool:
    probe = run_git(["cat-file", "-e", f"{sha}^{{commit}}"], home=forge.home, git_dir=repo.bare_path, check=False)
    return probe.returncode == 0


@route("POST", REPO + r"/git/refs", auth=True)
def create_ref(forge: LocalForge, req: Request, user: User, owner: str, name: str) -> Response:
    repo, refused = _writable(forge, user, owner, name)
    if refused is not None:
        return refused
    assert repo is not None
    data, problem = _json_object(req, DOC_CREATE_REF)
    if problem is not None:
        return problem
    ref, sha = data.get("ref"), data.get("sha")
    missing = [key for key, value in (("ref", ref), ("sha", sha)) if not isinstance(value, str) or not value]
    if missing:
        return error(422, f'Invalid request.\n\n"{missing[0]}" wasn\'t supplied.', DOC_CREATE_REF)
    assert isinstance(ref, str) and isinstance(sha, str)
    if not ref.startswith("refs/") or ref.count("/") < 2 or BAD_REF.search(ref[5:]):
        return error(422, "Reference name must start with 'refs/' and have at least two slashes.", DOC_CREATE_REF)
    with forge.lock:
        refs = read_refs(repo.bare_path, forge.home)
        if not refs:
            return error(409, "Git Repository is empty.", DOC_CREATE_REF)
        if ref in refs:
            return error(422, "Reference already exists", DOC_CREATE_REF)
        if not SHA_RE.match(sha) or not _object_exists(forge, repo, sha):
            return error(422, "Object does not exist", DOC_CREATE_REF)
        run_git(["update-ref", ref, sha, ""], home=forge.home, git_dir=repo.bare_path)
        forge.after_push(repo)
    payload = _ref_json(forge, repo, ref, sha)
    return ok(payload, 201, [("Location", payload["url"])])


@route("PATCH", REPO + r"/git/refs/(?P<ref>.+)", auth=True)
def update_ref(forge: LocalForge, req: Request, user: User, owner: str, name: str, ref: str) -> Response:
    repo, refused = _writable(forge, user, owner, name)
    if refused is not None:
        return refused
    assert repo is not None
    data, problem = _json_object(req, DOC_UPDATE_REF)
    if problem is not None:
        return problem
    sha, force = data.get("sha"), data.get("force", False)
    if not isinstance(sha, str) or not sha:
        return error(422, 'Invalid request.\n\n"sha" wasn\'t supplied.', DOC_UPDATE_REF)
    if not isinstance(force, bool):
        return error(422, "Invalid request.\n\nFor 'properties/force', \"yes\" is not a boolean.", DOC_UPDATE_REF)
    full = f"refs/{ref}"
    with forge.lock:
        refs = read_refs(repo.bare_path, forge.home)
        if full not in refs:
            return error(422, "Reference does not exist", DOC_UPDATE_REF)
        if not SHA_RE.match(sha) or not _object_exists(forge, repo, sha):
            return error(422, "Object does not exist", DOC_UPDATE_REF)
        old = refs[full]
        if not force:
            ancestor = run_git(
                ["merge-base", "--is-ancestor", old, sha], home=forge.home, git_dir=repo.bare_path, check=False
            )
            if ancestor.returncode != 0:
                return error(422, "Update is not a fast forward", DOC_UPDATE_REF)
        run_git(["update-ref", full, sha, old], home=forge.home, git_dir=repo.bare_path)
        forge.after_push(repo)
    return ok(_ref_json(forge, repo, full, sha))


@route("DELETE", REPO + r"/git/refs/(?P<ref>.+)", auth=True)
def delete_ref(forge: LocalForge, req: Request, user: User, owner: str, name: str, ref: str) -> Response:
    repo, refused = _writable(forge, user, owner, name)
    if refused is not None:
        return refused
    assert repo is not None
    full = f"refs/{ref}"
    with forge.lock:
        refs = read_refs(repo.bare_path, forge.home)
        if full not in refs:
            return error(422, "Reference does not exist", DOC_DELETE_REF)
        run_git(["update-ref", "-d", full, refs[full]], home=forge.home, git_dir=repo.bare_path)
    return Response(204)
