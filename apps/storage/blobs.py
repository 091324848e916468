"""Kiln's blob store: every file Kiln keeps is stored once, under the sha256 of its bytes.

Generated files, archives and template versions are blobs in the storage configured by
`KILN_STORAGE_BACKEND` (`STORAGES["blobs"]`: a local folder or an S3 bucket). Rows point at
blobs by sha256 (`ProjectFile.sha256`, `RepositoryExport.archive_sha256`, template version
files); nothing else knows where or how they are stored.

* Writes are idempotent (a key names exactly one content) and verified (size and hash)
  before they count: a blob enters the index (`apps.storage.models.Blob`) only once the
  store holds it whole. A writer that finds a blob in the index does not store it again.
* Blobs that deflate shrinks are stored compressed (`encode_blob`: an 8-byte marker, then a raw
  deflate stream), the others as they are; the key is always the sha256 of the content, and reads
  inflate transparently before they verify. Archives are stored as they are, so an S3 store
  can serve them itself (presigned URLs); the index records each blob's stored size and
  encoding.
* Reads are verified as they stream: a blob that is missing is `BlobMissing`, one whose
  bytes do not hash to its name is `BlobCorrupt`; never a wrong file.
* A job that stores blobs and then records rows pointing at them does both inside
  `blob_writes()`, a shared lock the sweeper takes exclusively for each batch it deletes
  (`apps.storage.sweep`), so a blob is never deleted between the moment a writer decides
  it exists and the commit of the rows that use it.
* The empty blob (`EMPTY_SHA256`) is never stored nor read: its content is its name. Empty
  files are the most shared content there is (`__init__.py`), so an index that lists a blob the
  storage lost (a bucket reset, a switch of backend) showed first on them.
* `materialise()` writes a manifest of (path, mode, sha256) into a local folder, for the
  steps that need a working tree; `scratch_folder()` gives a job a folder removed afterwards.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import logging
import os
import re
import shutil
import threading
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn, TypeVar

from django.conf import settings
from django.core.files.storage import storages
from django.core.signals import setting_changed
from django.db import connection

from apps.storage.backends import BlobBackend, StoredObject, WriteNotVerified
from core.exceptions import ApplicationError
from core.safe_paths import SafeWriter

logger = logging.getLogger("kiln.storage")

T = TypeVar("T")

ALIAS = "blobs"  # STORAGES["blobs"]
PREFIX = "blobs"
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()  # e3b0c442…: never stored, read as b""
_CHUNK = 1 << 20
_BATCH_FILES = 256  # blobs looked up in the index at a time
_BATCH_BYTES = 8 << 20
_IN_FLIGHT_BYTES = 64 << 20  # bytes handed to upload threads and not yet stored
_IO_THREADS = ("kiln-blobs", "kiln-deflate")  # thread names of Kiln's I/O pools


# --- errors -----------------------------------------------------------------------------------


class BlobMissing(ApplicationError):
    status_code = 410
    default_code = "blob_missing"


class BlobCorrupt(ApplicationError):
    status_code = 500
    default_code = "blob_corrupt"


class StorageUnavailable(ApplicationError):
    status_code = 503
    default_code = "storage_unavailable"


def _transport_errors() -> tuple[type[BaseException], ...]:
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # pragma: no cover - boto3 is a base requirement
        return (OSError,)
    return (OSError, BotoCoreError, ClientError)


@contextlib.contextmanager
def storage_errors(what: str) -> Iterator[None]:
    """Turn the store's own failures into `StorageUnavailable` (503, retryable); never a secret in the text."""
    try:
        yield
    except (ApplicationError, FileNotFoundError):
        raise
    except WriteNotVerified as exc:
        raise StorageUnavailable(
            f"{what}: the storage did not keep the bytes written ({exc}).", code="storage_write_unverified"
        ) from None
    except _transport_errors() as exc:
        raise StorageUnavailable(f"{what}: the storage is unavailable ({_describe(exc)}).") from None


