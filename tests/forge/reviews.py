"""Pull requests (GitHub) and merge requests (GitLab) of the local forge: state and git facts.

Both forges keep the same record, a `Change` on its repository (`Repo.changes`); the API
layers (`github_pulls.py`, `gitlab_merge_requests.py`) render it in their provider's shape.
Everything a body reports about git (head sha, commits, diff stats, mergeability) is read
from the bare repository when asked, so a push to the head branch shows up at once, as on
the real forges. `merge()` merges for real (a merge commit on the base branch), so a test
can play "the reviewer merged the update" and read the result back with git.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tests.forge.model import FORGE_IDENT, Repo, run_git, utcnow

if TYPE_CHECKING:
    from tests.forge.server import LocalForge

OPEN, CLOSED, MERGED = "open", "closed", "merged"


@dataclass
class Change:
    """One pull request / merge request. `number` is GitHub's number or GitLab's `iid`."""

    id: int
    number: int
    repo: Repo
    author: str
    title: str
    body: str | None
    head: str
    base: str
    draft: bool
    created_at: datetime
    updated_at: datetime
    state: str = OPEN
    closed_at: datetime | None = None
    merged_at: datetime | None = None
    merged_by: str | None = None
    merge_commit_sha: str | None = None
    #: the head sha when the change was closed or merged (the branch may move or vanish later)
    frozen_head_sha: str | None = None
    #: the base sha when it was merged (what the diff was computed against)
    frozen_base_sha: str | None = None
    maintainer_can_modify: bool = False
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        return self.state == OPEN


def branch_sha(forge: LocalForge, repo: Repo, branch: str) -> str | None:
    return forge.heads(repo).get(branch)


def head_sha(forge: LocalForge, change: Change) -> str | None:
    if change.frozen_head_sha:
        return change.frozen_head_sha
    return branch_sha(forge, change.repo, change.head)


def base_sha(forge: LocalForge, change: Change) -> str | None:
    if change.frozen_base_sha:
        return change.frozen_base_sha
    return branch_sha(forge, change.repo, change.base)


def merge_base(forge: LocalForge, repo: Repo, a: str, b: str) -> str | None:
    out = run_git(["merge-base", a, b], home=forge.home, git_dir=repo.bare_path, check=False)
    return out.stdout.decode().strip() or None


@dataclass(frozen=True)
class Stats:
    commits: int
    additions: int
    deletions: int
    changed_files: int
    mergeable: bool


def stats(forge: LocalForge, change: Change) -> Stats:
    """What the forge computes for a change: commits ahead, diff stats (three-dot), mergeability."""
    head, base = head_sha(forge, change), base_sha(forge, change)
    if head is None or base is None:
        return Stats(0, 0, 0, 0, False)
    git_dir = change.repo.bare_path
    commits = int(
        run_git(["rev-list", "--count", f"{base}..{head}"], home=forge.home, git_dir=git_dir).stdout.decode().strip()
        or 0
    )
    numstat = run_git(["diff", "--numstat", f"{base}...{head}"], home=forge.home, git_dir=git_dir).stdout.decode()
    additions = deletions = files = 0
    for line in numstat.splitlines():
        added, removed, _ = line.split("\t", 2)
        files += 1
        additions += int(added) if added.isdigit() else 0
        deletions += int(removed) if removed.isdigit() else 0
    probe = run_git(
        ["merge-tree", "--write-tree", "--no-messages", base, head], home=forge.home, git_dir=git_dir, check=False
    )
    return Stats(commits, additions, deletions, files, probe.returncode == 0)


def open_change(
    forge: LocalForge,
    repo: Repo,
    *,
    author: str,
    title: str,
    body: str | None,
    head: str,
    base: str,
    draft: bool,
    params: dict[str, Any],
    maintainer_can_modify: bool = False,
) -> Change:
    """Record a new change (callers validate and check for duplicates under `forge.lock`)."""
    with forge.lock:
        now = utcnow()
        change = Change(
            id=forge.new_id(),
            number=len(repo.changes) + 1,
            repo=repo,
            author=author.lower(),
            title=title,
            body=body,
            head=head,
            base=base,
            draft=draft,
            created_at=now,
            updated_at=now,
            maintainer_can_modify=maintainer_can_modify,
            params=dict(params),
        )
        repo.changes.append(change)
        return change


def find(repo: Repo, number: int) -> Change | None:
    return next((c for c in repo.changes if c.number == number), None)


def close(forge: LocalForge, change: Change) -> None:
    with forge.lock:
        if change.state != OPEN:
            return
        change.frozen_head_sha = head_sha(forge, change)
        change.state = CLOSED
        change.closed_at = change.updated_at = utcnow()


def reopen(forge: LocalForge, change: Change) -> None:
    with forge.lock:
        if change.state != CLOSED:
            return
        change.frozen_head_sha = None
        change.state = OPEN
        change.closed_at = None
        change.updated_at = utcnow()


def merge(forge: LocalForge, change: Change, *, by: str) -> str:
    """Merge the head into the base with a merge commit, as GitHub's "Create a merge commit"
    and GitLab's "Merge commit" methods do; returns the merge commit's sha."""
    with forge.lock:
        if change.state != OPEN:
            raise ValueError(f"change {change.number} is {change.state}")
        repo, git_dir = change.repo, change.repo.bare_path
        head, base = head_sha(forge, change), base_sha(forge, change)
        if head is None or base is None:
            raise ValueError("the head or base branch is gone")
        merged = run_git(["merge-tree", "--write-tree", "--no-messages", base, head], home=forge.home, git_dir=git_dir)
        tree = merged.stdout.decode().split()[0]
        message = f"Merge pull request #{change.number} from {change.head}\n\n{change.title}\n"
        env_ident = FORGE_IDENT.split(" <")
        name, email = env_ident[0], env_ident[1].rstrip(">")
        commit = (
            run_git(
                [
                    "-c",
                    f"user.name={name}",
                    "-c",
                    f"user.email={email}",
                    "commit-tree",
                    tree,
                    "-p",
                    base,
                    "-p",
                    head,
                    "-m",
                    message,
                ],
                home=forge.home,
                git_dir=git_dir,
            )
            .stdout.decode()
            .strip()
        )
        run_git(["update-ref", f"refs/heads/{change.base}", commit, base], home=forge.home, git_dir=git_dir)
        now = utcnow()
        change.frozen_head_sha, change.frozen_base_sha = head, base
        change.state = MERGED
        change.merged_at = change.closed_at = change.updated_at = now
        change.merged_by = by.lower()
        change.merge_commit_sha = commit
        forge.after_push(repo)
        return commit
