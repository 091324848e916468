"""The blob store on both backends: idempotent verified writes, verified reads, materialise, URLs."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from apps.storage.blobs import (
    ZLIB_MARKER,
    BlobCorrupt,
    BlobMissing,
    ManifestItem,
    StorageUnavailable,
    blob_key,
    blob_store,
    blob_writes,
    encode_blob,
    key_sha256,
    known_blobs,
    scratch_folder,
)
from apps.storage.models import Blob

pytestmark = pytest.mark.django_db


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def overwrite_stored(storage_kind: str, digest: str, data: bytes, server: Any = None, bucket: str = "") -> None:
    """Damage a stored blob behind Kiln's back (a disk error, an operator, another program)."""
    store = blob_store()
    if storage_kind == "filesystem":
        Path(store.backend.path(blob_key(digest))).write_bytes(data)  # type: ignore[attr-defined]
    else:
        server.client().put_object(Bucket=bucket, Key=blob_key(digest), Body=data)


def test_put_stores_once_under_the_sha256_and_reads_back_verified(any_storage: str) -> None:
    store = blob_store()
    data = b"hello blobs\n" * 100
    with blob_writes():
        ref = store.put(data)
    assert ref.sha256 == sha(data) and ref.size == len(data)
    assert store.exists(ref.sha256)
    assert store.read(ref.sha256, size=len(data)) == data
    assert Blob.objects.get(pk=ref.sha256).size == len(data)
    # the same bytes again: found in the index, nothing stored
    with blob_writes(), store.writer() as writer:
        writer.add(data)
        writer.add(b"another")
        writer.add(b"another")  # twice in one job: stored once
    assert writer.stored == 1
    assert store.read(sha(b"another")) == b"another"


def test_many_blobs_in_one_writer_are_all_stored_and_indexed(any_storage: str, monkeypatch: Any) -> None:
    # small batches, so that a few dozen blobs take the paths 300 took: several index lookups, and on
    # S3 more writes in flight than the writer lets queue (parallelism x 4 = 64), settled as it goes
    monkeypatch.setattr("apps.storage.blobs._BATCH_FILES", 16)
    store = blob_store()
    payloads = [f"file {i}\n".encode() * (i + 1) for i in range(80)]
    with blob_writes(), store.writer() as writer:
        for data in payloads:
            writer.add(data)
    assert writer.stored == 80
    assert known_blobs(sha(d) for d in payloads) == {sha(d) for d in payloads}
    assert list(store.read_many([(sha(d), len(d)) for d in payloads])) == payloads


def test_a_damaged_blob_is_detected_on_read_and_dropped_from_the_index(
    any_storage: str, request: pytest.FixtureRequest
) -> None:
    store = blob_store()
    data = b"the right bytes"
    with blob_writes():
        ref = store.put(data)
    server = request.getfixturevalue("s3_server") if any_storage == "s3" else None
    bucket = request.getfixturevalue("s3_bucket") if any_storage == "s3" else ""
    overwrite_stored(any_storage, ref.sha256, b"the wrong bytes", server, bucket)
    with pytest.raises(BlobCorrupt) as caught:
        store.read(ref.sha256, size=len(data))
    assert caught.value.code == "blob_corrupt"
    assert not Blob.objects.filter(pk=ref.sha256).exists()
    # the next writer of these bytes stores them again, and they read back right
    with blob_writes():
        store.put(data)
    assert store.read(ref.sha256, size=len(data)) == data


def test_a_truncated_or_longer_blob_is_corrupt_even_when_streamed(
    any_storage: str, request: pytest.FixtureRequest
) -> None:
    store = blob_store()
    data = b"x" * 5000
    with blob_writes():
        ref = store.put(data)
    server = request.getfixturevalue("s3_server") if any_storage == "s3" else None
    bucket = request.getfixturevalue("s3_bucket") if any_storage == "s3" else ""
    overwrite_stored(any_storage, ref.sha256, data + b"tail", server, bucket)
    reader = store.open(ref.sha256, size=len(data))

    def drain() -> None:
        while reader.read(1024):
            pass

    with pytest.raises(BlobCorrupt):
        drain()


def test_a_missing_blob_is_a_coded_error(any_storage: str) -> None:
    store = blob_store()
    with blob_writes():
        ref = store.put(b"soon gone")
    store.backend.delete_blobs([blob_key(ref.sha256)])
    with pytest.raises(BlobMissing) as caught:
        store.read(ref.sha256)
    assert caught.value.code == "blob_missing" and caught.value.status_code == 410
    assert not Blob.objects.filter(pk=ref.sha256).exists()


