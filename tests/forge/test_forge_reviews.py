"""Contract tests: pull requests, merge requests and branch refs through the real clients.

PyGithub 2.10 (`Repository.create_git_ref`, `GitRef.edit`, `create_pull`, `get_pulls`,
`PullRequest.edit`, `get_pull`) and python-gitlab 8.6 (`branches.create`,
`mergerequests.create/list/get`, `ProjectMergeRequest.save`) against the local forge:
what each sends (method, path, query, body), what it gets back, and which exception it
raises for the documented errors. The forge's `merge_change` plays the reviewer.
"""

from __future__ import annotations

from typing import Any

import gitlab
import pytest
from github import Auth, Github, GithubException

from tests.forge import LocalForge
from tests.forge.fixtures import ALICE_TOKEN, BOB_TOKEN


def gh(forge: LocalForge, token: str = ALICE_TOKEN) -> Github:
    return Github(
        auth=Auth.Token(token),
        base_url=forge.api_url,
        seconds_between_requests=None,
        seconds_between_writes=None,
        retry=None,
    )


def gl(forge: LocalForge, token: str = ALICE_TOKEN) -> gitlab.Gitlab:
    return gitlab.Gitlab(forge.api_url, private_token=token, retry_transient_errors=False, timeout=5)


def last(forge: LocalForge) -> Any:
    return forge.requests[-1]


def with_feature_branch(forge: LocalForge, full_name: str, branch: str = "feature") -> tuple[str, str]:
    """A repository with `main` and `branch` one commit ahead of it; returns (main sha, branch sha)."""
    main = forge.seed_commit(full_name, files={"README.md": "# demo\n"})
    bare = forge.repo_path(full_name)
    from tests.forge.model import run_git

    run_git(["update-ref", f"refs/heads/{branch}", main], home=forge.home, git_dir=bare)
    head = forge.seed_commit(full_name, branch=branch, files={"README.md": "# demo\n\nmore\n"}, message="change")
    return main, head


# ----------------------------------------------------------------------------- GitHub: git refs


def test_github_create_update_delete_ref(github_forge: LocalForge) -> None:
    github_forge.create_repo_directly("alice/demo", "alice")
    main = github_forge.seed_commit("alice/demo")
    repo = gh(github_forge).get_repo("alice/demo")

    ref = repo.create_git_ref("refs/heads/kiln/update/x", main)
    sent = last(github_forge)
    assert (sent.method, sent.path, sent.json, sent.status) == (
        "POST",
        "/api/v3/repos/alice/demo/git/refs",
        {"ref": "refs/heads/kiln/update/x", "sha": main},
        201,
    )
    assert ref.ref == "refs/heads/kiln/update/x" and ref.object.sha == main
    assert github_forge.refs("alice/demo")["refs/heads/kiln/update/x"] == main

    with pytest.raises(GithubException) as exists:
        repo.create_git_ref("refs/heads/kiln/update/x", main)
    assert exists.value.status == 422 and exists.value.data["message"] == "Reference already exists"
    with pytest.raises(GithubException) as unknown:
        repo.create_git_ref("refs/heads/other", "0" * 40)
    assert unknown.value.status == 422 and unknown.value.data["message"] == "Object does not exist"

    ahead = github_forge.seed_commit("alice/demo", branch="kiln/update/x", files={"a.txt": "a\n"})
    with pytest.raises(GithubException) as backwards:
        repo.get_git_ref("heads/kiln/update/x").edit(main)
    assert backwards.value.status == 422
    assert github_forge.refs("alice/demo")["refs/heads/kiln/update/x"] == ahead


