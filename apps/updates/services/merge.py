"""The merge engine of a template update: a 3-way merge, path by path, with git's semantics.

Three trees meet: *base* (what the template made last time: the generation's own files),
*theirs* (the new version rendered with the new answers) and *ours* (the target branch as it
is now). Each path is compared by git blob id and mode, which costs nothing for the paths
that only one side touched; only a path both sides changed is read and handed to git's own
file merge (`gitops.merge_file`, i.e. `git merge-file`), whose conflict markers carry the
labels `copier update` writes ("before updating" / "last update" / "after updating"):

* template-only change → taken (`updated`, `added`, `deleted`);
* repository-only change → kept (`kept`, `kept_deleted`);
* the same change on both sides → `unchanged`;
* both changed a text file → `merged`, or `conflict` with markers in the file;
* a file the repository deleted stays deleted (`kept_deleted`), even if the template changed it;
* a file the new version dropped is deleted unless the repository changed it (then a
  `conflict`, the repository's file kept as it is: git's modify/delete);
* added on both sides with different contents → merged against an empty base (as Copier
  does), normally a `conflict`;
* a binary file (NUL in its first 8000 bytes, git's test), a link or one too large to merge,
  changed on both sides → `conflict`, the repository's version kept;
* the executable bit is merged by the same rules (a change on one side wins);
* `skip_if_exists` paths are only created, never changed; `exclude` paths are not the
  template's (the repository's file is left alone); `template_owned` paths (Copier's answers
  file) always take the new render.

The engine works on `Tree`s (entries plus a reader for their bytes) and returns the outcome
of every template path and the changes to write on top of *ours*. It is bounded: a file
count, a per-file size for merging, a per-file and a total time limit.
"""

from __future__ import annotations

import fnmatch
import functools
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from apps.projects.services.gitops import (
    GIT_MODE_EXECUTABLE,
    GIT_MODE_FILE,
    FileChange,
    GitFailed,
    blob_id,
    merge_file,
)
from core.exceptions import ApplicationError, LimitExceeded

LABELS = ("before updating", "last update", "after updating")
REGULAR_MODES = frozenset({GIT_MODE_FILE, GIT_MODE_EXECUTABLE})
BINARY_SNIFF = 8000  # git's buffer_is_binary() looks at this many bytes


class Outcome(StrEnum):
    UNCHANGED = "unchanged"
    UPDATED = "updated"
    MERGED = "merged"
    CONFLICT = "conflict"
    ADDED = "added"
    DELETED = "deleted"
    KEPT_DELETED = "kept_deleted"
    KEPT = "kept"


# The order of a per-file report: what needs a person first.
REPORT_ORDER = [
    Outcome.CONFLICT,
    Outcome.MERGED,
    Outcome.UPDATED,
    Outcome.ADDED,
    Outcome.DELETED,
    Outcome.KEPT,
    Outcome.KEPT_DELETED,
    Outcome.UNCHANGED,
]


@dataclass(frozen=True)
class Entry:
    """One path's version in a tree: git mode and blob id; `source` is the reader's key for it."""

    mode: int
    oid: str
    source: str = field(default="", compare=False)

    @property
    def regular(self) -> bool:
        return self.mode in REGULAR_MODES

    def same(self, other: Entry | None) -> bool:
        return other is not None and self.mode == other.mode and self.oid == other.oid


Reader = Callable[[Sequence[str]], dict[str, bytes]]


class Tree:
    """A set of files by path, and a way to read the bytes of some of them.

    `read(sources)` answers bytes by each entry's `source` (a stored file's path, a blob id),
    so a tree whose entries were renamed still reads them where they are.
    """

    def __init__(self, entries: dict[str, Entry], read: Reader) -> None:
        self.entries = entries
        self._read = read

    def get(self, path: str) -> Entry | None:
        return self.entries.get(path)

    def __contains__(self, path: object) -> bool:
        return path in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def read(self, paths: Iterable[str]) -> dict[str, bytes]:
        wanted = {path: self.entries[path].source or path for path in paths}
        got = self._read(sorted(set(wanted.values())))
        return {path: got[source] for path, source in wanted.items() if source in got}

    def with_entries(self, entries: dict[str, Entry]) -> Tree:
        return Tree(entries, self._read)