def _describe(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        return f"{type(exc).__name__} {error.get('Code', '')}".strip()
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return type(exc).__name__


# --- keys -------------------------------------------------------------------------------------


def check_sha256(value: str) -> str:
    if not isinstance(value, str) or not SHA256_RE.match(value):
        raise ValueError(f"not a sha256 hex digest: {value!r:.80}")
    return value


def blob_key(sha256: str) -> str:
    """Where a blob lives in the storage: `blobs/ab/<sha256>`."""
    check_sha256(sha256)
    return f"{PREFIX}/{sha256[:2]}/{sha256}"


def key_sha256(key: str) -> str | None:
    """The sha256 a storage key names, or None for anything else (temporary files, probes)."""
    name = key.rsplit("/", 1)[-1]
    return name if SHA256_RE.match(name) and key == blob_key(name) else None


@dataclass(frozen=True)
class BlobRef:
    sha256: str
    size: int


@dataclass(frozen=True)
class StoredBlob:
    """A blob as the storage keeps it: `stored_size` bytes, `encoding` "" (as it is) or "zlib"."""

    sha256: str
    size: int
    stored_size: int
    encoding: str


@dataclass(frozen=True)
class ManifestItem:
    """One file of a tree kept as blobs: what `materialise` writes."""

    path: str
    mode: int
    sha256: str
    size: int | None = None


# --- encoding: zlib for the blobs it shrinks -----------------------------------------------------

ZLIB_MARKER = b"\x89kiln-z\n"  # a stored object that starts with it is a deflate stream of the content
ZLIB = "zlib"
_COMPRESS_MIN = 128  # smaller contents are stored as they are (the saving would be a few bytes)
_COMPRESS_LEVEL = 6
_SAMPLE_OVER = 256 << 10  # larger contents are tried on a sample first (archives, images: not again)
_SAMPLE = 64 << 10


def _deflate(data: bytes | memoryview, level: int = _COMPRESS_LEVEL) -> bytes:
    """A raw deflate stream (no zlib header or Adler-32: the content's sha256 is checked on every read),
    with a window no larger than the data: the same output for small files, at ~60 % of the time
    (setting up a 32 KiB window dominated, measured on django-rest-service's and the bench's files)."""
    window = max(9, min(15, (len(data) - 1).bit_length()))
    deflater = zlib.compressobj(level, zlib.DEFLATED, -window, max(1, min(8, window - 6)))
    return deflater.compress(data) + deflater.flush()


def encode_blob(data: bytes) -> tuple[bytes, str]:
    """What to store for `data`: (zlib-framed bytes, "zlib") when that saves at least 1/16 of
    them, else (data, ""). Contents that begin with the marker are always framed, so a stored
    object that begins with it is never a raw one."""
    framed_always = data.startswith(ZLIB_MARKER)
    if not framed_always:
        if len(data) < _COMPRESS_MIN:
            return data, ""
        if len(data) > _SAMPLE_OVER and len(_deflate(memoryview(data)[:_SAMPLE], 1)) > _SAMPLE * 15 // 16:
            return data, ""
    framed = ZLIB_MARKER + _deflate(data)
    if framed_always or len(framed) <= len(data) - len(data) // 16:
        return framed, ZLIB
    return data, ""


class DecodedStream:
    """The content of a stored object: a zlib-framed one inflated (at most `n` bytes per read, so a
    small object cannot expand into memory), any other passed through. A damaged stream is `zlib.error`."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self._started = False
        self._head = b""
        self._inflate: Any = None

    def _start(self) -> None:
        self._started = True
        head = b""
        while len(head) < len(ZLIB_MARKER):
            chunk = self.raw.read(len(ZLIB_MARKER) - len(head))
            if not chunk:
                break
            head += chunk
        if head == ZLIB_MARKER:
            self._inflate = zlib.decompressobj(-15)
        else:
            self._head = head

    def read(self, n: int = -1) -> bytes:
        """Up to `n` bytes, fewer only at the end (io.BufferedReader's contract, which callers rely on:
        `handle.read(limit + 1)` tells a truncated file by the length it gets)."""
        if n is None or n < 0:
            return b"".join(iter(lambda: self._read_some(_CHUNK), b""))
        parts: list[bytes] = []
        wanted = n
        while wanted > 0:
            chunk = self._read_some(wanted)
            if not chunk:
                break
            parts.append(chunk)
            wanted -= len(chunk)
        return b"".join(parts)

    def _read_some(self, n: int) -> bytes:
        if not self._started:
            self._start()
        if self._inflate is None:
            if self._head:
                out, self._head = self._head[:n], self._head[n:]
                return out
            return self.raw.read(n)
        inflate = self._inflate
        while True:
            if inflate.unconsumed_tail:
                out = inflate.decompress(inflate.unconsumed_tail, n)
            elif inflate.eof:
                if inflate.unused_data or self.raw.read(1):
                    raise zlib.error("bytes after the end of the compressed stream")
                return b""
            else:
                chunk = self.raw.read(_CHUNK)
                if not chunk:
                    raise zlib.error("the compressed stream ends early")
                out = inflate.decompress(chunk, n)
            if out:
                return bytes(out)

    def close(self) -> None:
        self.raw.close()


# --- verified reads ---------------------------------------------------------------------------


class VerifiedReader:
    """A read-only stream of a blob that checks size and sha256 when it reaches the end."""

    def __init__(
        self, raw: IO[bytes] | DecodedStream, sha256: str, size: int | None, on_bad: Callable[[str], None]
    ) -> None:
        self.raw = raw
        self.sha256 = sha256
        self.size = size
        self._digest = hashlib.sha256()
        self._read = 0
        self._done = False
        self._on_bad = on_bad

    def read(self, n: int = -1) -> bytes:
        if self._done:
            return b""
        try:
            with storage_errors("Reading a stored file"):
                data = self._read_all() if n is None or n < 0 else self.raw.read(n)
        except zlib.error:
            self._fail()
        if data:
            self._digest.update(data)
            self._read += len(data)
            if self.size is not None and self._read > self.size:
                self._fail()
        if not data or (n is not None and n < 0):
            self._finish()
        elif self.size is not None and self._read == self.size:
            # all the recorded bytes are in: check now, so a caller that stops here gets verified bytes
            try:
                with storage_errors("Reading a stored file"):
                    extra = self.raw.read(1)
            except zlib.error:
                self._fail()
            if extra:
                self._fail()
            self._finish()
        return data

    def _read_all(self) -> bytes:
        limit = None if self.size is None else self.size + 1
        chunks = []
        total = 0
        while limit is None or total < limit:
            chunk = self.raw.read(_CHUNK if limit is None else min(_CHUNK, limit - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        return b"".join(chunks)

    def _finish(self) -> None:
        self._done = True
        if (self.size is not None and self._read != self.size) or self._digest.hexdigest() != self.sha256:
            self._fail()

    def _fail(self) -> NoReturn:
        self._done = True
        self._on_bad(self.sha256)
        raise BlobCorrupt(
            f"The stored file {self.sha256[:12]}… does not match its hash; it was damaged in the storage.",
            extra={"sha256": self.sha256},
        )

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.raw.close()

    def __enter__(self) -> VerifiedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the process-wide pool for storage I/O -----------------------------------------------------

_POOL: tuple[int, ThreadPoolExecutor] | None = None
_POOL_LOCK = threading.Lock()


def _pool(size: int) -> ThreadPoolExecutor:
    """Threads for storage I/O, made lazily in each process (a forked Celery child makes its own)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != os.getpid() or _POOL[1]._max_workers < size:
            _POOL = (os.getpid(), ThreadPoolExecutor(max_workers=size, thread_name_prefix="kiln-blobs"))
        return _POOL[1]


def ordered_results(calls: Iterable[Callable[[], T]], *, parallelism: int, window: int) -> Iterator[T]:
    """Results of `calls` in order, at most `window` running ahead on the pool."""
    if parallelism <= 1:
        for call in calls:
            yield call()
        return
    pool = _pool(parallelism)
    pending: deque[Future[T]] = deque()
    try:
        for call in calls:
            pending.append(pool.submit(call))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


# --- the store --------------------------------------------------------------------------------


class BlobStore:
    """The blob operations over one storage backend (see the module docstring)."""

    def __init__(self, backend: BlobBackend) -> None:
        self.backend = backend

    @property
    def parallelism(self) -> int:
        return max(1, int(getattr(self.backend, "parallelism", 1)))

    # writes ------------------------------------------------------------------------------

    def put(self, data: bytes, *, sha256: str | None = None) -> BlobRef:
        """Store `data` (once) and return its reference. Call inside `blob_writes()`."""
        with self.writer() as writer:
            ref = writer.add(data, sha256=sha256)
        return ref

    def put_file(self, path: Path, *, sha256: str | None = None) -> BlobRef:
        """Store a local file's bytes, streamed (archives). Call inside `blob_writes()`."""
        size = os.path.getsize(path)
        if size == 0:
            return BlobRef(EMPTY_SHA256, 0)
        if sha256 is None:
            digest = hashlib.sha256()
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(_CHUNK), b""):
                    digest.update(chunk)
            sha256 = digest.hexdigest()
        if sha256 in known_blobs([sha256]):
            return BlobRef(sha256, size)
        with storage_errors("Storing a file"):
            # as it is (archives are compressed already), so that S3 can serve it itself
            self.backend.write_blob_file(blob_key(sha256), path, size=size, sha256=sha256)
        index_blobs([StoredBlob(sha256, size, size, "")])
        return BlobRef(sha256, size)

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    # reads -------------------------------------------------------------------------------

    def open(self, sha256: str, *, size: int | None = None) -> VerifiedReader:
        """A stream of the blob's bytes, verified at its end; `BlobMissing` when it is not stored."""
        key = blob_key(sha256)
        if sha256 == EMPTY_SHA256:  # checked against `size` like any other: a row saying 3 bytes is corrupt
            return VerifiedReader(io.BytesIO(b""), sha256, size, self.forget)
        try:
            with storage_errors("Reading a stored file"):
                raw = self.backend.open_blob(key)
        except FileNotFoundError:
            self.forget(sha256)
            raise BlobMissing(
                f"The stored file {sha256[:12]}… is missing from the storage.", extra={"sha256": sha256}
            ) from None
        return VerifiedReader(DecodedStream(raw), sha256, size, self.forget)

    def read(self, sha256: str, *, size: int | None = None) -> bytes:
        """The blob's bytes, verified (size when given, and sha256)."""
        with self.open(sha256, size=size) as reader:
            return reader.read()

    def read_many(self, items: Sequence[tuple[str, int | None]]) -> Iterator[bytes]:
        """The bytes of many blobs, verified, in order; fetched several at a time where the store is remote."""
        calls = [lambda sha=sha, size=size: self.read(sha, size=size) for sha, size in items]
        return ordered_results(calls, parallelism=self.parallelism, window=self.parallelism * 2)

    def exists(self, sha256: str) -> bool:
        """Whether the storage itself holds the blob (asks the storage, not the index)."""
        if sha256 == EMPTY_SHA256:
            return True
        with storage_errors("Checking a stored file"):
            return self.backend.blob_size(blob_key(sha256)) is not None

    def stored_size(self, sha256: str) -> int | None:
        if sha256 == EMPTY_SHA256:
            return 0
        with storage_errors("Checking a stored file"):
            return self.backend.blob_size(blob_key(sha256))

    def download_url(self, sha256: str, *, filename: str, content_type: str, ttl: int) -> str | None:
        """A short-lived URL that downloads the blob as `filename`, where the backend has them (S3)."""
        if sha256 == EMPTY_SHA256:
            return None  # not in the storage: Kiln streams its no bytes
        from apps.storage.models import Blob

        if not Blob.objects.filter(sha256=sha256, encoding="").exists():
            return None  # compressed (the store would send the zlib stream), or not known as stored: streamed
        with storage_errors("Signing a download"):
            return self.backend.blob_url(blob_key(sha256), filename=filename, content_type=content_type, ttl=ttl)

    def materialise(self, entries: Iterable[ManifestItem], destination: Path) -> int:
        """Write a manifest's files into `destination` (a new or empty folder); returns the file count.

        Every blob is verified as it is read; paths go through `SafeWriter` (relative, no `..`,
        no links), modes keep the executable bit.
        """
        items = list(entries)
        destination.mkdir(parents=True, exist_ok=True)
        writer = SafeWriter(destination)
        for item, data in zip(items, self.read_many([(i.sha256, i.size) for i in items]), strict=True):
            writer.write(item.path, data, item.mode)
        return len(items)

    def store_tree(self, folder: Path, files: Iterable[tuple[str, int]]) -> list[ManifestItem]:
        """Store a local folder's files (relative path, mode) as blobs; returns their manifest.

        Call inside `blob_writes()` and record the manifest before leaving it.
        """
        manifest = []
        with self.writer() as writer:
            for rel, mode in files:
                with open(folder / rel, "rb") as handle:
                    ref = writer.add(handle.read())
                manifest.append(ManifestItem(rel, mode, ref.sha256, ref.size))
        return manifest

    def tree_cache(self, root: Path, key: str, manifest: Sequence[ManifestItem], *, read_only: bool = True) -> Path:
        """A local copy of a manifest at `root/key`, written once per machine and reused.

        It appears whole or not at all (written beside it, then renamed); two processes racing
        to write it both end with the same folder. Files are read-only unless told otherwise.
        """
        final = root / key
        if final.is_dir():
            return final
        root.mkdir(parents=True, exist_ok=True)
        staging = root / f".incoming-{key[:16]}-{uuid.uuid4().hex[:8]}"
        try:
            self.materialise(manifest, staging)
            if read_only:
                for item in manifest:
                    os.chmod(staging / item.path, 0o555 if item.mode & 0o100 else 0o444)
            try:
                os.rename(staging, final)
            except OSError:
                if not final.is_dir():  # not a concurrent writer of the same tree: a real failure
                    raise
        finally:
            remove_tree(staging)
        return final

    # the sweeper's side ------------------------------------------------------------------

    def iter_stored(self) -> Iterator[StoredObject]:
        """Every object under the blob prefix, as the storage lists it (temporary files included)."""
        with storage_errors("Listing the storage"):
            yield from self.backend.list_blobs(PREFIX)

    def delete_many(self, sha256s: Iterable[str]) -> None:
        """Delete objects and their index rows. Only the sweeper calls this, inside `sweep_fence()`."""
        shas = list(sha256s)
        forget_blobs(shas)
        with storage_errors("Deleting stored files"):
            self.backend.delete_blobs([blob_key(sha) for sha in shas])

    def delete_keys(self, keys: Iterable[str]) -> None:
        """Delete raw keys (temporary files left by a killed writer)."""
        with storage_errors("Deleting stored files"):
            self.backend.delete_blobs(list(keys))

    def forget(self, sha256: str) -> None:
        """Drop a blob found missing or damaged from the index, so that the next writer stores it again.

        Reads run on I/O threads too; such a thread's database connection is closed right after.
        """
        logger.error("blob %s is missing or damaged in the storage; dropped from the index", sha256)
        try:
            with contextlib.suppress(Exception):
                forget_blobs([sha256])
        finally:
            if threading.current_thread().name.startswith(_IO_THREADS):
                connection.close()

    def check(self) -> None:
        self.backend.check()