def test_put_file_streams_a_local_file(any_storage: str, tmp_path: Path) -> None:
    path = tmp_path / "archive.bin"
    data = os.urandom(3 * 1024 * 1024 + 17)
    path.write_bytes(data)
    with blob_writes():
        ref = blob_store().put_file(path)
    assert ref.sha256 == sha(data)
    assert blob_store().read(ref.sha256, size=len(data)) == data


def test_materialise_writes_a_manifest_with_modes(any_storage: str, tmp_path: Path) -> None:
    store = blob_store()
    files = {
        "README.md": (b"# hi\n", 0o644),
        "bin/run.sh": (b"#!/bin/sh\necho hi\n", 0o755),
        "a/b/c.txt": (b"c", 0o644),
    }
    with blob_writes(), store.writer() as writer:
        for data, _ in files.values():
            writer.add(data)
    manifest = [ManifestItem(path, mode, sha(data), len(data)) for path, (data, mode) in files.items()]
    with scratch_folder("test-tree") as folder:
        assert store.materialise(manifest, folder / "tree") == 3
        for path, (data, mode) in files.items():
            target = folder / "tree" / path
            assert target.read_bytes() == data
            assert bool(target.stat().st_mode & 0o100) == bool(mode & 0o100)
        kept = folder
    assert not kept.exists()  # the scratch folder is removed afterwards


def test_materialise_refuses_unsafe_paths(any_storage: str, tmp_path: Path) -> None:
    from core.safe_paths import UnsafePath

    store = blob_store()
    with blob_writes():
        ref = store.put(b"x")
    with pytest.raises(UnsafePath):
        store.materialise([ManifestItem("../escape.txt", 0o644, ref.sha256)], tmp_path / "tree")
    assert not (tmp_path / "escape.txt").exists()


def _stored(storage_kind: str, digest: str, server: Any = None, bucket: str = "") -> bytes:
    """The bytes the storage holds for a blob (compressed or not), read behind Kiln's back."""
    if storage_kind == "filesystem":
        return Path(blob_store().backend.path(blob_key(digest))).read_bytes()  # type: ignore[attr-defined]
    return bytes(server.client().get_object(Bucket=bucket, Key=blob_key(digest))["Body"].read())