def matches(patterns: Sequence[str], path: str) -> bool:
    """Glob match as Copier and the native manifest mean it: the whole path or any suffix of
    folders (`*.pyc` matches `a/b.pyc`; `docs/` and `docs/*` match everything below docs)."""
    if not patterns:
        return False
    anywhere, folders_only = _compiled(tuple(patterns))
    parts = path.split("/")
    folders = ["/".join(parts[:i]) for i in range(1, len(parts))]
    if anywhere is not None:
        if any(anywhere.match("/".join(parts[i:])) for i in range(len(parts))):
            return True
        if any(anywhere.match(folder) for folder in folders):
            return True
    return folders_only is not None and any(folders_only.match(folder) for folder in folders)


@functools.lru_cache(maxsize=64)
def _compiled(patterns: tuple[str, ...]) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """The patterns as two regular expressions (`fnmatch.translate`, as `fnmatchcase` compiles
    them): those matching a path or a folder, and those ending in '/' (folders only)."""
    anywhere: list[str] = []
    folders_only: list[str] = []
    for pattern in patterns:
        clean = pattern.strip().lstrip("/")
        if not clean:
            continue
        if clean.endswith("/"):
            folders_only.append(fnmatch.translate(clean.rstrip("/")))
        else:
            anywhere.append(fnmatch.translate(clean))

    def joined(items: list[str]) -> re.Pattern[str] | None:
        return re.compile("|".join(f"(?:{item})" for item in items)) if items else None

    return joined(anywhere), joined(folders_only)


@dataclass(frozen=True)
class MergePolicy:
    skip_if_exists: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    template_owned: tuple[str, ...] = ()


@dataclass(frozen=True)
class MergeLimits:
    max_files: int
    max_merge_bytes: int
    file_seconds: float
    total_seconds: float


@dataclass
class PathOutcome:
    path: str
    outcome: Outcome
    reason: str = ""
    renamed_from: str | None = None

    def as_dict(self) -> dict[str, str]:
        data = {"path": self.path, "outcome": str(self.outcome)}
        if self.reason:
            data["reason"] = self.reason
        if self.renamed_from:
            data["renamed_from"] = self.renamed_from
        return data


@dataclass
class MergeResult:
    files: list[PathOutcome]
    changes: dict[str, FileChange | None]

    @property
    def conflicts(self) -> list[str]:
        return [f.path for f in self.files if f.outcome == Outcome.CONFLICT]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.files:
            counts[str(item.outcome)] = counts.get(str(item.outcome), 0) + 1
        return counts

    def report(self) -> list[PathOutcome]:
        """Every path's outcome, conflicts first (see REPORT_ORDER), then by path."""
        rank = {outcome: i for i, outcome in enumerate(REPORT_ORDER)}
        return sorted(self.files, key=lambda f: (rank[f.outcome], f.path))


class UpdateTooLarge(LimitExceeded):
    default_code = "update_too_large"

    def __init__(self, message: str, **kwargs: object) -> None:
        super().__init__(message, retry_after=0, **kwargs)  # type: ignore[arg-type]
        self.status_code = 422


def is_binary(data: bytes) -> bool:
    return b"\0" in data[:BINARY_SNIFF]


@dataclass
class _Plan:
    """What a path needs once the cheap comparisons are done."""

    path: str
    base: Entry | None
    theirs: Entry
    ours: Entry


