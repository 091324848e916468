"""Deleting blobs nothing points at (mark and sweep), safe against jobs storing at the same moment.

Candidates are blobs of the index that no registered reference (`apps.storage.references`)
points at, and objects in the storage that are not in the index (left by a writer killed
between storing and indexing). Each batch is then deleted under the sweeper's exclusive hold
of the writers' fence (`blob_writes()`): inside it no job is between "this blob is stored,
I will not store it again" and the commit of its rows, so the batch is checked once more
against the references and only blobs still unreferenced are deleted. A job that comes
after finds the blob gone from the index and stores it again. Writers wait at most for one
batch; the sweeper gives up on a batch when writers kept the fence for `lock_timeout`
seconds and reports it (`skipped_busy`), so a busy system is never stalled by cleanup.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.storage.backends.filesystem import TMP_SUFFIX
from apps.storage.blobs import BlobStore, blob_store, key_sha256, known_blobs, sweep_fence
from apps.storage.models import Blob
from apps.storage.references import referenced_among, unreferenced_conditions

logger = logging.getLogger("kiln.storage.sweep")

BATCH = 1000
TEMPORARY_GRACE = timedelta(hours=1)  # a temporary file this old belongs to no running write


@dataclass
class SweepReport:
    dry_run: bool
    blobs_deleted: int = 0
    bytes_freed: int = 0
    orphans_deleted: int = 0  # objects that were in the storage but not in the index
    temporary_deleted: int = 0
    kept_in_use: int = 0  # candidates a job started using before their batch was deleted
    skipped_busy: int = 0  # candidates left for the next sweep: writers held the fence

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _chunks(items: list[tuple[str, int]], size: int) -> Iterator[list[tuple[str, int]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _orphans(store: BlobStore, report: SweepReport) -> tuple[list[tuple[str, int]], list[str]]:
    """Objects in the storage that the index does not list, and stale temporary files."""
    orphans: list[tuple[str, int]] = []
    temporary: list[str] = []
    stale = timezone.now() - TEMPORARY_GRACE
    batch: dict[str, int] = {}

    def settle() -> None:
        known = known_blobs(batch)
        orphans.extend((sha, size) for sha, size in batch.items() if sha not in known)
        batch.clear()

    for stored in store.iter_stored():
        sha = key_sha256(stored.key)
        if sha is None:
            if stored.key.endswith(TMP_SUFFIX) and stored.modified < stale:
                temporary.append(stored.key)
            continue
        batch[sha] = stored.size
        if len(batch) >= BATCH:
            settle()
    settle()
    return orphans, temporary


def blobs_sweep(
    *,
    dry_run: bool,
    ignoring: dict[str, Q] | None = None,
    scan_storage: bool = True,
    lock_timeout: float = 5.0,
    batch_size: int = BATCH,
) -> SweepReport:
    """Delete (or, with `dry_run`, count) the blobs nothing points at.

    `ignoring` (dry runs only) counts blobs as if the matching rows were already deleted: the
    cleanup's dry run reports what deleting old generations would free.
    """
    if ignoring and not dry_run:
        raise ValueError("ignoring is for dry runs: delete the rows first, then sweep")
    store = blob_store()
    report = SweepReport(dry_run=dry_run)
    # sizes in the storage (compressed where they are), as bytes_freed reports them
    indexed = list(
        Blob.objects.filter(*unreferenced_conditions(ignoring))
        .annotate(stored=Coalesce("stored_size", "size"))
        .values_list("sha256", "stored")
    )
    orphans, temporary = _orphans(store, report) if scan_storage else ([], [])
    if orphans:
        # an object whose index row is gone but that rows still point at is kept (and re-indexed by the next writer)
        in_use = referenced_among(sha for sha, _ in orphans)
        orphans = [(sha, size) for sha, size in orphans if sha not in in_use]
    if dry_run:
        report.blobs_deleted = len(indexed) + len(orphans)
        report.orphans_deleted = len(orphans)
        report.bytes_freed = sum(size for _, size in indexed) + sum(size for _, size in orphans)
        report.temporary_deleted = len(temporary)
        return report
    orphan_set = {sha for sha, _ in orphans}
    for batch in _chunks(indexed + orphans, batch_size):
        with sweep_fence(timeout=lock_timeout) as acquired:
            if not acquired:
                report.skipped_busy += len(batch)
                continue
            in_use = referenced_among(sha for sha, _ in batch)
            doomed = [(sha, size) for sha, size in batch if sha not in in_use]
            store.delete_many([sha for sha, _ in doomed])
        report.kept_in_use += len(batch) - len(doomed)
        report.blobs_deleted += len(doomed)
        report.orphans_deleted += sum(1 for sha, _ in doomed if sha in orphan_set)
        report.bytes_freed += sum(size for _, size in doomed)
    if temporary:
        store.delete_keys(temporary)
        report.temporary_deleted = len(temporary)
    if report.blobs_deleted or report.skipped_busy:
        logger.info("blob sweep: %s", report.as_dict())
    return report