def test_blobs_are_compressed_where_it_pays_and_read_back_inflated(
    any_storage: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    server = request.getfixturevalue("s3_server") if any_storage == "s3" else None
    bucket = request.getfixturevalue("s3_bucket") if any_storage == "s3" else ""
    store = blob_store()
    text = b"".join(f"line {i}: the same words again\n".encode() for i in range(2000))
    noise = hashlib.shake_256(b"noise").digest(300_000)  # does not compress, and is over the sample size
    tiny = b"x" * 100  # below the minimum: as it is
    marked = ZLIB_MARKER + b"a file that begins like a compressed blob"  # framed whatever it saves
    payloads = [text, noise, tiny, marked]
    with blob_writes(), store.writer() as writer:
        for data in payloads:
            writer.add(data)
    assert writer.stored_bytes == sum(map(len, payloads)) and writer.written_bytes < writer.stored_bytes
    rows = {row.sha256: row for row in Blob.objects.filter(sha256__in=[sha(d) for d in payloads])}
    expected = {sha(text): "zlib", sha(noise): "", sha(tiny): "", sha(marked): "zlib"}
    assert {digest: rows[digest].encoding for digest in expected} == expected
    for data in payloads:
        kept = _stored(any_storage, sha(data), server, bucket)
        assert rows[sha(data)].stored_size == len(kept) and rows[sha(data)].size == len(data)
        assert kept.startswith(ZLIB_MARKER) == (rows[sha(data)].encoding == "zlib")
    assert len(_stored(any_storage, sha(text), server, bucket)) < len(text) // 10
    # whole, streamed in small reads, several at once, into a tree
    assert list(store.read_many([(sha(d), len(d)) for d in payloads])) == payloads
    with store.open(sha(text), size=len(text)) as reader:
        assert b"".join(iter(lambda: reader.read(777), b"")) == text
    # read(n) gives n bytes unless the content ends first, compressed or not (callers tell a
    # truncated file by the length they get: MCP read_file reads limit + 1)
    for data in payloads:
        with store.open(sha(data), size=len(data)) as reader:
            first = reader.read(min(len(data), 20_000))
            assert first == data[:20_000], (len(first), len(data))
            assert reader.read(len(data) + 1) == data[20_000:]
    manifest = [ManifestItem(f"f{i}", 0o644, sha(d), len(d)) for i, d in enumerate(payloads)]
    store.materialise(manifest, tmp_path / "tree")
    assert [(tmp_path / "tree" / f"f{i}").read_bytes() for i in range(4)] == payloads
    # a blob stored before compression (as it is, no stored size in its row) still reads
    legacy = b"legacy text, stored as it was\n" * 50
    store.backend.write_blob(blob_key(sha(legacy)), legacy)
    Blob.objects.create(sha256=sha(legacy), size=len(legacy))
    assert store.read(sha(legacy), size=len(legacy)) == legacy


@pytest.mark.parametrize(
    "damage",
    ["flipped", "truncated", "trailing", "other content", "bomb"],
)
def test_a_damaged_compressed_blob_is_corrupt(damage: str) -> None:
    store = blob_store()
    text = b"compressible " * 1000
    with blob_writes():
        ref = store.put(text)
    path = Path(store.backend.path(blob_key(ref.sha256)))  # type: ignore[attr-defined]
    kept = path.read_bytes()
    assert kept.startswith(ZLIB_MARKER)
    bodies: dict[str, Callable[[], bytes]] = {
        "flipped": lambda: kept[:20] + bytes([kept[20] ^ 0xFF]) + kept[21:],
        "truncated": lambda: kept[:-6],
        "trailing": lambda: kept + b"more",
        "other content": lambda: encode_blob(b"other words " * 1000)[0],
        # inflates to 64 MiB: read no further than the recorded size (+1) before it is refused
        "bomb": lambda: encode_blob(bytes(64 << 20))[0],
    }
    body = bodies[damage]()
    path.write_bytes(body)
    tracemalloc.start()
    try:
        with pytest.raises(BlobCorrupt):
            store.read(ref.sha256, size=len(text))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20
    assert not Blob.objects.filter(pk=ref.sha256).exists()  # dropped: the next writer stores it again


def test_keys_are_content_addresses() -> None:
    digest = sha(b"k")
    assert blob_key(digest) == f"blobs/{digest[:2]}/{digest}"
    assert key_sha256(blob_key(digest)) == digest
    assert key_sha256(f"blobs/{digest[:2]}/{digest}.abc.tmp") is None
    with pytest.raises(ValueError, match="not a sha256"):
        blob_key("../../etc/passwd")


def test_presigned_download_url_on_s3(s3_storage: Any) -> None:
    store = blob_store()
    data = b"download me"
    with blob_writes():
        ref = store.put(data)
    url = store.download_url(ref.sha256, filename="my-project.zip", content_type="application/zip", ttl=60)
    assert url is not None and "X-Amz-Expires=60" in url
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.read() == data
        assert answer.headers["Content-Disposition"] == 'attachment; filename="my-project.zip"'
        assert answer.headers["Content-Type"] == "application/zip"


def test_filesystem_has_no_download_url() -> None:
    with blob_writes():
        ref = blob_store().put(b"local")
    assert blob_store().download_url(ref.sha256, filename="x", content_type="text/plain", ttl=60) is None


def test_an_unreachable_store_is_storage_unavailable_without_secrets(settings: Any, s3_storage: Any) -> None:
    from tests.s3.server import SECRET_KEY, free_port

    settings.AWS_S3_ENDPOINT_URL = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StorageUnavailable) as caught, blob_writes():
        blob_store().put(b"nowhere to go")
    assert caught.value.code == "storage_unavailable" and caught.value.status_code == 503
    assert SECRET_KEY not in caught.value.message
    assert not Blob.objects.exists()  # nothing recorded for a write that did not happen


def test_store_tree_and_a_machine_local_tree_cache(any_storage: str, tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg/a.py").write_text("A = 1\n")
    (source / "run.sh").write_bytes(b"#!/bin/sh\n")
    store = blob_store()
    with blob_writes():
        manifest = store.store_tree(source, [("pkg/a.py", 0o644), ("run.sh", 0o755)])
    assert [(m.path, m.size) for m in manifest] == [("pkg/a.py", 6), ("run.sh", 10)]
    cache = tmp_path / "cache"
    first = store.tree_cache(cache, "v1", manifest)
    assert (first / "pkg/a.py").read_text() == "A = 1\n" and os.access(first / "run.sh", os.X_OK)
    assert not os.access(first / "pkg/a.py", os.W_OK) or os.geteuid() == 0  # read-only (root writes anyway)
    (first / "marker").touch()
    assert store.tree_cache(cache, "v1", manifest) == first and (first / "marker").exists()  # reused, not rewritten
    assert sorted(p.name for p in cache.iterdir()) == ["v1"]  # no staging folder left