class _Merger:
    def __init__(
        self, *, base: Tree, theirs: Tree, ours: Tree, policy: MergePolicy, limits: MergeLimits, scratch: Path
    ) -> None:
        self.base, self.theirs, self.ours = base, theirs, ours
        self.policy, self.limits, self.scratch = policy, limits, scratch
        self.deadline = time.monotonic() + limits.total_seconds
        self.files: list[PathOutcome] = []
        self.changes: dict[str, FileChange | None] = {}
        self.take: dict[str, Entry] = {}  # path → theirs entry to write
        self.plans: list[_Plan] = []

    def outcome(self, path: str, outcome: Outcome, reason: str = "") -> None:
        self.files.append(PathOutcome(path, outcome, reason))

    def run(self) -> MergeResult:
        paths = set(self.base.entries) | set(self.theirs.entries)
        total = len(paths | set(self.ours.entries))
        if total > self.limits.max_files:
            raise UpdateTooLarge(
                f"The update covers {total} files; the limit is {self.limits.max_files} (KILN_UPDATE_MAX_FILES).",
                extra={"files": total, "limit": self.limits.max_files},
            )
        for path in sorted(paths):
            self.decide(path)
        self.merge_planned()
        self.write_taken()
        self.guard_file_folder_clashes()
        return MergeResult(files=self.files, changes=self.changes)

    def decide(self, path: str) -> None:
        b, t, o = self.base.get(path), self.theirs.get(path), self.ours.get(path)
        if matches(self.policy.template_owned, path):
            self.to_theirs(path, b, t, o)
            return
        if matches(self.policy.skip_if_exists, path):
            if o is not None:
                changed = t is not None and not t.same(b) and not t.same(o)
                self.outcome(path, Outcome.KEPT if changed else Outcome.UNCHANGED, "skip_if_exists" if changed else "")
            elif t is not None:
                self.take[path] = t
                self.outcome(path, Outcome.ADDED)
            else:
                self.outcome(path, Outcome.UNCHANGED)
            return
        if _same(t, b):  # the template did not change this path
            if _same(o, b):
                self.outcome(path, Outcome.UNCHANGED)
            elif o is None:
                self.outcome(path, Outcome.KEPT_DELETED)
            else:
                self.outcome(path, Outcome.KEPT)
            return
        if _same(o, b):  # only the template changed it
            self.to_theirs(path, b, t, o)
            return
        if _same(o, t):  # both made the same change
            self.outcome(path, Outcome.UNCHANGED)
            return
        if o is None:  # deleted in the repository, changed by the template
            self.outcome(path, Outcome.KEPT_DELETED, "deleted in the repository")
            return
        if t is None:  # dropped by the template, changed in the repository
            self.outcome(path, Outcome.CONFLICT, "deleted by the template, changed in the repository")
            return
        self.plans.append(_Plan(path, b, t, o))

    def to_theirs(self, path: str, b: Entry | None, t: Entry | None, o: Entry | None) -> None:
        if _same(o, t):
            self.outcome(path, Outcome.UNCHANGED)
        elif t is None:
            self.changes[path] = None
            self.outcome(path, Outcome.DELETED)
        else:
            self.take[path] = t
            self.outcome(path, Outcome.ADDED if o is None else Outcome.UPDATED)

    def merge_planned(self) -> None:
        """Paths both sides changed: the executable bit by the 3-way rule, the bytes by git."""
        need_bytes: list[_Plan] = []
        for plan in self.plans:
            b, t, o = plan.base, plan.theirs, plan.ours
            if not (t.regular and o.regular and (b is None or b.regular)):
                self.outcome(plan.path, Outcome.CONFLICT, "not a regular file on both sides")
                continue
            if b is not None and t.oid == b.oid:
                self.settle(plan, content=o.oid, data=None)
            elif b is not None and o.oid == b.oid:
                self.settle(plan, content=t.oid, data=None)
            elif o.oid == t.oid:
                self.settle(plan, content=o.oid, data=None)
            else:
                need_bytes.append(plan)
        if not need_bytes:
            return
        ours = self.ours.read(p.path for p in need_bytes)
        theirs = self.theirs.read(p.path for p in need_bytes)
        base = self.base.read(p.path for p in need_bytes if p.base is not None)
        for index, plan in enumerate(need_bytes):
            if time.monotonic() > self.deadline:
                raise UpdateTooLarge(
                    f"Merging took longer than {self.limits.total_seconds:.0f}s "
                    f"({index} of {len(need_bytes)} files merged).",
                    code="update_timeout",
                )
            o_data, t_data = ours.get(plan.path), theirs.get(plan.path)
            b_data = base.get(plan.path, b"") if plan.base is not None else b""
            too_big = o_data is None or t_data is None or (plan.base is not None and plan.path not in base)
            if too_big or max(len(o_data or b""), len(t_data or b""), len(b_data)) > self.limits.max_merge_bytes:
                self.outcome(plan.path, Outcome.CONFLICT, "too large to merge; the repository's version is kept")
                continue
            assert o_data is not None and t_data is not None
            if is_binary(o_data) or is_binary(t_data) or is_binary(b_data):
                self.outcome(plan.path, Outcome.CONFLICT, "binary file changed on both sides; the repository's kept")
                continue
            try:
                merged = merge_file(
                    ours=o_data,
                    base=b_data,
                    theirs=t_data,
                    labels=LABELS,
                    scratch=self.scratch,
                    timeout=self.limits.file_seconds,
                )
            except GitFailed as exc:
                if exc.code == "merge_timeout":
                    reason = "took too long to merge; the repository's version is kept"
                    self.outcome(plan.path, Outcome.CONFLICT, reason)
                    continue
                raise
            self.settle(plan, content=None, data=merged.data, conflicts=merged.conflicts)

    def settle(self, plan: _Plan, *, content: str | None, data: bytes | None, conflicts: int = 0) -> None:
        """Record a path both sides changed: `content` is the blob id of the side whose bytes win,
        or None with the merged `data` (and its number of conflicting hunks)."""
        b, t, o = plan.base, plan.theirs, plan.ours
        base_mode = b.mode if b is not None else None
        mode_conflict = False
        if t.mode == base_mode:
            mode = o.mode
        elif o.mode in (base_mode, t.mode):
            mode = t.mode
        else:  # added on both sides with different modes: the repository's stays
            mode, mode_conflict = o.mode, True
        if data is not None and blob_id(data) == o.oid:
            content = o.oid
        if content == o.oid:
            if mode == o.mode and not mode_conflict:
                self.outcome(plan.path, Outcome.KEPT)
                return
            self.changes[plan.path] = FileChange(mode=mode, oid=o.oid)
        elif content == t.oid:
            self.take[plan.path] = replace(t, mode=mode)
            if mode == t.mode:
                self.outcome(plan.path, Outcome.UPDATED)
                return
        else:
            self.changes[plan.path] = FileChange(mode=mode, data=data)
        if conflicts or mode_conflict:
            reason = "conflicting changes; markers in the file" if conflicts else "the executable bit differs"
            self.outcome(plan.path, Outcome.CONFLICT, reason)
        else:
            self.outcome(plan.path, Outcome.MERGED)

    def write_taken(self) -> None:
        if not self.take:
            return
        data = self.theirs.read(self.take)
        for path, entry in self.take.items():
            if path not in data:
                raise ApplicationError(
                    f"The new version's file '{path}' could not be read.", code="update_failed", status_code=500
                )
            self.changes[path] = FileChange(mode=entry.mode, data=data[path])

    def guard_file_folder_clashes(self) -> None:
        """A path written where the result has a folder, or below a file, is a conflict (ours kept)."""
        result = set(self.ours.entries)
        for path, change in self.changes.items():
            if change is None:
                result.discard(path)
            else:
                result.add(path)
        folders = {path.rsplit("/", i)[0] for path in result for i in range(1, path.count("/") + 1)}
        clashes = [
            path
            for path, change in self.changes.items()
            if change is not None and (path in folders or any(parent in result for parent in _parents(path)))
        ]
        if not clashes:
            return
        by_path = {f.path: f for f in self.files}
        for path in clashes:
            del self.changes[path]
            item = by_path[path]
            item.outcome, item.reason = Outcome.CONFLICT, "a file and a folder of the same name"


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _same(a: Entry | None, b: Entry | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.same(b)


def merge_trees(
    *, base: Tree, theirs: Tree, ours: Tree, policy: MergePolicy, limits: MergeLimits, scratch: Path
) -> MergeResult:
    """Merge `theirs` into `ours` against `base`; see the module docstring for the rules."""
    if policy.exclude:
        base = base.with_entries({p: e for p, e in base.entries.items() if not matches(policy.exclude, p)})
        theirs = theirs.with_entries({p: e for p, e in theirs.entries.items() if not matches(policy.exclude, p)})
    merger = _Merger(base=base, theirs=theirs, ours=ours, policy=policy, limits=limits, scratch=scratch)
    return merger.run()