@pytest.mark.parametrize("force", [False, True])
def test_github_ref_update_is_fast_forward_only_unless_forced(github_forge: LocalForge, force: bool) -> None:
    github_forge.create_repo_directly("alice/demo", "alice")
    main, head = with_feature_branch(github_forge, "alice/demo")
    repo = gh(github_forge).get_repo("alice/demo")
    ref = repo.get_git_ref("heads/main")
    assert ref.object.sha == main

    ref.edit(head)  # main → feature is a fast-forward
    sent = last(github_forge)
    assert (sent.method, sent.path, sent.json, sent.status) == (
        "PATCH",
        "/api/v3/repos/alice/demo/git/refs/heads/main",
        {"sha": head},
        200,
    )
    assert github_forge.refs("alice/demo")["refs/heads/main"] == head

    if force:
        ref.edit(main, force=True)
        assert last(github_forge).json == {"sha": main, "force": True}
        assert github_forge.refs("alice/demo")["refs/heads/main"] == main
    else:
        with pytest.raises(GithubException) as refused:
            ref.edit(main)
        assert refused.value.status == 422
        assert refused.value.data["message"] == "Update is not a fast forward"
        assert github_forge.refs("alice/demo")["refs/heads/main"] == head

    ref.delete()
    assert last(github_forge).method == "DELETE" and last(github_forge).status == 204
    assert "refs/heads/main" not in github_forge.refs("alice/demo")


# ----------------------------------------------------------------------------- GitHub: pulls


def test_github_create_pull_sends_documented_body_and_gets_a_pull_request(github_forge: LocalForge) -> None:
    github_forge.create_repo_directly("alice/demo", "alice")
    main, head = with_feature_branch(github_forge, "alice/demo")
    repo = gh(github_forge).get_repo("alice/demo")

    pull = repo.create_pull(base="main", head="feature", title="Update", body="**files**", draft=True)
    sent = last(github_forge)
    assert (sent.method, sent.path, sent.status) == ("POST", "/api/v3/repos/alice/demo/pulls", 201)
    assert sent.json == {"base": "main", "head": "feature", "title": "Update", "body": "**files**", "draft": True}
    assert pull.number == 1 and pull.draft is True and pull.state == "open"
    assert pull.head.ref == "feature" and pull.head.sha == head and pull.base.sha == main
    assert pull.head.label == "alice:feature"
    assert pull.html_url == f"{github_forge.base_url}/alice/demo/pull/1"
    assert (pull.commits, pull.changed_files, pull.additions, pull.deletions) == (1, 1, 2, 0)
    assert pull.merged is False and pull.user.login == "alice"
    assert sent.response["url"] == f"{github_forge.api_url}/repos/alice/demo/pulls/1"

    # the head moves with the branch
    newer = github_forge.seed_commit("alice/demo", branch="feature", files={"x.txt": "x\n"})
    assert repo.get_pull(1).head.sha == newer
    assert last(github_forge).path == "/api/v3/repos/alice/demo/pulls/1"


def test_github_pull_errors_are_documented_validation_failures(github_forge: LocalForge) -> None:
    github_forge.create_repo_directly("alice/demo", "alice")
    main, _ = with_feature_branch(github_forge, "alice/demo")
    repo = gh(github_forge).get_repo("alice/demo")
    repo.create_pull(base="main", head="alice:feature", title="first")

    with pytest.raises(GithubException) as duplicate:
        repo.create_pull(base="main", head="feature", title="second")
    assert duplicate.value.status == 422
    assert duplicate.value.data["errors"] == [
        {"resource": "PullRequest", "code": "custom", "message": "A pull request already exists for alice:feature."}
    ]
    with pytest.raises(GithubException) as no_branch:
        repo.create_pull(base="main", head="nope", title="t")
    assert no_branch.value.data["errors"] == [{"resource": "PullRequest", "field": "head", "code": "invalid"}]
    with pytest.raises(GithubException) as fork:
        repo.create_pull(base="main", head="bob:feature", title="t")
    assert fork.value.data["errors"][0]["field"] == "head"
    with pytest.raises(GithubException) as missing:
        repo.create_pull(base="main", head="feature")
    assert missing.value.data["errors"] == [{"resource": "PullRequest", "code": "missing_field", "field": "title"}]

    from tests.forge.model import run_git

    run_git(
        ["update-ref", "refs/heads/same", main], home=github_forge.home, git_dir=github_forge.repo_path("alice/demo")
    )
    with pytest.raises(GithubException) as empty:
        repo.create_pull(base="main", head="same", title="t")
    assert empty.value.data["errors"][0]["message"] == "No commits between main and same"
    assert len(github_forge.changes("alice/demo")) == 1


