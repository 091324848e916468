"""The one safe-join for every path Kiln reads or writes on behalf of a user.

Template files, rendered output names, uploaded archive members and export members all
pass `clean_relative_path`; writes go through `SafeWriter`, which never follows a
symbolic link (each parent folder is checked with lstat and files are opened with
O_NOFOLLOW | O_EXCL). `PathSet` finds names that would land on the same file on a
case-insensitive or normalising file system (macOS, Windows, many git checkouts) and files
that collide with folders, before anything is written.

Errors name the path relative to the output (or template) root, never a server folder.
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from pathlib import Path

from core.exceptions import UnsafeInput

MAX_PATH_LENGTH = 1024
MAX_SEGMENT_BYTES = 255
RESERVED_SEGMENTS = frozenset({".git"})
# People's path globs (exclude, copy_without_render, ...) become Python regular expressions;
# fnmatch.translate is quadratic in '[' ('[' * 20000 took 24 s), so lists of them are bounded.
MAX_GLOBS = 100
MAX_GLOB_LENGTH = 200


def globs_too_large(globs: list[str]) -> bool:
    """True when a list of globs is longer, or has a glob longer, than any template needs."""
    return len(globs) > MAX_GLOBS or any(len(glob) > MAX_GLOB_LENGTH for glob in globs)


class UnsafePath(UnsafeInput):
    default_code = "unsafe_path"

    def __init__(self, path: str, reason: str, message: str) -> None:
        super().__init__(message, extra={"path": _printable(path), "reason": reason})
        self.path = path
        self.reason = reason


class DuplicatePath(UnsafeInput):
    """Two names that are one file once normalised, or a file where a folder is (or the reverse)."""

    default_code = "duplicate_output_path"

    def __init__(self, path: str, other: str, reason: str, message: str) -> None:
        super().__init__(message, extra={"path": _printable(path), "other": _printable(other), "reason": reason})
        self.path = path
        self.other = other
        self.reason = reason


def _printable(path: str) -> str:
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in path)[:300]


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


# C0 and C1 controls and DEL: terminals, logs and git act on them
_CONTROL_CHARS = "\\x00-\\x1f\\x7f-\\x9f"
# Bidirectional controls (U+202E shows 'exe.txt' as 'txt.exe'), line/paragraph separators and
# invisible format characters (two names that look identical): the set name fields refuse too
# (core.serializers.NAME_PATTERN)
_FORMAT_CHARS = "\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u206f\\ufeff\\ufff9-\\ufffb"
# Lone surrogates: a name that was not valid UTF-8 (tarfile's surrogateescape), or a "\\ud800"
# escape; no file system or database can store them as text
_SURROGATE_CHARS = "\\ud800-\\udfff"
_CONTROL = re.compile(f"[{_CONTROL_CHARS}]")
_FORMAT = re.compile(f"[{_FORMAT_CHARS}]")
_SURROGATE = re.compile(f"[{_SURROGATE_CHARS}]")
_UNUSUAL = re.compile(f"[{_CONTROL_CHARS}{_FORMAT_CHARS}{_SURROGATE_CHARS}]")


def _character_problem(path: str) -> None:
    """Raise UnsafePath for a control, format or surrogate character; the common case is one search."""
    if not _UNUSUAL.search(path):
        return
    if _CONTROL.search(path):
        raise UnsafePath(path, "control_character", f"The path '{_printable(path)}' contains a control character.")
    if _SURROGATE.search(path):
        raise UnsafePath(
            path, "not_utf8", f"The path '{_printable(path)}' is not valid UTF-8; names must be UTF-8 text."
        )
    found = _FORMAT.search(path)
    if found:
        raise UnsafePath(
            path,
            "format_character",
            f"The path '{_printable(path)}' contains the invisible or bidirectional control character "
            f"U+{ord(found.group()):04X}, which can disguise a name.",
        )


def clean_relative_path(path: str) -> str:
    """Return `path` if it is a safe relative POSIX path, else raise `UnsafePath`.

    Rejected: empty paths, absolute or drive paths, backslashes, NUL, C0/C1 control,
    bidirectional and invisible format characters, lone surrogates (names that were not
    UTF-8), empty/`.`/`..` segments, `.git` components (any case), over-long
    segments or paths. Called for every file Kiln reads or writes, so the common (valid)
    case does no per-character Python work; messages are built only on failure.
    """
    if not isinstance(path, str) or path == "":
        raise UnsafePath(str(path), "empty", "The path is empty.")
    _character_problem(path)
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


def path_key(path: str) -> str:
    """The name a case-insensitive, normalising file system sees: NFC, case-folded.

    'café.txt' written as NFC (U+00E9) and as NFD (e + U+0301) is one file on macOS and in
    many git clients; so are 'Q/f' and 'q/f' on Windows, macOS and case-insensitive checkouts.
    """
    if path.isascii():
        return path.lower()
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", path).casefold())


class PathSet:
    """The files of one output (or archive), checked as they are added.

    `add` raises `DuplicatePath` when a name equals an earlier one once normalised
    (`path_key`), or when a file would sit where a folder is or below a file. Paths must have
    passed `clean_relative_path`.
    """

    def __init__(self) -> None:
        self._files: dict[str, str] = {}
        self._folders: dict[str, str] = {}  # key of a folder -> the first file that made it

    def __contains__(self, path: str) -> bool:
        return path_key(path) in self._files

    def add(self, path: str) -> None:
        key = path_key(path)
        other = self._files.get(key)
        if other is not None:
            if other == path:
                raise DuplicatePath(path, other, "duplicate", f"'{_printable(path)}' appears twice.")
            raise DuplicatePath(
                path,
                other,
                "same_name",
                f"'{_printable(path)}' and '{_printable(other)}' are the same name once Unicode-normalised "
                "and case-folded: on macOS, Windows and case-insensitive checkouts one would overwrite the other.",
            )
        below = self._folders.get(key)
        if below is not None:
            raise DuplicatePath(
                path,
                below,
                "file_and_folder",
                f"'{_printable(path)}' is a file, but '{_printable(below)}' needs a folder of that name.",
            )
        self._record_parents(key, path)
        self._files[key] = path

    def add_folder(self, path: str) -> None:
        """Record an (empty) folder, as archives list them: it must not be a file's name."""
        key = path_key(path)
        other = self._files.get(key)
        if other is not None:
            raise DuplicatePath(
                path, other, "file_and_folder", f"'{_printable(path)}' is a folder and the file '{_printable(other)}'."
            )
        if key not in self._folders:
            self._record_parents(key, path)
            self._folders[key] = path

    def _record_parents(self, key: str, path: str) -> None:
        parents = []
        end = key.rfind("/")
        while end > 0:
            folder = key[:end]
            if folder in self._folders:
                break  # its own parents were recorded with it
            file_there = self._files.get(folder)
            if file_there is not None:
                raise DuplicatePath(
                    path,
                    file_there,
                    "file_and_folder",
                    f"'{_printable(path)}' needs a folder where the file '{_printable(file_there)}' is.",
                )
            parents.append(folder)
            end = key.rfind("/", 0, end)
        for folder in parents:
            self._folders[folder] = path


