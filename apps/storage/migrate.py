"""Copying the blob store into another backend (`manage.py storage_migrate --to s3`).

Every blob the source holds is read (its content verified against its name), written to the
target as it is stored (compressed blobs stay compressed; a verified write) and read back from
the target and verified again; a blob the target already holds is only read back and re-copied
if it does not verify. The index (`Blob` rows, with each blob's stored size and encoding)
stays as it is: the same objects exist in the new store. Run it, switch `KILN_STORAGE_BACKEND`,
restart web and workers, run it once more to pick up what was stored meanwhile.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files.storage import storages

from apps.storage.blobs import (
    EMPTY_SHA256,
    BlobCorrupt,
    BlobMissing,
    BlobStore,
    DecodedStream,
    StorageUnavailable,
    blob_key,
    key_sha256,
    ordered_results,
    scratch_root,
    storage_errors,
)
from apps.storage.models import Blob

logger = logging.getLogger("kiln.storage.migrate")

IN_MEMORY = 64 << 20  # larger stored objects are written from the spooled file


@dataclass
class MigrateReport:
    source: str
    target: str
    blobs: int = 0
    copied: int = 0
    already_there: int = 0
    bytes_copied: int = 0
    verified: int = 0
    failed: list[str] = field(default_factory=list)  # "<sha256>: <reason>"
    indexed_but_missing_in_source: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def ok(self) -> bool:
        return not self.failed


def build_store(backend: str) -> BlobStore:
    """A blob store over the named backend, configured from the settings (AWS_* for s3)."""
    try:
        path = settings.KILN_STORAGE_BACKENDS[backend]
    except KeyError:
        known = ", ".join(settings.KILN_STORAGE_BACKENDS)
        raise ValueError(f"unknown storage backend {backend!r}; one of {known}") from None
    return BlobStore(storages.create_storage({"BACKEND": path}))  # type: ignore[arg-type]


def _content_sha256(raw: IO[bytes]) -> str | None:
    """The sha256 of the content of a stored object (inflated when compressed); None when it does not inflate."""
    digest = hashlib.sha256()
    stream = DecodedStream(raw)
    try:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    except zlib.error:
        return None
    finally:
        raw.close()
    return digest.hexdigest()


def _target_sha256(target: BlobStore, sha256: str) -> str | None:
    """The sha256 of the content the target holds under this blob's key, or None when it holds nothing usable."""
    try:
        raw = target.backend.open_blob(blob_key(sha256))
    except FileNotFoundError:
        return None
    return _content_sha256(raw)


def _copy_one(source: BlobStore, target: BlobStore, sha256: str) -> tuple[str, str, int]:
    """(sha256, outcome, stored bytes copied) with outcome `copied`, `already_there` or `failed: reason`."""
    key = blob_key(sha256)
    try:
        with storage_errors("Copying a blob"):
            if _target_sha256(target, sha256) == sha256:
                return sha256, "already_there", 0
            scratch_root().mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=scratch_root(), prefix="migrate-") as spool:
                # the stored bytes as they are, then their content checked against the name
                try:
                    raw = source.backend.open_blob(key)
                except FileNotFoundError:
                    return sha256, "failed: blob_missing", 0
                stored = hashlib.sha256()
                try:
                    for chunk in iter(lambda: raw.read(1 << 20), b""):
                        stored.update(chunk)
                        spool.write(chunk)
                finally:
                    raw.close()
                spool.flush()
                spool.seek(0)
                if _content_sha256(open(spool.name, "rb")) != sha256:  # noqa: SIM115 - closed by _content_sha256
                    return sha256, "failed: blob_corrupt", 0
                written = os.path.getsize(spool.name)
                if written <= IN_MEMORY:
                    spool.seek(0)
                    target.backend.write_blob(key, spool.read())
                else:
                    target.backend.write_blob_file(key, Path(spool.name), size=written, sha256=stored.hexdigest())
            if _target_sha256(target, sha256) != sha256:
                return sha256, "failed: the target holds other bytes after the copy", 0
    except (BlobMissing, BlobCorrupt, StorageUnavailable) as exc:
        return sha256, f"failed: {exc.code}", 0
    return sha256, "copied", written


def storage_migrate(
    *, source: BlobStore, target: BlobStore, source_name: str, target_name: str, progress: Callable[[int], None]
) -> MigrateReport:
    report = MigrateReport(source=source_name, target=target_name)
    listed: dict[str, int] = {}
    for stored in source.iter_stored():
        sha = key_sha256(stored.key)
        if sha is not None:
            listed[sha] = stored.size
    report.blobs = len(listed)
    indexed = set(Blob.objects.exclude(sha256=EMPTY_SHA256).values_list("sha256", flat=True))
    report.indexed_but_missing_in_source = len(indexed - set(listed))
    calls = [lambda sha=sha: _copy_one(source, target, sha) for sha in sorted(listed)]
    parallelism = max(source.parallelism, target.parallelism)
    for done, (sha, outcome, copied) in enumerate(
        ordered_results(calls, parallelism=parallelism, window=parallelism * 2), start=1
    ):
        if outcome == "copied":
            report.copied += 1
            report.bytes_copied += copied
            report.verified += 1
        elif outcome == "already_there":
            report.already_there += 1
            report.verified += 1
        else:
            report.failed.append(f"{sha}: {outcome.removeprefix('failed: ')}")
        progress(done)
    logger.info("storage_migrate: %s", {k: v for k, v in report.as_dict().items() if k != "failed"})
    return report
