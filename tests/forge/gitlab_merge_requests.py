"""GitLab merge requests and branch creation: the REST paths a template update uses.

Written from docs.gitlab.com "Merge requests API" (list with `state`/`source_branch`/
`target_branch`, create, get, update with `state_event`; the single-MR and list shapes) and
"Branches API" (create, delete). Drafts are GitLab's: a title starting with `Draft:`,
`[Draft]` or `(Draft)` marks the merge request `draft: true`. Errors: Grape's `{"error":
"... is missing"}` for missing parameters, `{"message": {"source_branch": ["does not
exist"]}}` for an unknown branch, `409 {"message": ["Another open merge request already
exists for this source branch: !N"]}` for a duplicate, `400 {"message": "Branch already
exists"}`. Routes register on `gitlab_api`'s router; state lives in `reviews.Change`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from tests.forge import reviews
from tests.forge.github_pulls import BAD_REF
from tests.forge.gitlab_api import (
    _paginate,
    _params,
    _project,
    branch_json,
    grape_error,
    message,
    not_found,
    ok,
    route,
    user_basic,
)
from tests.forge.model import Request, Response, User, iso_gitlab, run_git

if TYPE_CHECKING:
    from tests.forge.server import LocalForge

PROJECT = r"/projects/(?P<ident>[^/]+)"
# GitLab's draft title prefixes (MergeRequest::DRAFT_REGEX, case-insensitive)
DRAFT_RE = re.compile(r"^\s*(\[draft\]|\(draft\)|draft:)", re.IGNORECASE)
STATES = ("opened", "closed", "locked", "merged", "all")


def _state(change: reviews.Change) -> str:
    return {reviews.OPEN: "opened", reviews.CLOSED: "closed", reviews.MERGED: "merged"}[change.state]


def mr_json(forge: LocalForge, change: reviews.Change, *, full: bool) -> dict[str, Any]:
    """One merge request as "Get single MR" (`full`) or "List merge requests" answers it."""
    repo = change.repo
    author = forge.user(change.author)
    merged_by = forge.user(change.merged_by) if change.merged_by else None
    head, base = reviews.head_sha(forge, change), reviews.base_sha(forge, change)
    facts = reviews.stats(forge, change)
    draft = bool(DRAFT_RE.match(change.title))
    if not change.is_open:
        status = "not_open"
    elif draft:
        status = "draft_status"
    elif not facts.mergeable:
        status = "conflict"
    else:
        status = "mergeable"
    web = f"{forge.base_url}/{repo.full_name}/-/merge_requests/{change.number}"
    payload: dict[str, Any] = {
        "id": change.id,
        "iid": change.number,
        "project_id": repo.id,
        "title": change.title,
        "description": change.body,
        "state": _state(change),
        "created_at": iso_gitlab(change.created_at),
        "updated_at": iso_gitlab(change.updated_at),
        "merged_by": user_basic(forge, merged_by) if merged_by else None,
        "merge_user": user_basic(forge, merged_by) if merged_by else None,
        "merged_at": iso_gitlab(change.merged_at) if change.merged_at else None,
        "closed_by": None,
        "closed_at": iso_gitlab(change.closed_at) if change.closed_at and change.state == reviews.CLOSED else None,
        "target_branch": change.base,
        "source_branch": change.head,
        "user_notes_count": 0,
        "upvotes": 0,
        "downvotes": 0,
        "author": user_basic(forge, author) if author else None,
        "assignees": [],
        "assignee": None,
        "reviewers": [],
        "source_project_id": repo.id,
        "target_project_id": repo.id,
        "labels": [],
        "draft": draft,
        "work_in_progress": draft,
        "milestone": None,
        "merge_when_pipeline_succeeds": False,
        "merge_status": "can_be_merged" if facts.mergeable else "cannot_be_merged",
        "detailed_merge_status": status,
        "sha": head,
        "merge_commit_sha": change.merge_commit_sha,
        "squash_commit_sha": None,
        "discussion_locked": None,
        "should_remove_source_branch": None,
        "force_remove_source_branch": bool(change.params.get("remove_source_branch", False)),
        "prepared_at": iso_gitlab(change.created_at),
        "reference": f"!{change.number}",
        "references": {
            "short": f"!{change.number}",
            "relative": f"!{change.number}",
            "full": f"{repo.full_name}!{change.number}",
        },
        "web_url": web,
        "time_stats": {
            "time_estimate": 0,
            "total_time_spent": 0,
            "human_time_estimate": None,
            "human_total_time_spent": None,
        },
        "squash": bool(change.params.get("squash", False)),
        "squash_on_merge": bool(change.params.get("squash", False)),
        "task_completion_status": {"count": 0, "completed_count": 0},
        "has_conflicts": not facts.mergeable,
        "blocking_discussions_resolved": True,
    }
    if full:
        start = reviews.merge_base(forge, repo, base, head) if head and base else None
        payload.update(
            {
                "subscribed": True,
                "changes_count": str(facts.changed_files),
                "latest_build_started_at": None,
                "latest_build_finished_at": None,
                "first_deployed_to_production_at": None,
                "pipeline": None,
                "head_pipeline": None,
                "diff_refs": {"base_sha": start, "head_sha": head, "start_sha": base},
                "merge_error": None,
                "first_contribution": False,
                "user": {"can_merge": True},
                "approvals_before_merge": None,
            }
        )
    return payload


def _writable(forge: LocalForge, user: User, ident: str) -> tuple[Any, Response | None]:
    repo = _project(forge, user, ident)
    if repo is None:
        return None, not_found("Project")
    if not forge.can_write(user, repo):
        return None, message(403, "403 Forbidden")
    return repo, None


def _duplicate(change: reviews.Change) -> Response:
    return message(409, [f"Another open merge request already exists for this source branch: !{change.number}"])


# ----------------------------------------------------------------------------- branches


@route("POST", PROJECT + r"/repository/branches")
def create_branch(forge: LocalForge, req: Request, user: User, ident: str) -> Response:
    repo, refused = _writable(forge, user, ident)
    if refused is not None:
        return refused
    params, problem = _params(req)
    if problem is not None:
        return problem
    missing = [key for key in ("branch", "ref") if not isinstance(params.get(key), str) or not params.get(key)]
    if missing:
        return grape_error(", ".join(f"{key} is missing" for key in missing))
    branch, ref = params["branch"], params["ref"]
    if BAD_REF.search(branch) or branch.startswith(("-", "refs/")):
        return message(400, "Branch name is invalid")
    with forge.lock:
        heads = forge.heads(repo)
        if branch in heads:
            return message(400, "Branch already exists")
        sha = heads.get(ref)
        if sha is None:
            probe = run_git(
                ["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
                home=forge.home,
                git_dir=repo.bare_path,
                check=False,
            )
            sha = probe.stdout.decode().strip() if probe.returncode == 0 else None
        if not sha:
            return message(400, "Invalid reference name: " + ref)
        run_git(["update-ref", f"refs/heads/{branch}", sha, ""], home=forge.home, git_dir=repo.bare_path)
        forge.after_push(repo)
    return ok(branch_json(forge, repo, branch, sha), 201)


@route("DELETE", PROJECT + r"/repository/branches/(?P<branch>.+)")
def delete_branch(forge: LocalForge, req: Request, user: User, ident: str, branch: str) -> Response:
    repo, refused = _writable(forge, user, ident)
    if refused is not None:
        return refused
    with forge.lock:
        heads = forge.heads(repo)
        if branch not in heads:
            return not_found("Branch")
        if branch == repo.default_branch:
            return message(405, "405 Method Not Allowed")
        run_git(["update-ref", "-d", f"refs/heads/{branch}", heads[branch]], home=forge.home, git_dir=repo.bare_path)
    return Response(204)


# ----------------------------------------------------------------------------- merge requests


@route("GET", PROJECT + r"/merge_requests", auth=False)
def list_merge_requests(forge: LocalForge, req: Request, user: User | None, ident: str) -> Response:
    repo = _project(forge, user, ident)
    if repo is None:
        return not_found("Project")
    state = req.arg("state") or "all"
    if state not in STATES:
        return grape_error("state does not have a valid value")
    source, target = req.arg("source_branch"), req.arg("target_branch")
    items = [
        change
        for change in repo.changes
        if (state == "all" or _state(change) == state)
        and (source is None or change.head == source)
        and (target is None or change.base == target)
    ]
    order = req.arg("order_by") or "created_at"
    key = (lambda c: (c.updated_at, c.id)) if order == "updated_at" else (lambda c: (c.created_at, c.id))
    items.sort(key=key, reverse=(req.arg("sort") or "desc") == "desc")
    return _paginate(forge, req, [mr_json(forge, c, full=False) for c in items])


@route("POST", PROJECT + r"/merge_requests")
def create_merge_request(forge: LocalForge, req: Request, user: User, ident: str) -> Response:
    repo, refused = _writable(forge, user, ident)
    if refused is not None:
        return refused
    params, problem = _params(req)
    if problem is not None:
        return problem
    missing = [
        key
        for key in ("source_branch", "target_branch", "title")
        if not isinstance(params.get(key), str) or not params.get(key)
    ]
    if missing:
        return grape_error(", ".join(f"{key} is missing" for key in missing))
    source, target = params["source_branch"], params["target_branch"]
    description = params.get("description")
    if description is not None and not isinstance(description, str):
        return grape_error("description is invalid")
    if source == target:
        return message(422, ["You can't use same project/branch for source and target"])
    with forge.lock:
        heads = forge.heads(repo)
        unknown = {key: ["does not exist"] for key, name in (("source_branch", source), ("target_branch", target))}
        unknown = {key: value for key, value in unknown.items() if params[key] not in heads}
        if unknown:
            return message(400, unknown)
        for change in repo.changes:
            if change.is_open and change.head == source and change.base == target:
                return _duplicate(change)
        change = reviews.open_change(
            forge,
            repo,
            author=user.login,
            title=params["title"],
            body=description,
            head=source,
            base=target,
            draft=bool(DRAFT_RE.match(params["title"])),
            params=params,
        )
    return ok(mr_json(forge, change, full=True), 201)


def _merge_request(forge: LocalForge, user: User | None, ident: str, iid: str) -> tuple[Any, Response | None]:
    repo = _project(forge, user, ident)
    if repo is None:
        return None, not_found("Project")
    change = reviews.find(repo, int(iid))
    if change is None:
        return None, not_found("Merge Request")
    return change, None


@route("GET", PROJECT + r"/merge_requests/(?P<iid>\d+)", auth=False)
def get_merge_request(forge: LocalForge, req: Request, user: User | None, ident: str, iid: str) -> Response:
    change, missing = _merge_request(forge, user, ident, iid)
    if missing is not None:
        return missing
    return ok(mr_json(forge, change, full=True))


@route("PUT", PROJECT + r"/merge_requests/(?P<iid>\d+)")
def update_merge_request(forge: LocalForge, req: Request, user: User, ident: str, iid: str) -> Response:
    change, missing = _merge_request(forge, user, ident, iid)
    if missing is not None:
        return missing
    if not forge.can_write(user, change.repo):
        return message(403, "403 Forbidden")
    params, problem = _params(req)
    if problem is not None:
        return problem
    editable = ("title", "description", "state_event", "target_branch", "remove_source_branch", "squash")
    if not any(key in params for key in editable):
        return grape_error(
            "assignee_id, assignee_ids, reviewer_ids, description, labels, add_labels, remove_labels, "
            "milestone_id, remove_source_branch, allow_collaboration, allow_maintainer_to_push, squash, "
            "discussion_locked, state_event, target_branch, title are missing, at least one parameter must be provided"
        )
    event = params.get("state_event")
    if event is not None and event not in ("close", "reopen"):
        return grape_error("state_event does not have a valid value")
    for key in ("title", "description", "target_branch"):
        if key in params and not isinstance(params[key], str):
            return grape_error(f"{key} is invalid")
    with forge.lock:
        target = params.get("target_branch", change.base)
        if target not in forge.heads(change.repo):
            return message(400, {"target_branch": ["does not exist"]})
        if event == "reopen" and change.state == reviews.CLOSED:
            for other in change.repo.changes:
                if other is not change and other.is_open and other.head == change.head and other.base == target:
                    return _duplicate(other)
            reviews.reopen(forge, change)
        elif event == "close":
            reviews.close(forge, change)
        if "title" in params:
            change.title = params["title"]
            change.draft = bool(DRAFT_RE.match(change.title))
        if "description" in params:
            change.body = params["description"]
        change.base = target
        for key in ("remove_source_branch", "squash"):
            if key in params:
                change.params[key] = params[key]
        change.updated_at = reviews.utcnow()
    return ok(mr_json(forge, change, full=True))