def _ensure_real_dir(path: str, rel: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        os.mkdir(path, 0o755)
        return
    if not stat.S_ISDIR(st.st_mode):
        message = f"The folder '{_printable(rel)}' of an output file is not a plain folder."
        raise UnsafePath(rel, "not_a_directory", message)


class SafeWriter:
    """Writes files below one root folder, never through a link, never outside it.

    Every path is checked with `clean_relative_path` and against the files written before
    (`PathSet`), so two names for one file, or a file where a folder is, fail with
    `duplicate_output_path` naming both relative paths instead of an OS error.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._prefix = os.path.join(os.fspath(root), "")  # joined as strings: called once per file
        self._dirs: set[str] = {""}
        self._paths = PathSet()

    def _make_parents(self, rel: str) -> None:
        parent, _, _ = rel.rpartition("/")
        if parent in self._dirs:
            return
        current = ""
        for segment in parent.split("/"):
            current = f"{current}/{segment}" if current else segment
            if current not in self._dirs:
                _ensure_real_dir(self._prefix + current, current)
                self._dirs.add(current)

    def write(self, rel: str, data: bytes, mode: int) -> None:
        clean_relative_path(rel)
        self._paths.add(rel)
        self._make_parents(rel)
        try:
            fd = os.open(self._prefix + rel, _WRITE_FLAGS, mode)
        except FileExistsError:  # something this writer did not put there (a folder, a link)
            raise UnsafePath(rel, "exists", f"'{_printable(rel)}' already exists in the output folder.") from None
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