class BlobWriter:
    """Stores a job's blobs as they come: looked up in the index in batches, the new ones stored
    (several at a time on a remote store) and verified; `close()` waits for all of them and
    records them in the index. Duplicates within the job are stored once.
    """

    def __init__(self, store: BlobStore) -> None:
        self.store = store
        self._pending: dict[str, bytes] = {}
        self._pending_bytes = 0
        self._seen: set[str] = set()
        self._written: list[StoredBlob] = []
        self._in_flight: deque[tuple[Future[StoredBlob], int]] = deque()
        self._in_flight_bytes = 0
        self._closed = False
        self.stored = 0  # blobs this writer had to store (the others were stored already)
        self.stored_bytes = 0  # their content's bytes
        self.written_bytes = 0  # the bytes they take in the storage (compressed where that pays)

    def add(self, data: bytes, *, sha256: str | None = None) -> BlobRef:
        digest = sha256 or hashlib.sha256(data).hexdigest()
        ref = BlobRef(digest, len(data))
        if digest in self._seen or not data:  # the empty blob is never stored
            return BlobRef(EMPTY_SHA256, 0) if not data else ref
        self._seen.add(digest)
        self._pending[digest] = data
        self._pending_bytes += len(data)
        if len(self._pending) >= _BATCH_FILES or self._pending_bytes >= _BATCH_BYTES:
            self.flush()
        return ref

    def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending, self._pending_bytes = self._pending, {}, 0
        known = known_blobs(pending)
        backend = self.store.backend
        parallel = self.store.parallelism > 1
        for digest, data in pending.items():
            if digest in known:
                continue
            self.stored += 1
            self.stored_bytes += len(data)
            if not parallel:
                with storage_errors("Storing a generated file"):
                    self._wrote(_store_encoded(backend, digest, data))
                continue
            while self._in_flight and self._in_flight_bytes + len(data) > _IN_FLIGHT_BYTES:
                self._settle_one()
            # compressed on the pool's thread too (zlib lets go of the GIL while it works)
            future = _pool(self.store.parallelism).submit(_store_encoded, backend, digest, data)
            self._in_flight.append((future, len(data)))
            self._in_flight_bytes += len(data)
            # keep the queue short: the pool has `parallelism` threads, more queued only waits
            while len(self._in_flight) > self.store.parallelism * 4:
                self._settle_one()

    def _wrote(self, stored: StoredBlob) -> None:
        self._written.append(stored)
        self.written_bytes += stored.stored_size

    def _settle_one(self) -> None:
        future, size = self._in_flight.popleft()
        self._in_flight_bytes -= size
        with storage_errors("Storing a generated file"):
            self._wrote(future.result())

    def close(self) -> None:
        """Store what is left, wait for every write, verify, and index them; raises on any failure."""
        if self._closed:
            return
        self.flush()
        try:
            while self._in_flight:
                self._settle_one()
        finally:
            self._closed = True
            self.abort()
            index_blobs(self._written)

    def abort(self) -> None:
        """Stop: wait for writes already running (they may finish; unindexed, they are swept later)."""
        self._pending.clear()
        while self._in_flight:
            future, _ = self._in_flight.popleft()
            if not future.cancel():
                with contextlib.suppress(Exception):
                    future.result()
        self._in_flight_bytes = 0

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._closed = True
            self.abort()