def test_github_list_pulls_by_head_and_state(github_forge: LocalForge) -> None:
    github_forge.create_repo_directly("alice/demo", "alice")
    with_feature_branch(github_forge, "alice/demo", "feature")
    with_feature_branch(github_forge, "alice/demo", "kiln/update/svc-2.0.0")
    repo = gh(github_forge).get_repo("alice/demo")
    repo.create_pull(base="main", head="feature", title="a")
    update = repo.create_pull(base="main", head="kiln/update/svc-2.0.0", title="b")

    found = list(repo.get_pulls(state="open", head="alice:kiln/update/svc-2.0.0", base="main"))
    sent = last(github_forge)
    assert (sent.method, sent.path) == ("GET", "/api/v3/repos/alice/demo/pulls")
    assert sent.query == {"state": "open", "head": "alice:kiln/update/svc-2.0.0", "base": "main"}
    assert [p.number for p in found] == [update.number]
    assert "merged" not in sent.response[0]  # list items are "pull-request-simple"
    assert list(repo.get_pulls(state="open", head="bob:kiln/update/svc-2.0.0")) == []

    update.edit(state="closed")
    assert list(repo.get_pulls(state="open", head="alice:kiln/update/svc-2.0.0")) == []
    assert [p.number for p in repo.get_pulls(state="closed", head="alice:kiln/update/svc-2.0.0")] == [2]
    assert sorted(p.number for p in repo.get_pulls(state="all")) == [1, 2]


def test_github_list_pulls_pages_with_link_headers(github_forge: LocalForge) -> None:
    github_forge.create_repo_directly("alice/demo", "alice")
    repo = gh(github_forge).get_repo("alice/demo")
    for n in range(3):
        with_feature_branch(github_forge, "alice/demo", f"b{n}")
        repo.create_pull(base="main", head=f"b{n}", title=f"t{n}")
    client = Github(
        auth=Auth.Token(ALICE_TOKEN),
        base_url=github_forge.api_url,
        seconds_between_requests=None,
        seconds_between_writes=None,
        retry=None,
        per_page=2,
    )
    numbers = [p.number for p in client.get_repo("alice/demo").get_pulls(state="open")]
    assert numbers == [3, 2, 1]  # newest first, over two pages
    pages = github_forge.find_requests("GET", r"/pulls$")[-2:]
    assert [r.query.get("page") for r in pages] == [None, "2"]


def test_github_edit_pull_patches_only_what_changed(github_forge: LocalForge) -> None:
    github_forge.create_repo_directly("alice/demo", "alice")
    with_feature_branch(github_forge, "alice/demo")
    repo = gh(github_forge).get_repo("alice/demo")
    pull = repo.create_pull(base="main", head="feature", title="old", body="old body")

    pull.edit(title="new", body="new body")
    sent = last(github_forge)
    assert (sent.method, sent.path, sent.json, sent.status) == (
        "PATCH",
        "/api/v3/repos/alice/demo/pulls/1",
        {"title": "new", "body": "new body"},
        200,
    )
    again = repo.get_pull(1)
    assert (again.title, again.body) == ("new", "new body")

    with pytest.raises(GithubException) as bad:
        pull.edit(state="merged")
    assert bad.value.status == 422
    with pytest.raises(GithubException) as outsider:
        gh(github_forge, BOB_TOKEN).get_repo("alice/demo").get_pull(1).edit(title="mine")
    assert outsider.value.status == 403


def test_github_merged_pull_moves_main_and_reports_merged(github_forge: LocalForge) -> None:
    github_forge.create_repo_directly("alice/demo", "alice")
    _, head = with_feature_branch(github_forge, "alice/demo")
    repo = gh(github_forge).get_repo("alice/demo")
    repo.create_pull(base="main", head="feature", title="t")
    merge = github_forge.merge_change("alice/demo", 1)
    after = repo.get_pull(1)
    assert after.merged is True and after.state == "closed" and after.merge_commit_sha == merge
    assert after.head.sha == head
    assert github_forge.refs("alice/demo")["refs/heads/main"] == merge
    with pytest.raises(GithubException) as reopen:
        after.edit(state="open")
    assert reopen.value.status == 422


