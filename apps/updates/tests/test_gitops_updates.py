"""The git door's update functions against the local forge over smart HTTP (real git both ends).

Shallow fetch of the target's branches, the tree listed by blob id, only the needed blobs read,
a deterministic commit written on top (only changed paths sent), pushed without force; a branch
someone else moved is `branch_diverged`, the remote untouched.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.projects.services.gitops import (
    GIT_MODE_EXECUTABLE,
    GIT_MODE_FILE,
    FileChange,
    GitAuth,
    GitFailed,
    blob_id,
    diff_commits,
    fetch_heads,
    init_scratch,
    is_ancestor,
    list_tree,
    push_branch,
    read_blobs,
    write_commit,
)
from tests.forge import LocalForge
from tests.forge.fixtures import ALICE_TOKEN

AUTH = GitAuth("x-access-token", ALICE_TOKEN)


def test_blob_id_is_gits() -> None:
    assert blob_id(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    assert blob_id(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


@pytest.fixture
def remote(github_forge: LocalForge) -> tuple[LocalForge, str, str]:
    github_forge.create_repo_directly("alice/svc", "alice")
    main = github_forge.seed_commit(
        "alice/svc", files={"README.md": "# svc\n", "src/app.py": "print('v1')\n", "big.bin": b"\0" * 5000}
    )
    return github_forge, github_forge.clone_url("alice/svc"), main


def test_fetch_list_read_write_push(remote: tuple[LocalForge, str, str], tmp_path: Path) -> None:
    forge, url, main = remote
    git_dir = tmp_path / "scratch.git"
    init_scratch(git_dir)
    heads = fetch_heads(git_dir, url=url, branches=["main", "kiln/update/svc-2.0.0"], auth=AUTH)
    assert heads == {"main": main}  # the update branch does not exist yet

    tree = list_tree(git_dir, main)
    assert {path: entry.mode for path, entry in tree.items()} == {
        "README.md": GIT_MODE_FILE,
        "big.bin": GIT_MODE_FILE,
        "src/app.py": GIT_MODE_FILE,
    }
    assert tree["src/app.py"].oid == blob_id(b"print('v1')\n")
    blobs = read_blobs(git_dir, [tree["src/app.py"].oid, tree["big.bin"].oid], max_bytes=1000)
    assert blobs == {tree["src/app.py"].oid: b"print('v1')\n"}  # the big one is left out

    changes = {
        "src/app.py": FileChange(mode=GIT_MODE_EXECUTABLE, data=b"print('v2')\n"),
        "README.md": None,
        "docs/new.md": FileChange(mode=GIT_MODE_FILE, data=b"new\n"),
    }
    ref = "refs/heads/kiln/update/svc-2.0.0"
    commit = write_commit(
        git_dir, ref=ref, parents=[main], changes=changes, message="Update\n", timestamp=1_700_000_000
    )
    again = write_commit(git_dir, ref=ref, parents=[main], changes=changes, message="Update\n", timestamp=1_700_000_000)
    assert commit == again  # deterministic
    assert is_ancestor(git_dir, main, commit)
    after = list_tree(git_dir, commit)
    assert set(after) == {"big.bin", "docs/new.md", "src/app.py"}
    assert after["src/app.py"].mode == GIT_MODE_EXECUTABLE
    diff = diff_commits(git_dir, main, commit).decode()
    assert "-print('v1')\n+print('v2')" in diff and "deleted file mode 100644" in diff
    assert "old mode 100644\nnew mode 100755" in diff

    pushed = push_branch(git_dir=git_dir, url=url, branch="kiln/update/svc-2.0.0", commit=commit, auth=AUTH)
    assert pushed.pushed is True
    assert forge.refs("alice/svc")["refs/heads/kiln/update/svc-2.0.0"] == commit
    assert forge.refs("alice/svc")["refs/heads/main"] == main
    assert (
        push_branch(git_dir=git_dir, url=url, branch="kiln/update/svc-2.0.0", commit=commit, auth=AUTH).pushed is False
    )


def test_someone_elses_commit_on_the_branch_is_branch_diverged(
    remote: tuple[LocalForge, str, str], tmp_path: Path
) -> None:
    forge, url, main = remote
    git_dir = tmp_path / "scratch.git"
    init_scratch(git_dir)
    fetch_heads(git_dir, url=url, branches=["main"], auth=AUTH)
    branch = "kiln/update/svc-2.0.0"
    first = write_commit(
        git_dir,
        ref=f"refs/heads/{branch}",
        parents=[main],
        changes={"a.txt": FileChange(mode=GIT_MODE_FILE, data=b"a\n")},
        message="one\n",
        timestamp=1,
    )
    push_branch(git_dir=git_dir, url=url, branch=branch, commit=first, auth=AUTH)
    theirs = forge.seed_commit("alice/svc", branch=branch, files={"hand.txt": "by hand\n"}, message="by hand")

    second = write_commit(
        git_dir,
        ref=f"refs/heads/{branch}",
        parents=[main],
        changes={"a.txt": FileChange(mode=GIT_MODE_FILE, data=b"b\n")},
        message="two\n",
        timestamp=2,
    )
    with pytest.raises(GitFailed) as diverged:
        push_branch(git_dir=git_dir, url=url, branch=branch, commit=second, auth=AUTH)
    assert diverged.value.code == "branch_diverged" and diverged.value.status_code == 409
    assert forge.refs("alice/svc")[f"refs/heads/{branch}"] == theirs

    # on top of what is there, it is a fast-forward
    heads = fetch_heads(git_dir, url=url, branches=[branch], auth=AUTH)
    third = write_commit(
        git_dir,
        ref=f"refs/heads/{branch}",
        parents=[heads[branch], main],
        changes={},
        message="three\n",
        timestamp=3,
    )
    assert push_branch(git_dir=git_dir, url=url, branch=branch, commit=third, auth=AUTH).pushed
    assert forge.refs("alice/svc")[f"refs/heads/{branch}"] == third
