"""The `filesystem` backend: Django's FileSystemStorage below `GENERATED_PROJECTS_DIR`.

Blobs are written to a temporary name in their folder and renamed into place, so a reader
sees a whole blob or none, and two writers of the same blob (same bytes) both succeed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files.storage import FileSystemStorage

from apps.storage.backends import StoredObject, WriteNotVerified

_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
TMP_SUFFIX = ".tmp"


class FileSystemBlobStorage(FileSystemStorage):
    """Blobs as files under `location` (default: GENERATED_PROJECTS_DIR, read at each use)."""

    parallelism = 1  # local reads and writes of small files: threads only add GIL hand-offs (measured)

    def __init__(self, location: str | os.PathLike[str] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("allow_overwrite", True)
        kwargs.setdefault("file_permissions_mode", 0o644)
        kwargs.setdefault("directory_permissions_mode", 0o755)
        super().__init__(location=location, **kwargs)
        self._folders: set[str] = set()

    # Django caches these; the default location follows the setting (tests change it per test).
    @property  # type: ignore[override]
    def base_location(self) -> str:
        return os.fspath(self._location or settings.GENERATED_PROJECTS_DIR)  # type: ignore[attr-defined]

    @property  # type: ignore[override]
    def location(self) -> str:
        return os.path.abspath(self.base_location)

    def _folder(self, path: str) -> None:
        folder = os.path.dirname(path)
        if folder not in self._folders:
            os.makedirs(folder, mode=0o755, exist_ok=True)
            self._folders.add(folder)

    def _save(self, name: str, content: Any) -> str:
        """Django's `save()` lands here: the same atomic write as `write_blob`."""
        data = b"".join(content.chunks()) if hasattr(content, "chunks") else content.read()
        self._write_atomic(self.path(name), data)
        return name

    def _write_atomic(self, path: str, data: bytes | memoryview) -> int:
        self._folder(path)
        temporary = f"{path}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}"
        try:
            fd = os.open(temporary, _WRITE_FLAGS, 0o644)
        except FileNotFoundError:  # the folder was removed since it was cached (a test, an operator)
            self._folders.discard(os.path.dirname(path))
            self._folder(path)
            fd = os.open(temporary, _WRITE_FLAGS, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            written = os.fstat(fd).st_size
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        os.close(fd)
        os.replace(temporary, path)
        return written

    def write_blob(self, key: str, data: bytes) -> None:
        written = self._write_atomic(self.path(key), data)
        # the bytes hashed by the caller are the bytes handed to the kernel; the size says they all arrived
        if written != len(data):
            raise WriteNotVerified(f"{key}: wrote {written} of {len(data)} bytes")

    def write_blob_file(self, key: str, path: Path, *, size: int, sha256: str) -> None:
        target = self.path(key)
        self._folder(target)
        temporary = f"{target}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}"
        digest = hashlib.sha256()
        with open(path, "rb") as source, open(temporary, "xb") as out:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            written = os.fstat(out.fileno()).st_size
        if written != size or digest.hexdigest() != sha256:
            os.unlink(temporary)
            raise WriteNotVerified(f"{key}: the file changed while it was stored")
        os.replace(temporary, target)

    def open_blob(self, key: str) -> IO[bytes]:
        fd = os.open(self.path(key), _READ_FLAGS)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise FileNotFoundError(key)
        return os.fdopen(fd, "rb", buffering=0)

    def blob_size(self, key: str) -> int | None:
        try:
            st = os.lstat(self.path(key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    def delete_blobs(self, keys: Iterable[str]) -> None:
        for key in keys:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path(key))

    def list_blobs(self, prefix: str) -> Iterator[StoredObject]:
        root = self.path(prefix)
        for folder, dirs, files in os.walk(root, followlinks=False):
            dirs.sort()  # key order, as S3 lists: the sweeper merges the listing with the index
            relative = os.path.relpath(folder, self.location).replace(os.sep, "/")
            for name in sorted(files):
                try:
                    st = os.lstat(os.path.join(folder, name))
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    yield StoredObject(
                        key=f"{relative}/{name}", size=st.st_size, modified=datetime.fromtimestamp(st.st_mtime, UTC)
                    )

    def blob_url(self, key: str, *, filename: str, content_type: str, ttl: int) -> str | None:
        return None  # files on a local disk have no URL of their own; Kiln streams them

    def check(self) -> None:
        probe = f".healthz/{uuid.uuid4().hex}"
        path = self.path(probe)
        self._write_atomic(path, b"ok")
        try:
            with open(path, "rb") as handle:
                if handle.read() != b"ok":
                    raise OSError("the storage returned other bytes than were written")
        finally:
            os.unlink(path)
