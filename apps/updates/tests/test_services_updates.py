"""The update job end to end against the local forge: real git, real PyGithub / python-gitlab.

Version 1.0.0 is generated and exported, the repository's team commits on top, version 2.0.0
is published; the update merges it into the repository as a branch and a pull/merge request.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from apps.updates.models import TemplateUpdate
from apps.updates.services.updates import update_diff, update_execute, update_start
from tests.forge.model import run_git

pytestmark = pytest.mark.django_db

BRANCH = "kiln/update/svc-2.0.0"


def run(target: Any, mode: str = "pull_request", **data: Any) -> TemplateUpdate:
    update, created = update_start(
        generated=target.generated, data={"mode": mode, **data}, actor=target.user, enqueue=False
    )
    assert created
    return update_execute(update_id=update.pk, owner="test:1:update")


def blob(target: Any, ref: str, path: str) -> bytes:
    bare = target.forge.repo_path(target.full_name)
    return run_git(["cat-file", "blob", f"{ref}:{path}"], home=target.forge.home, git_dir=bare).stdout


def outcomes(update: TemplateUpdate) -> dict[str, str]:
    return {f["path"]: f["outcome"] for f in update.files}


def test_github_update_opens_one_draft_pull_request_with_every_outcome(exported: Any) -> None:
    target = exported("github")
    main_before = target.main()
    update = run(target)

    assert update.status == "completed", update.error
    assert update.outcome == "proposed" and update.pushed is True
    assert outcomes(update) == {
        "config.yaml": "conflict",
        "app.py": "merged",
        "README.md": "updated",
        "logo.bin": "updated",
        "run.sh": "updated",
        "new.txt": "added",
        "old.txt": "deleted",
    }
    assert update.conflicts == ["config.yaml"]
    assert update.files[0]["path"] == "config.yaml"  # conflicts first

    forge = target.forge
    refs = forge.refs(target.full_name)
    assert refs["refs/heads/main"] == main_before  # the default branch is not touched
    assert refs[f"refs/heads/{BRANCH}"] == update.commit_sha
    bare = forge.repo_path(target.full_name)
    parents = run_git(["rev-list", "--parents", "-n1", update.commit_sha], home=forge.home, git_dir=bare).stdout
    assert parents.decode().split()[1:] == [main_before]

    app = blob(target, BRANCH, "app.py").decode()
    assert "HOST = '0.0.0.0'" in app and "line 18 (ours)" in app
    config = blob(target, BRANCH, "config.yaml").decode()
    assert config == (
        "name: shop\n<<<<<<< before updating\nlevel: debug\n=======\nlevel: warning\n>>>>>>> after updating\nretries: 3\n"
    )
    assert blob(target, BRANCH, "NOTES.md") == b"our notes\n"  # the repository's own file
    ls = run_git(["ls-tree", BRANCH], home=forge.home, git_dir=bare).stdout.decode()
    assert "100755 blob" in next(line for line in ls.splitlines() if line.endswith("\trun.sh"))
    assert "old.txt" not in ls

    trailers = run_git(
        ["log", "-1", "--format=%(trailers:only,unfold)", target.export.commit_sha], home=forge.home, git_dir=bare
    ).stdout.decode()
    assert trailers.split("\n")[:2] == ["Kiln-Template: svc@1.0.0", f"Kiln-Generation: {target.generated.pk}"]
    message = run_git(["log", "-1", "--format=%B", BRANCH], home=forge.home, git_dir=bare).stdout.decode()
    assert "Kiln-Template: svc@2.0.0" in message and "Kiln-Template-Previous: svc@1.0.0" in message
    assert f"Kiln-Generation: {update.new_generation_id}" in message

    [pull] = forge.changes(target.full_name)
    assert (pull.head, pull.base, pull.draft, pull.number) == (BRANCH, "main", True, 1)
    assert update.pull_request == {"number": 1, "url": f"{forge.base_url}/alice/svc/pull/1"}
    assert pull.title == "Update template svc to 2.0.0"
    body = pull.body or ""
    assert body.index("`config.yaml`") < body.index("`app.py`") < body.index("`README.md`")
    assert "1 file with conflicts" in body and "⚠️ conflict" in body

    diff = update_diff(update).decode()
    assert "--- a/config.yaml\n+++ b/config.yaml" in diff and "+<<<<<<< before updating" in diff
    assert "deleted file mode 100644" in diff and "new file mode 100644" in diff


def test_the_same_update_twice_is_one_pull_request_and_one_commit(exported: Any) -> None:
    target = exported("github")
    first = run(target)
    second = run(target)
    assert second.status == "completed", second.error
    assert second.pushed is False and second.commit_sha == first.commit_sha
    assert second.pull_request == first.pull_request
    assert second.new_generation_id == first.new_generation_id  # the render is reused
    assert len(target.forge.changes(target.full_name)) == 1
    bare = target.forge.repo_path(target.full_name)
    count = run_git(["rev-list", "--count", f"main..{BRANCH}"], home=target.forge.home, git_dir=bare).stdout
    assert count.strip() == b"1"


def test_rerun_after_main_moved_continues_the_branch_and_updates_the_pull_request(exported: Any) -> None:
    target = exported("github")
    first = run(target)
    target.forge.seed_commit(target.full_name, files={"config.yaml": "name: shop\nlevel: warning\nretries: 3\n"})
    second = run(target)
    assert second.status == "completed", second.error
    assert second.conflicts == []  # the team resolved it on main
    assert second.pushed is True and second.commit_sha != first.commit_sha
    bare = target.forge.repo_path(target.full_name)
    parents = run_git(["rev-list", "--parents", "-n1", second.commit_sha], home=target.forge.home, git_dir=bare)
    assert first.commit_sha in parents.stdout.decode().split()  # a fast-forward of the branch, not a force push
    [pull] = target.forge.changes(target.full_name)
    assert "with conflicts" not in (pull.body or "")
    assert second.pull_request == first.pull_request


def test_someone_elses_push_to_the_update_branch_is_branch_diverged(exported: Any) -> None:
    target = exported("github")
    run(target)
    theirs = target.forge.seed_commit(target.full_name, branch=BRANCH, files={"hand.txt": "by hand\n"})
    target.forge.seed_commit(target.full_name, files={"more.txt": "main moved\n"})
    update = run(target)
    assert update.status == "failed"
    assert update.error["code"] == "branch_diverged"
    assert target.forge.refs(target.full_name)[f"refs/heads/{BRANCH}"] == theirs
    assert len(target.forge.changes(target.full_name)) == 1


def test_preview_pushes_nothing(exported: Any) -> None:
    target = exported("github")
    update = run(target, mode="preview")
    assert update.status == "completed" and update.outcome == "previewed"
    assert f"refs/heads/{BRANCH}" not in target.forge.refs(target.full_name)
    assert target.forge.changes(target.full_name) == []
    assert outcomes(update)["config.yaml"] == "conflict"
    assert b"+HOST = '0.0.0.0'" in update_diff(update)


def test_branch_mode_pushes_without_a_pull_request(exported: Any) -> None:
    target = exported("github")
    update = run(target, mode="branch")
    assert update.status == "completed" and update.outcome == "pushed"
    assert f"refs/heads/{BRANCH}" in target.forge.refs(target.full_name)
    assert target.forge.changes(target.full_name) == []


def test_nothing_to_update_opens_nothing(exported: Any) -> None:
    target = exported("github", user_commit=False)
    first = run(target)
    target.forge.merge_change(target.full_name, 1)  # the reviewer merges the update
    # the next update starts from the generation the first one rendered
    update, _ = update_start(
        generated=first.new_generation, data={"mode": "pull_request"}, actor=target.user, enqueue=False
    )
    assert update.export_id == target.export.pk
    done = update_execute(update_id=update.pk, owner="test:1:again")
    assert done.status == "completed" and done.outcome == "nothing_to_update"
    assert done.pushed is False and done.pull_request is None
    assert update_diff(done) == b""
    assert len(target.forge.changes(target.full_name)) == 1


def test_gitlab_update_opens_one_draft_merge_request(exported: Any) -> None:
    target = exported("gitlab")
    update = run(target)
    assert update.status == "completed", update.error
    [mr] = target.forge.changes(target.full_name)
    assert mr.title == "Draft: Update template svc to 2.0.0" and mr.head == BRANCH
    assert update.pull_request == {"number": 1, "url": f"{target.forge.base_url}/acme/svc/-/merge_requests/1"}
    again = run(target)
    assert again.pull_request == update.pull_request
    assert len(target.forge.changes(target.full_name)) == 1


def test_git_remote_update_pushes_the_branch(exported_git: Any) -> None:
    from apps.updates.tests.conftest import git_refs

    target = exported_git()
    update = run(target)
    assert update.status == "completed", update.error
    assert update.outcome == "pushed" and update.pull_request is None
    assert git_refs(target.remote)[f"refs/heads/{BRANCH}"] == update.commit_sha
    listing = subprocess.run(
        ["git", f"--git-dir={target.remote}", "ls-tree", "--name-only", BRANCH],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "new.txt" in listing and "old.txt" not in listing