def test_github_pulls_of_invisible_repositories_are_not_found(github_forge: LocalForge) -> None:
    github_forge.create_repo_directly("alice/secret", "alice", private=True)
    with_feature_branch(github_forge, "alice/secret")
    alice = gh(github_forge).get_repo("alice/secret")
    alice.create_pull(base="main", head="feature", title="t")
    bob = gh(github_forge, BOB_TOKEN).requester
    with pytest.raises(GithubException) as missing:
        bob.requestJsonAndCheck("GET", "/repos/alice/secret/pulls/1")
    assert missing.value.status == 404
    with pytest.raises(GithubException) as hidden:
        bob.requestJsonAndCheck(
            "POST", "/repos/alice/secret/pulls", input={"base": "main", "head": "feature", "title": "x"}
        )
    assert hidden.value.status == 404
    assert len(github_forge.changes("alice/secret")) == 1


# ----------------------------------------------------------------------------- GitLab


def gitlab_project(forge: LocalForge) -> Any:
    forge.create_repo_directly("acme/svc", "alice")
    with_feature_branch(forge, "acme/svc")
    return gl(forge).projects.get("acme/svc")


def test_gitlab_create_branch(gitlab_forge: LocalForge) -> None:
    project = gitlab_project(gitlab_forge)
    main = gitlab_forge.refs("acme/svc")["refs/heads/main"]
    branch = project.branches.create({"branch": "kiln/update/svc-2.0.0", "ref": "main"})
    sent = last(gitlab_forge)
    assert (sent.method, sent.path, sent.json, sent.status) == (
        "POST",
        f"/api/v4/projects/{project.id}/repository/branches",
        {"branch": "kiln/update/svc-2.0.0", "ref": "main"},
        201,
    )
    assert branch.name == "kiln/update/svc-2.0.0" and branch.commit["id"] == main
    assert gitlab_forge.refs("acme/svc")["refs/heads/kiln/update/svc-2.0.0"] == main

    with pytest.raises(gitlab.GitlabCreateError) as exists:
        project.branches.create({"branch": "kiln/update/svc-2.0.0", "ref": "main"})
    assert exists.value.response_code == 400 and exists.value.error_message == "Branch already exists"
    with pytest.raises(gitlab.GitlabCreateError) as bad_ref:
        project.branches.create({"branch": "x", "ref": "nope"})
    assert bad_ref.value.error_message == "Invalid reference name: nope"
    project.branches.delete("kiln/update/svc-2.0.0")
    assert "refs/heads/kiln/update/svc-2.0.0" not in gitlab_forge.refs("acme/svc")


def test_gitlab_create_merge_request_sends_the_dict_verbatim(gitlab_forge: LocalForge) -> None:
    project = gitlab_project(gitlab_forge)
    head = gitlab_forge.refs("acme/svc")["refs/heads/feature"]
    mr = project.mergerequests.create(
        {"source_branch": "feature", "target_branch": "main", "title": "Draft: Update", "description": "files"}
    )
    sent = last(gitlab_forge)
    assert (sent.method, sent.path, sent.status) == ("POST", f"/api/v4/projects/{project.id}/merge_requests", 201)
    assert sent.json == {
        "source_branch": "feature",
        "target_branch": "main",
        "title": "Draft: Update",
        "description": "files",
    }
    assert mr.iid == 1 and mr.draft is True and mr.work_in_progress is True and mr.state == "opened"
    assert mr.sha == head and mr.changes_count == "1" and mr.detailed_merge_status == "draft_status"
    assert mr.web_url == f"{gitlab_forge.base_url}/acme/svc/-/merge_requests/1"
    assert mr.references["full"] == "acme/svc!1"


