"""The one safe-join for every path Kiln reads or writes on behalf of a user.

Template files, rendered output names, uploaded archive members and export members all
pass `clean_relative_path`; writes go through `safe_write`, which never follows a
symbolic link (each parent folder is checked with lstat and files are opened with
O_NOFOLLOW | O_EXCL).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from core.exceptions import UnsafeInput

MAX_PATH_LENGTH = 1024
MAX_SEGMENT_BYTES = 255
RESERVED_SEGMENTS = frozenset({".git"})


class UnsafePath(UnsafeInput):
    default_code = "unsafe_path"

    def __init__(self, path: str, reason: str, message: str) -> None:
        super().__init__(message, extra={"path": _printable(path), "reason": reason})
        self.path = path
        self.reason = reason


def _printable(path: str) -> str:
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in path)[:300]


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean_relative_path(path: str) -> str:
    """Return `path` if it is a safe relative POSIX path, else raise `UnsafePath`.

    Rejected: empty paths, absolute or drive paths, backslashes, NUL and control
    characters, empty/`.`/`..` segments, `.git` components (any case), over-long
    segments or paths. Called for every file Kiln reads or writes, so the common (valid)
    case does no per-character Python work; messages are built only on failure.
    """
    if not isinstance(path, str) or path == "":
        raise UnsafePath(str(path), "empty", "The path is empty.")
    if _CONTROL.search(path):
        raise UnsafePath(path, "control_character", f"The path '{_printable(path)}' contains a control character.")
    if "\\" in path:
        raise UnsafePath(path, "backslash", f"The path '{_printable(path)}' contains a backslash; use '/' separators.")
    if path.startswith("/") or (len(path) >= 2 and path[1] == ":" and path[0].isalpha()):
        raise UnsafePath(
            path, "absolute", f"The path '{_printable(path)}' is absolute; only relative paths are allowed."
        )
    if len(path) > MAX_PATH_LENGTH:
        raise UnsafePath(path, "too_long", f"The path is longer than {MAX_PATH_LENGTH} characters.")
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            if segment == "..":
                raise UnsafePath(path, "traversal", f"The path '{_printable(path)}' escapes the output folder ('..').")
            raise UnsafePath(path, "empty_segment", f"The path '{_printable(path)}' has an empty or '.' segment.")
        if segment.casefold() in RESERVED_SEGMENTS:
            raise UnsafePath(
                path, "reserved", f"The path '{_printable(path)}' is inside '.git/', which Kiln never writes."
            )
        if segment.endswith((" ", ".")):
            raise UnsafePath(
                path, "trailing_dot_or_space", f"The path '{_printable(path)}' has a segment ending in a dot or space."
            )
        if len(segment) * 4 > MAX_SEGMENT_BYTES and len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise UnsafePath(
                path, "too_long", f"A segment of '{_printable(path)}' is longer than {MAX_SEGMENT_BYTES} bytes."
            )
    return path


def _ensure_real_dir(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        os.mkdir(path, 0o755)
        return
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafePath(str(path), "not_a_directory", "A parent of an output file is not a plain folder.")


class SafeWriter:
    """Writes files below one root folder, never through a link, never outside it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._prefix = os.path.join(os.fspath(root), "")  # joined as strings: called once per file
        self._dirs: set[str] = {""}

    def _make_parents(self, rel: str) -> None:
        parent, _, _ = rel.rpartition("/")
        if parent in self._dirs:
            return
        current = ""
        for segment in parent.split("/"):
            current = f"{current}/{segment}" if current else segment
            if current not in self._dirs:
                _ensure_real_dir(Path(self._prefix + current))
                self._dirs.add(current)

    def write(self, rel: str, data: bytes, mode: int) -> None:
        clean_relative_path(rel)
        self._make_parents(rel)
        fd = os.open(self._prefix + rel, _WRITE_FLAGS, mode)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if mode & 0o111:
                os.fchmod(fd, mode)  # the umask may have dropped the executable bits
        finally:
            os.close(fd)


_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def is_within(root: Path, candidate: Path) -> bool:
    """True when `candidate` resolves to `root` or below it (symlinks resolved)."""
    root_real = os.path.realpath(root)
    cand_real = os.path.realpath(candidate)
    return cand_real == root_real or cand_real.startswith(root_real + os.sep)
