"""Storage backends of the blob store: Django storage classes with a few blob operations.

Each backend is a Django `Storage` subclass (the filesystem one from Django, the S3 one from
django-storages) selected by `KILN_STORAGE_BACKEND` through `settings.KILN_STORAGE_BACKENDS`
and configured as `STORAGES["blobs"]`. Besides Django's storage API (open, save, exists,
size, delete, listdir, url) each implements `BlobBackend`: a verified write of bytes or of a
file, a listing with sizes, a batch delete, a presigned download URL where the store has
them, and a health check. Adding a backend is one module here and one line in settings.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Protocol


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: datetime


class WriteNotVerified(Exception):
    """The store holds other bytes (or another size) than were written."""


class BlobBackend(Protocol):
    """What the blob store needs from a storage beyond Django's API."""

    #: how many reads or writes the blob store runs at once against this backend
    parallelism: int

    def write_blob(self, key: str, data: bytes) -> None:
        """Store `data` under `key` (replacing any copy) and verify size and hash, or raise WriteNotVerified."""

    def write_blob_file(self, key: str, path: Path, *, size: int, sha256: str) -> None:
        """The same for a file on local disk (archives), streamed; `size` and `sha256` are the file's."""

    def open_blob(self, key: str) -> IO[bytes]:
        """A binary stream of the stored bytes; FileNotFoundError when there is no such key."""

    def blob_size(self, key: str) -> int | None:
        """The stored size, or None when there is no such key."""

    def delete_blobs(self, keys: Iterable[str]) -> None:
        """Delete these keys (missing ones are fine)."""

    def list_blobs(self, prefix: str) -> Iterator[StoredObject]:
        """Every stored key below `prefix`, with its size and modification time."""

    def blob_url(self, key: str, *, filename: str, content_type: str, ttl: int) -> str | None:
        """A short-lived URL that downloads the key as an attachment, or None when the backend has none."""

    def check(self) -> None:
        """Raise when the store cannot be written and read."""
