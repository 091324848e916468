"""The sweeper: unreferenced blobs go, referenced ones stay, and a job storing at the same moment wins."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, connections
from django.db.models import Q

from apps.storage.blobs import blob_key, blob_store, blob_writes, known_blobs
from apps.storage.models import Blob
from apps.storage.sweep import blobs_sweep


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _generation(cast: Any, make_template: Any) -> Any:
    from apps.projects.models import GeneratedProject

    template = make_template({"a.txt": "a"})
    return GeneratedProject.objects.create(
        project=cast.project,
        template=template,
        template_version=template.version,
        template_checksum=template.checksum,
        parameters={},
    )


def _reference(generated: Any, path: str, data: bytes) -> None:
    from apps.projects.models import ProjectFile

    ProjectFile.objects.create(generated=generated, path=path, size=len(data), sha256=sha(data), mode=0o644)


@pytest.mark.django_db
def test_sweep_deletes_only_unreferenced_blobs_and_dry_run_counts_bytes(
    any_storage: str, cast: Any, make_template: Any
) -> None:
    store = blob_store()
    kept, dropped = b"still used" * 10, b"nobody needs this" * 7
    with blob_writes(), store.writer() as writer:
        writer.add(kept)
        writer.add(dropped)
    generated = _generation(cast, make_template)
    _reference(generated, "kept.txt", kept)

    dry = blobs_sweep(dry_run=True)
    assert (dry.blobs_deleted, dry.bytes_freed) == (1, len(dropped))
    assert store.exists(sha(dropped))  # a dry run deletes nothing

    # as if the generation were deleted: both would go
    ignoring = {"generated files": Q(generated_id=generated.pk)}
    assert blobs_sweep(dry_run=True, ignoring=ignoring).bytes_freed == len(kept) + len(dropped)

    report = blobs_sweep(dry_run=False)
    assert (report.blobs_deleted, report.bytes_freed) == (1, len(dropped))
    assert store.exists(sha(kept)) and not store.exists(sha(dropped))
    assert known_blobs([sha(kept), sha(dropped)]) == {sha(kept)}


@pytest.mark.django_db
def test_sweep_removes_objects_missing_from_the_index_and_stale_temporary_files(any_storage: str) -> None:
    store = blob_store()
    data = b"written by a worker killed before it indexed the blob"
    store.backend.write_blob(blob_key(sha(data)), data)  # stored, never indexed
    assert not Blob.objects.exists()
    report = blobs_sweep(dry_run=False)
    assert (report.orphans_deleted, report.bytes_freed) == (1, len(data))
    assert not store.exists(sha(data))


@pytest.mark.django_db
def test_stale_temporary_files_go(tmp_path: Path) -> None:
    import os
    import time

    store = blob_store()
    stale = Path(store.backend.path(blob_key(sha(b"t")) + ".0123abcd.tmp"))  # type: ignore[attr-defined]
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"half")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    assert blobs_sweep(dry_run=False).temporary_deleted == 1
    assert not stale.exists()


@pytest.mark.django_db(transaction=True)
def test_a_generation_completing_during_the_sweep_keeps_its_blobs(
    any_storage: str, cast: Any, make_template: Any
) -> None:
    """The race: a job decides a stored (unreferenced) blob exists, the sweeper picks it as a
    candidate, then the job commits rows that use it. The sweeper must wait for the job's
    fence and then see the new reference; the blob survives and reads back."""
    store = blob_store()
    data = b"shared README for every generation\n" * 20
    with blob_writes():
        store.put(data)
    generated = _generation(cast, make_template)
    decided = threading.Event()
    sweeping = threading.Event()
    results: dict[str, Any] = {}

    def job() -> None:
        try:
            with blob_writes():
                with store.writer() as writer:
                    writer.add(data)  # found in the index: not stored again
                results["stored"] = writer.stored
                decided.set()
                sweeping.wait(10)
                # the sweeper is now waiting for the fence; give it a moment to be blocked
                threading.Event().wait(0.3)
                _reference(generated, "README.md", data)
        finally:
            connections.close_all()

    def sweeper() -> None:
        try:
            decided.wait(10)
            sweeping.set()
            results["report"] = blobs_sweep(dry_run=False, lock_timeout=10)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=job), threading.Thread(target=sweeper)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results["stored"] == 0
    report = results["report"]
    assert report.blobs_deleted == 0 and report.kept_in_use == 1
    assert store.read(sha(data), size=len(data)) == data
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_the_sweeper_gives_up_on_a_batch_while_writers_hold_the_fence(any_storage: str) -> None:
    store = blob_store()
    with blob_writes():
        ref = store.put(b"orphan for later")
    held = threading.Event()
    release = threading.Event()

    def writer() -> None:
        try:
            with blob_writes():
                held.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=writer)
    thread.start()
    held.wait(10)
    try:
        report = blobs_sweep(dry_run=False, lock_timeout=0.2)
    finally:
        release.set()
        thread.join(10)
    assert report.skipped_busy == 1 and report.blobs_deleted == 0
    assert store.exists(ref.sha256)
    assert blobs_sweep(dry_run=False).blobs_deleted == 1


@pytest.mark.django_db
def test_index_rows_whose_object_is_gone_are_dropped_and_the_next_writer_stores_again(
    any_storage: str, cast: Any, make_template: Any
) -> None:
    """The index/storage divergence behind the empty-file bug, for any blob: the storage lost objects
    the index lists (a bucket reset, another backend). The sweep's pass over the storage finds them."""
    from datetime import timedelta

    from django.utils import timezone

    store = blob_store()
    present, lost, recent = b"still stored\n" * 20, b"lost with the bucket\n" * 20, b"indexed a moment ago\n" * 20
    with blob_writes(), store.writer() as writer:
        for data in (present, lost, recent):
            writer.add(data)
    Blob.objects.exclude(pk=sha(recent)).update(created_at=timezone.now() - timedelta(hours=1))
    generated = _generation(cast, make_template)
    for path, data in (("present.txt", present), ("lost.txt", lost), ("recent.txt", recent)):
        _reference(generated, path, data)
    store.backend.delete_blobs([blob_key(sha(lost)), blob_key(sha(recent))])  # behind Kiln's back

    dry = blobs_sweep(dry_run=True)
    assert (dry.index_missing, dry.index_missing_in_use, dry.blobs_deleted) == (1, 1, 0)
    assert known_blobs([sha(lost)]) == {sha(lost)}  # a dry run changes nothing
    report = blobs_sweep(dry_run=False)
    assert (report.index_missing, report.index_missing_in_use, report.blobs_deleted) == (1, 1, 0)
    # the lost row is gone; the present one and the one younger than the grace are kept
    assert known_blobs([sha(d) for d in (present, lost, recent)]) == {sha(present), sha(recent)}
    with blob_writes(), store.writer() as writer:
        writer.add(lost)
    assert writer.stored == 1  # not trusted any more: stored again, and it reads back
    assert store.read(sha(lost), size=len(lost)) == lost
    assert blobs_sweep(dry_run=True).index_missing == 0


@pytest.mark.django_db
def test_a_listing_out_of_key_order_checks_no_index_row() -> None:
    from datetime import UTC, datetime

    from apps.storage.backends import StoredObject
    from apps.storage.sweep import _scan

    first, second = sha(b"a"), sha(b"b")
    keys = sorted([blob_key(first), blob_key(second)], reverse=True)

    class Unordered:
        def iter_stored(self) -> Any:
            return iter(StoredObject(key, 1, datetime.now(UTC)) for key in keys)

    orphans, temporary, missing = _scan(Unordered())  # type: ignore[arg-type]
    assert missing is None and sorted(orphans) == sorted([(first, 1), (second, 1)]) and temporary == []