def test_gitlab_merge_request_errors(gitlab_forge: LocalForge) -> None:
    project = gitlab_project(gitlab_forge)
    project.mergerequests.create({"source_branch": "feature", "target_branch": "main", "title": "t"})

    with pytest.raises(gitlab.GitlabCreateError) as duplicate:
        project.mergerequests.create({"source_branch": "feature", "target_branch": "main", "title": "again"})
    assert duplicate.value.response_code == 409
    assert duplicate.value.error_message == ["Another open merge request already exists for this source branch: !1"]
    with pytest.raises(gitlab.GitlabCreateError) as unknown:
        project.mergerequests.create({"source_branch": "nope", "target_branch": "main", "title": "t"})
    assert unknown.value.response_code == 400 and unknown.value.error_message == {"source_branch": ["does not exist"]}
    with pytest.raises(gitlab.GitlabCreateError) as same:
        project.mergerequests.create({"source_branch": "main", "target_branch": "main", "title": "t"})
    assert same.value.response_code == 422
    outsider = gl(gitlab_forge, BOB_TOKEN).projects.get(project.id, lazy=True)
    with pytest.raises(gitlab.GitlabCreateError) as denied:
        outsider.mergerequests.create({"source_branch": "feature", "target_branch": "main", "title": "t"})
    assert denied.value.response_code in (403, 404)
    assert len(gitlab_forge.changes("acme/svc")) == 1


def test_gitlab_list_merge_requests_by_source_branch(gitlab_forge: LocalForge) -> None:
    project = gitlab_project(gitlab_forge)
    with_feature_branch(gitlab_forge, "acme/svc", "kiln/update/svc-2.0.0")
    project.mergerequests.create({"source_branch": "feature", "target_branch": "main", "title": "a"})
    update = project.mergerequests.create(
        {"source_branch": "kiln/update/svc-2.0.0", "target_branch": "main", "title": "b"}
    )
    found = project.mergerequests.list(source_branch="kiln/update/svc-2.0.0", state="opened")
    sent = last(gitlab_forge)
    assert (sent.method, sent.path) == ("GET", f"/api/v4/projects/{project.id}/merge_requests")
    assert sent.query == {"source_branch": "kiln/update/svc-2.0.0", "state": "opened"}
    assert [m.iid for m in found] == [update.iid]
    assert "diff_refs" not in sent.response[0]  # list items lack the single-MR fields

    update.state_event = "close"
    update.save()
    assert project.mergerequests.list(source_branch="kiln/update/svc-2.0.0", state="opened") == []
    assert [m.iid for m in project.mergerequests.list(state="closed")] == [2]
    assert [m.iid for m in project.mergerequests.list(state="all", get_all=True)] == [2, 1]


def test_gitlab_update_merge_request_puts_only_changed_attributes(gitlab_forge: LocalForge) -> None:
    project = gitlab_project(gitlab_forge)
    mr = project.mergerequests.create({"source_branch": "feature", "target_branch": "main", "title": "Draft: x"})
    mr.title = "Update to 2.0.0"
    mr.description = "all clean"
    mr.save()
    sent = last(gitlab_forge)
    assert (sent.method, sent.path, sent.status) == ("PUT", f"/api/v4/projects/{project.id}/merge_requests/1", 200)
    assert sent.json == {"title": "Update to 2.0.0", "description": "all clean"}
    again = project.mergerequests.get(1)
    assert (again.title, again.description, again.draft) == ("Update to 2.0.0", "all clean", False)
    assert again.diff_refs["head_sha"] == gitlab_forge.refs("acme/svc")["refs/heads/feature"]


def test_gitlab_merged_merge_request(gitlab_forge: LocalForge) -> None:
    project = gitlab_project(gitlab_forge)
    project.mergerequests.create({"source_branch": "feature", "target_branch": "main", "title": "t"})
    merge = gitlab_forge.merge_change("acme/svc", 1)
    mr = project.mergerequests.get(1)
    assert mr.state == "merged" and mr.merge_commit_sha == merge and mr.merged_by["username"] == "alice"
    assert gitlab_forge.refs("acme/svc")["refs/heads/main"] == merge
    assert project.mergerequests.list(state="opened") == []
