"""In-memory trees for the merge tests: `{path: text | bytes | (content, mode)}` → `merge.Tree`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from apps.projects.services.gitops import GIT_MODE_EXECUTABLE, GIT_MODE_FILE, blob_id
from apps.updates.services.merge import Entry, Tree

Content = str | bytes | tuple[str | bytes, int]


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def tree(files: Mapping[str, Content]) -> Tree:
    data: dict[str, bytes] = {}
    entries: dict[str, Entry] = {}
    for path, value in files.items():
        content, mode = value if isinstance(value, tuple) else (value, 0o644)
        raw = _bytes(content)
        data[path] = raw
        git_mode = GIT_MODE_EXECUTABLE if mode & 0o111 else GIT_MODE_FILE
        entries[path] = Entry(git_mode, blob_id(raw), source=path)

    def read(sources: Sequence[str]) -> dict[str, bytes]:
        return {source: data[source] for source in sources if source in data}

    return Tree(entries, read)
