"""The order of template version labels, as one sortable string per version.

Labels that read as versions (PEP 440, with or without a `v` prefix) are ordered as Copier
orders tags, by `packaging.version`; they rank above labels that do not (a short commit, a
name), which are ordered by when they were recorded. `version_sort_key` encodes either into a
string whose byte order is that order, so the database sorts versions (newest first: descending)
without loading them.
"""

from __future__ import annotations

from datetime import datetime

from packaging.version import InvalidVersion, Version

# the characters below order the encoded parts; every one sorts before the digits and letters
_PART_END = "!"  # after a release component list, a local segment's part
_TUPLE_END = " "  # after the local segment's parts


def parse_version(label: str) -> Version | None:
    """The label as a PEP 440 version, or None when it does not read as one."""
    try:
        return Version(label)
    except InvalidVersion:
        return None


def _number(value: int) -> str:
    """A non-negative integer as a string that sorts numerically (its length first)."""
    digits = str(value)
    return f"{len(digits):03d}{digits}"


def _pep440_key(version: Version) -> str:
    release = list(version.release)
    while len(release) > 1 and release[-1] == 0:  # 1.0 == 1.0.0
        release.pop()
    parts = [_number(version.epoch), "".join(_number(n) for n in release), _PART_END]
    # packaging's _cmpkey: X.devN < X.aN < X.bN < X.rcN < X < X.postN; .devN before its segment
    if version.pre is None and version.post is None and version.dev is not None:
        parts.append("0")
    elif version.pre is None:
        parts.append("9")
    else:
        letter, number = version.pre
        parts.append("1" + {"a": "a", "b": "b", "rc": "c"}[letter] + _number(number))
    parts.append("0" if version.post is None else "1" + _number(version.post))
    parts.append("9" if version.dev is None else "0" + _number(version.dev))
    if version.local is None:
        parts.append("0")
    else:
        local = []
        for piece in version.local.split("."):
            local.append(("1" + _number(int(piece)) if piece.isdigit() else "0" + piece.lower()) + _PART_END)
        parts.append("1" + "".join(local) + _TUPLE_END)
    return "".join(parts)


def version_sort_key(label: str, recorded_at: datetime, *, orderable: bool = True) -> str:
    """The string that orders `label` among a template's versions (ascending: oldest first).

    `orderable=False` ranks a label by `recorded_at` even when it reads as a version (a short
    commit that happens to be all digits).
    """
    version = parse_version(label) if orderable else None
    if version is None:
        return "0" + recorded_at.strftime("%Y%m%d%H%M%S%f")
    return "1" + _pep440_key(version)