def _store_encoded(backend: BlobBackend, sha256: str, data: bytes) -> StoredBlob:
    """Store a blob's content, compressed where that pays; the backend verifies what it stored."""
    stored, encoding = encode_blob(data)
    backend.write_blob(blob_key(sha256), stored)
    return StoredBlob(sha256, len(data), len(stored), encoding)


# --- the index --------------------------------------------------------------------------------


def known_blobs(sha256s: Iterable[str]) -> set[str]:
    """Which of these blobs the index says are stored (one query)."""
    from apps.storage.models import Blob

    wanted = list(sha256s)
    if not wanted:
        return set()
    return set(Blob.objects.filter(sha256__in=wanted).values_list("sha256", flat=True))


def index_blobs(items: Sequence[StoredBlob]) -> None:
    """Record stored, verified blobs (existing rows are kept)."""
    from apps.storage.models import Blob

    if items:
        Blob.objects.bulk_create(
            [Blob(sha256=i.sha256, size=i.size, stored_size=i.stored_size, encoding=i.encoding) for i in items],
            ignore_conflicts=True,
            batch_size=1000,
        )


def forget_blobs(sha256s: Sequence[str]) -> None:
    from apps.storage.models import Blob

    for start in range(0, len(sha256s), 1000):
        Blob.objects.filter(sha256__in=sha256s[start : start + 1000]).delete()


