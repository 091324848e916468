"""Trees for the merge engine: a generation's files, a commit read with git, files in memory.

Every tree is entries (path → git mode and blob id) plus a reader for the bytes of the few
entries a merge needs. A generation's files are read from the blob store (`stored_files`,
verified) and hashed as git hashes blobs; a commit's entries come from `git ls-tree`
and its blobs from one `git cat-file --batch`; nothing is checked out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from apps.projects.models import GeneratedProject
from apps.projects.services.gitops import (
    GIT_MODE_EXECUTABLE,
    GIT_MODE_FILE,
    FileChange,
    blob_id,
    list_tree,
    read_blobs,
)
from apps.projects.services.stored_files import generation_files, read_sources
from apps.updates.services.merge import Entry, Tree


def git_mode(mode: int) -> int:
    """Kiln's file mode (0o644 / 0o755) as git writes it in a tree."""
    return GIT_MODE_EXECUTABLE if mode & 0o111 else GIT_MODE_FILE


def file_mode(mode: int) -> int:
    """A git tree mode as a file mode (links and submodules are not files Kiln writes)."""
    return 0o755 if mode == GIT_MODE_EXECUTABLE else 0o644


def memory_tree(files: Mapping[str, tuple[bytes, int]]) -> Tree:
    """Files held in memory: {path: (bytes, file mode)}."""
    data = {path: content for path, (content, _mode) in files.items()}
    entries = {path: Entry(git_mode(mode), blob_id(content), source=path) for path, (content, mode) in files.items()}

    def read(sources: Sequence[str]) -> dict[str, bytes]:
        return {source: data[source] for source in sources if source in data}

    return Tree(entries, read)


def git_tree(git_dir: Path, commit: str, *, max_bytes: int = 1 << 62) -> Tree:
    """A commit's tree in `git_dir`; blobs larger than `max_bytes` read as absent."""
    listed = list_tree(git_dir, commit)
    entries = {path: Entry(item.mode, item.oid, source=item.oid) for path, item in listed.items()}

    def read(sources: Sequence[str]) -> dict[str, bytes]:
        return read_blobs(git_dir, sources, max_bytes=max_bytes)

    return Tree(entries, read)


def apply_changes(ours: Tree, changes: Mapping[str, FileChange | None]) -> dict[str, tuple[bytes, int]]:
    """The whole result tree in memory ({path: (bytes, git mode)}): `ours` with `changes` applied.

    For tests and small previews; the update job writes only the changes, as a commit.
    """
    keep = [path for path in ours.entries if path not in changes]
    data = ours.read(keep)
    result = {path: (data[path], ours.entries[path].mode) for path in keep}
    by_oid = {ours.entries[path].oid: path for path in ours.entries}
    need = {
        path: by_oid[change.oid]
        for path, change in changes.items()
        if change is not None and change.data is None and change.oid is not None
    }
    extra = ours.read(set(need.values()))
    for path, change in changes.items():
        if change is None:
            continue
        content = change.data if change.data is not None else extra[need[path]]
        result[path] = (content, change.mode)
    return result


# Bytes of a generation kept in memory while its tree is hashed; files beyond are read again.
KEEP_BYTES = 32 * 1024 * 1024


def generation_tree(generated: GeneratedProject) -> Tree:
    """A completed generation's recorded files, read from the blob store (verified) and hashed as
    git hashes blobs; a missing or damaged blob is `blob_missing` / `blob_corrupt`."""
    sources = {source.path: source for source in generation_files(generated.pk)}
    kept: dict[str, bytes] = {}
    budget = KEEP_BYTES
    entries: dict[str, Entry] = {}
    ordered = list(sources.values())
    for source, data in zip(ordered, read_sources(ordered), strict=True):
        entries[source.path] = Entry(git_mode(source.mode), blob_id(data), source=source.path)
        if len(data) <= budget:
            kept[source.path] = data
            budget -= len(data)

    def read(paths: Sequence[str]) -> dict[str, bytes]:
        missing = [sources[path] for path in paths if path not in kept]
        fetched = dict(zip((s.path for s in missing), read_sources(missing), strict=True))
        return {path: kept[path] if path in kept else fetched[path] for path in paths}

    return Tree(entries, read)


def result_tree(ours: Tree, changes: Mapping[str, FileChange | None]) -> Tree:
    """`ours` with a merge's `changes` applied, as a tree held in memory (Copier's `after`
    migrations run over it; only trusted versions that declare them come here)."""
    files = apply_changes(ours, changes)
    data = {path: content for path, (content, _mode) in files.items()}
    entries = {path: Entry(mode, blob_id(content), source=path) for path, (content, mode) in files.items()}

    def read(sources: Sequence[str]) -> dict[str, bytes]:
        return {source: data[source] for source in sources if source in data}

    return Tree(entries, read)
