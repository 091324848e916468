"""The files a completed generation left under `GENERATED_PROJECTS_DIR`, read back safely.

Exports (git, zip, tar.gz) and the CLI's `--output` read the recorded files (`ProjectFile`
rows) through here: never through a link, only regular files, and only with the size that
was recorded, so a tree changed on disk after the generation is refused instead of exported.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from core.exceptions import ApplicationError

_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
class SourceFile:
    path: str
    mode: int
    size: int


def read_generated_file(root: Path | str, source: SourceFile) -> bytes:
    """Read one recorded file without following links; refuse anything but a regular file."""
    try:
        fd = os.open(os.path.join(root, source.path), _READ_FLAGS)
    except OSError as exc:
        raise ApplicationError(
            f"The generated file '{source.path}' is missing or is not a regular file.",
            code="unsupported_file_type",
            status_code=422,
        ) from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ApplicationError(
                f"The generated file '{source.path}' is not a regular file.",
                code="unsupported_file_type",
                status_code=422,
            )
        chunks = []
        remaining = source.size + 1
        while remaining > 0:
            chunk = os.read(fd, remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    finally:
        os.close(fd)
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if len(data) != source.size:
        raise ApplicationError(
            f"The generated file '{source.path}' changed on disk since generation.",
            code="files_changed",
            status_code=409,
        )
    return data