# --- the configured store -----------------------------------------------------------------------

_STORE: tuple[Any, BlobStore] | None = None


def blob_store() -> BlobStore:
    """The store over `STORAGES["blobs"]` (the backend KILN_STORAGE_BACKEND names)."""
    global _STORE
    storage = storages[ALIAS]
    if _STORE is None or _STORE[0] is not storage:
        _STORE = (storage, BlobStore(storage))  # type: ignore[arg-type]
    return _STORE[1]


def _reset(*, setting: str, **kwargs: Any) -> None:
    global _STORE
    # Django itself drops its storages when STORAGES changes; the S3 one also reads AWS_* at creation
    if setting == "STORAGES" or setting.startswith("AWS_"):
        _STORE = None
        storages._storages.pop(ALIAS, None)  # type: ignore[attr-defined]


setting_changed.connect(_reset, dispatch_uid="kiln-blob-store-reset")


# --- the writers' fence ---------------------------------------------------------------------------

_FENCE = "kiln-blob-fence"


def _fence_key() -> int:
    return int.from_bytes(hashlib.sha256(_FENCE.encode()).digest()[:8], "big", signed=True)


def _fence_file() -> int:
    folder = Path(settings.KILN_DATA_DIR) / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    return os.open(folder / f"{_FENCE}.lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)


@contextlib.contextmanager
def blob_writes() -> Iterator[None]:
    """Held (shared) by a job from its first blob lookup until its rows are committed.

    Writers never wait for each other; a writer waits only while the sweeper deletes one batch.
    On PostgreSQL a session advisory lock (released by the server if the worker dies), on the
    SQLite embedded default an flock in the data folder.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock_shared(%s)", [_fence_key()])
        try:
            yield
        finally:
            with contextlib.suppress(Exception), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock_shared(%s)", [_fence_key()])
        return
    fd = _fence_file()
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def sweep_fence(*, timeout: float) -> Iterator[bool]:
    """The sweeper's exclusive hold, for one batch; yields False when writers kept it for `timeout` seconds."""
    import time

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, false)", [f"{max(int(timeout * 1000), 1)}ms"])
            try:
                cursor.execute("SELECT pg_advisory_lock(%s)", [_fence_key()])
                acquired = True
            except Exception:  # lock_timeout: writers held it the whole time
                acquired = False
            finally:
                cursor.execute("SELECT set_config('lock_timeout', '0', false)")
        try:
            yield acquired
        finally:
            if acquired:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [_fence_key()])
        return
    fd = _fence_file()
    try:
        deadline = time.monotonic() + timeout
        acquired = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                acquired = True
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.02)
        yield acquired
    finally:
        os.close(fd)


# --- scratch folders ------------------------------------------------------------------------------


def scratch_root() -> Path:
    return Path(settings.GENERATED_PROJECTS_DIR) / ".scratch"


@contextlib.contextmanager
def scratch_folder(label: str) -> Iterator[Path]:
    """A per-job local folder (a working tree, an archive being written), removed afterwards."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "-", label)[:60]
    root = scratch_root()
    root.mkdir(parents=True, exist_ok=True)
    folder = root / f"{safe}-{uuid.uuid4().hex[:12]}"
    folder.mkdir()
    try:
        yield folder
    finally:
        remove_tree(folder)


def remove_tree(path: Path) -> None:
    """Delete a folder Kiln made; a link is removed, never followed (rmtree is fd-based on Linux)."""
    if not shutil.rmtree.avoids_symlink_attacks:  # pragma: no cover - platform guard
        raise RuntimeError("refusing to delete folders on a platform without symlink-safe rmtree")
    if os.path.islink(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
