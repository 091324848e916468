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

The same pass over the storage finds index rows whose object is gone (a bucket or folder reset,
a switch of backend without storage_migrate): writers trust the index, so such a row would make
every later job that needs the blob skip storing it. The sweep drops those rows (and reports how
many rows still point at them: files already lost), and the next writer stores the blob again.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.storage.backends.filesystem import TMP_SUFFIX
from apps.storage.blobs import BlobStore, blob_store, forget_blobs, key_sha256, known_blobs, sweep_fence
from apps.storage.models import Blob
from apps.storage.references import referenced_among, unreferenced_conditions

logger = logging.getLogger("kiln.storage.sweep")

BATCH = 1000
TEMPORARY_GRACE = timedelta(hours=1)  # a temporary file this old belongs to no running write
INDEX_GRACE = timedelta(minutes=10)  # index rows younger than this are not checked against the listing


@dataclass
class SweepReport:
    dry_run: bool
    blobs_deleted: int = 0
    bytes_freed: int = 0
    orphans_deleted: int = 0  # objects that were in the storage but not in the index
    temporary_deleted: int = 0
    kept_in_use: int = 0  # candidates a job started using before their batch was deleted
    skipped_busy: int = 0  # candidates left for the next sweep: writers held the fence
    # index rows whose object the storage does not hold (a bucket or folder reset, a switch of backend without
    # storage_migrate): dropped, so the next job that needs the blob stores it again instead of trusting the row
    index_missing: int = 0
    index_missing_in_use: int = 0  # of which rows still point at them: those files are lost (blob_missing on read)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _chunks(items: list[tuple[str, int]], size: int) -> Iterator[list[tuple[str, int]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _IndexInOrder:
    """The index's blobs recorded before `before`, in sha256 order, a page at a time (keyset), for the
    merge with the storage's listing; `ordered` turns False if the database does not sort as Python does."""

    def __init__(self, before: datetime) -> None:
        self.before = before
        self.ordered = True
        self._page: deque[str] = deque()
        self._last = ""
        self._exhausted = False

    def peek(self) -> str | None:
        if not self._page and not self._exhausted:
            rows = list(
                Blob.objects.filter(created_at__lt=self.before, sha256__gt=self._last)
                .order_by("sha256")
                .values_list("sha256", flat=True)[:BATCH]
            )
            if any(b <= a for a, b in zip([self._last, *rows], rows, strict=False)):
                self.ordered = False
            self._page.extend(rows)
            self._exhausted = len(rows) < BATCH
            if rows:
                self._last = rows[-1]
        return self._page[0] if self._page else None

    def pop(self) -> str:
        return self._page.popleft()


def _scan(store: BlobStore) -> tuple[list[tuple[str, int]], list[str], list[str] | None]:
    """One pass over the storage's listing: objects the index does not list (orphans), stale
    temporary files, and index rows whose object the storage does not hold (None when the listing or
    the index did not come in sha256 order, so nothing can be said about them).

    Both backends list in key order (`blobs/ab/<sha256>`), so the listing is merged with the index
    read in sha256 order, in bounded memory. Only rows older than the scan (by INDEX_GRACE) count:
    such a row's object was stored before the row was written, so the listing must show it.
    """
    orphans: list[tuple[str, int]] = []
    temporary: list[str] = []
    missing: list[str] = []
    stale = timezone.now() - TEMPORARY_GRACE
    index = _IndexInOrder(timezone.now() - INDEX_GRACE)
    in_order = True
    previous = ""
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
        if in_order:
            if sha <= previous:
                in_order = False
            previous = sha
            while (row := index.peek()) is not None and row < sha:
                missing.append(index.pop())
            if row == sha:
                index.pop()
        batch[sha] = stored.size
        if len(batch) >= BATCH:
            settle()
    settle()
    if in_order:
        while index.peek() is not None:
            missing.append(index.pop())
    return orphans, temporary, (missing if in_order and index.ordered else None)


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
    orphans, temporary, missing = _scan(store) if scan_storage else ([], [], [])
    if missing is None:
        logger.warning("blob sweep: the storage or the index did not list in sha256 order; index not checked")
        missing = []
    if missing:
        report.index_missing = len(missing)
        report.index_missing_in_use = len(referenced_among(missing))
        logger.error(
            "blob sweep: %d indexed blobs are not in the storage (%d still referenced)%s",
            report.index_missing,
            report.index_missing_in_use,
            "" if dry_run else "; dropped from the index",
        )
        if not dry_run:
            forget_blobs(missing)
        missing_set = set(missing)
        indexed = [(sha, size) for sha, size in indexed if sha not in missing_set]  # nothing there to free
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
    if report.blobs_deleted or report.skipped_busy or report.index_missing:
        logger.info("blob sweep: %s", report.as_dict())
    return report
