"""`zip` and `tar.gz`: deterministic archives, written to the job's scratch folder and stored as blobs.

Members are the recorded files in sorted order, read from the blob store (verified), with
fixed timestamps (the generation's finish time), fixed owner and regular-file modes
only. Memory stays bounded: files are read, compressed and written a window at a time.

Compression is most of an archive's cost and zlib releases the GIL while it deflates, so
it runs beside the rest: zip members are read and deflated on worker threads and written
in order by a small ZIP writer (ZIP64-sized archives go through `zipfile`), and the tar
stream is built in this thread while one compressor thread deflates it into the gzip
file. The archive's sha256 is computed as it is written.
"""

from __future__ import annotations

import hashlib
import os
import queue
import struct
import tarfile
import threading
import time
import zipfile
import zlib
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

from apps.projects.models import ProviderConnection
from apps.projects.services.repository_exporter import CleanTarget, ExportContext, ExportResult, register_provider
from apps.projects.services.stored_files import SourceFile
from apps.storage.blobs import blob_key, blob_store
from core.exceptions import ValidationFailed

LEVEL = 6  # zlib's default, as `zip` and `gzip` use
_THREADS = min(os.cpu_count() or 1, 4)
_BATCH = 32  # files per compression task
_HEARTBEAT_EVERY = 500  # files
_CHUNK = 256 * 1024  # tar stream bytes handed to the compressor at a time
_BLOCK = 1024 * 1024  # archive bytes written and hashed at a time


class _Gathering:
    """A write-only stream that gathers small writes into blocks of `block_size` bytes.

    Each full block (and the rest, on `_emit_pending`) goes to `_emit` as one buffer: the
    archive writers make many small writes (headers, padding), and every buffer handed to
    zlib, hashlib or the file releases the GIL, which the deflating threads then hold.
    """

    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        self.size = 0  # bytes written so far
        self._pending: list[bytes] = []
        self._pending_size = 0

    def write(self, data: bytes) -> int:
        self._pending.append(bytes(data))
        self._pending_size += len(data)
        self.size += len(data)
        if self._pending_size >= self.block_size:
            self._emit_pending()
        return len(data)

    def _emit_pending(self) -> None:
        if self._pending:
            block = b"".join(self._pending)
            self._pending, self._pending_size = [], 0
            self._emit(block)

    def _emit(self, block: bytes) -> None:
        raise NotImplementedError  # each stream overrides this


class _HashingFile(_Gathering):
    """Writes to a file and hashes what was written (the archive's sha256, without reading it back).

    Writes are gathered into blocks of `_BLOCK`: hashing or writing each small piece of an
    archive made this thread queue for the GIL behind the deflating threads (~30 ms per
    1,000-file zip).
    """

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__(_BLOCK)
        self.raw = raw
        self.digest = hashlib.sha256()

    def _emit(self, block: bytes) -> None:
        self.raw.write(block)
        self.digest.update(block)

    def flush(self) -> None:
        self._emit_pending()
        self.raw.flush()

    def close(self) -> None:
        """The underlying file belongs to the caller, which closes it."""


def _member_mode(mode: int) -> int:
    """An archive member's permission bits: executable for anyone or not, as generated."""
    return 0o755 if mode & 0o111 else 0o644


class _ArchiveProvider:
    id = ""
    extension = ""
    needs_connection = False
    connection_provider: str | None = None

    def clean_target(self, data: dict[str, Any], *, connection: ProviderConnection | None) -> CleanTarget:
        extra = sorted(set(data) - {"provider"})
        if extra:
            raise ValidationFailed(
                f"Archive exports take no other fields ({', '.join(extra)}).",
                extra={"fields": {key: ["Not accepted for archive exports."] for key in extra}},
            )
        return CleanTarget(target={}, branch="")

    def write(self, ctx: ExportContext, path: Path) -> str:
        """Write the archive to `path`; returns its sha256."""
        with open(path, "wb") as raw:
            out = _HashingFile(raw)
            self.write_to(ctx, out)
            out.flush()
        return out.digest.hexdigest()

    def write_to(self, ctx: ExportContext, out: _HashingFile) -> None:
        raise NotImplementedError  # each archive format overrides this

    def export(self, ctx: ExportContext) -> ExportResult:
        """Write the archive in the job's scratch folder, then store it as a blob (the caller holds
        `blob_writes()` until the export row that points at it is committed)."""
        partial = ctx.workspace / f"archive.{self.extension}"
        digest = self.write(ctx, partial)
        ref = blob_store().put_file(partial, sha256=digest)
        ctx.log(f"wrote {self.extension} archive: {ref.size} bytes, sha256 {digest}")
        return ExportResult(archive_path=blob_key(digest), archive_size=ref.size, archive_sha256=digest)


# --- zip ------------------------------------------------------------------------------------------

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_END = struct.Struct("<IHHHHIIH")
_UTF8_NAME = 0x800
_DEFLATED = 8
_VERSION = 20  # 2.0: deflate
_MADE_BY_UNIX = 3 << 8 | _VERSION
# Beyond these a ZIP needs ZIP64 records; such archives are written by `zipfile`.
ZIP64_FILES = 0xFFFF
ZIP64_BYTES = 0xF000_0000


def _deflate_batch(ctx: ExportContext, batch: Sequence[SourceFile]) -> list[tuple[SourceFile, int, int, bytes]]:
    """Read and deflate files on a worker thread: (file, crc32, size, raw deflate data)."""
    out = []
    for source, data in zip(batch, ctx.read_many(batch), strict=True):
        packer = zlib.compressobj(LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        out.append((source, zlib.crc32(data), len(data), packer.compress(data) + packer.flush()))
    return out


def _deflated(ctx: ExportContext, files: Sequence[SourceFile]) -> Iterator[tuple[SourceFile, int, int, bytes]]:
    """The files deflated on `_THREADS` threads, in order, at most two batches per thread ahead."""
    batches = iter([files[i : i + _BATCH] for i in range(0, len(files), _BATCH)])
    pool = ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="kiln-deflate")
    window: deque[Future[list[tuple[SourceFile, int, int, bytes]]]] = deque()
    try:
        for batch in batches:
            window.append(pool.submit(_deflate_batch, ctx, batch))
            if len(window) >= 2 * _THREADS:
                break
        while window:
            done = window.popleft().result()  # a read error surfaces here, in file order
            following = next(batches, None)
            if following is not None:
                window.append(pool.submit(_deflate_batch, ctx, following))
            yield from done
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _dos_stamp(timestamp: int) -> tuple[int, int]:
    year, month, day, hour, minute, second = time.gmtime(max(timestamp, 315532800))[:6]  # not before 1980
    return (hour << 11) | (minute << 5) | (second // 2), ((year - 1980) << 9) | (month << 5) | day


class _ZipWriter:
    """A ZIP of deflated regular files: local headers, data, central directory (APPNOTE 6.3, no ZIP64)."""

    def __init__(self, out: _HashingFile, timestamp: int) -> None:
        self.out = out
        self.dos_time, self.dos_date = _dos_stamp(timestamp)
        self.central: list[bytes] = []

    def add(self, path: str, mode: int, crc: int, size: int, deflated: bytes) -> None:
        name = path.encode("utf-8")
        flags = 0 if path.isascii() else _UTF8_NAME
        offset = self.out.size
        self.out.write(
            _LOCAL.pack(
                0x04034B50,
                _VERSION,
                flags,
                _DEFLATED,
                self.dos_time,
                self.dos_date,
                crc,
                len(deflated),
                size,
                len(name),
                0,
            )
            + name
        )
        self.out.write(deflated)
        attributes = (0o100000 | _member_mode(mode)) << 16
        self.central.append(
            _CENTRAL.pack(
                0x02014B50,
                _MADE_BY_UNIX,
                _VERSION,
                flags,
                _DEFLATED,
                self.dos_time,
                self.dos_date,
                crc,
                len(deflated),
                size,
                len(name),
                0,
                0,
                0,
                0,
                attributes,
                offset,
            )
            + name
        )

    def close(self) -> None:
        start = self.out.size
        directory = b"".join(self.central)
        self.out.write(directory)
        count = len(self.central)
        self.out.write(_END.pack(0x06054B50, 0, 0, count, count, len(directory), start, 0))


@register_provider
class ZipProvider(_ArchiveProvider):
    id = "zip"
    extension = "zip"

    def write_to(self, ctx: ExportContext, out: _HashingFile) -> None:
        files = ctx.files()
        total = sum(source.size for source in files)
        if len(files) >= ZIP64_FILES or total >= ZIP64_BYTES:
            self._write_zip64(ctx, files, out)
            return
        writer = _ZipWriter(out, ctx.commit_timestamp())
        top = ctx.archive_folder
        for index, (source, crc, size, deflated) in enumerate(_deflated(ctx, files)):
            writer.add(f"{top}/{source.path}", source.mode, crc, size, deflated)
            if index % _HEARTBEAT_EVERY == 0:
                ctx.heartbeat()
        writer.close()

    @staticmethod
    def _write_zip64(ctx: ExportContext, files: Sequence[SourceFile], out: _HashingFile) -> None:
        """Archives too large for plain ZIP records: the same members through `zipfile` (ZIP64)."""
        stamp = time.gmtime(max(ctx.commit_timestamp(), 315532800))[:6]
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=LEVEL) as archive:
            for index, (source, data) in enumerate(zip(files, ctx.read_many(files), strict=True)):
                info = zipfile.ZipInfo(f"{ctx.archive_folder}/{source.path}", date_time=stamp)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = (0o100000 | _member_mode(source.mode)) << 16
                info.create_system = 3
                archive.writestr(info, data)
                if index % _HEARTBEAT_EVERY == 0:
                    ctx.heartbeat()


# --- tar.gz ---------------------------------------------------------------------------------------


class _GzipPipe(_Gathering):
    """A write-only gzip stream (RFC 1952) whose deflating runs on a thread of its own.

    The writer's bytes are gathered into chunks of `_CHUNK` and queued; the compressor
    thread deflates them and writes the result. The header matches `gzip.GzipFile`'s
    (given mtime, no file name, OS 255). A failure on the compressor thread is raised by
    `close`.
    """

    def __init__(self, out: _HashingFile, *, mtime: int) -> None:
        super().__init__(_CHUNK)
        self.out = out
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        out.write(b"\x1f\x8b\x08\x00" + struct.pack("<I", mtime & 0xFFFFFFFF) + b"\x00\xff")
        self._thread = threading.Thread(target=self._compress, name="kiln-gzip", daemon=True)
        self._thread.start()

    def _compress(self) -> None:
        packer = zlib.compressobj(LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        crc = size = 0
        while (chunk := self._queue.get()) is not None:
            if self._error is not None:
                continue  # keep draining so the writer never blocks on a full queue
            try:
                crc = zlib.crc32(chunk, crc)
                size += len(chunk)
                self.out.write(packer.compress(chunk))
            except BaseException as exc:  # raised again by close()
                self._error = exc
        if self._error is None:
            try:
                self.out.write(packer.flush() + struct.pack("<II", crc, size & 0xFFFFFFFF))
            except BaseException as exc:
                self._error = exc

    def _emit(self, block: bytes) -> None:
        self._queue.put(block)

    def close(self, *, raise_errors: bool = True) -> None:
        """Finish the stream; with `raise_errors=False` (the writer failed already) only stop the thread."""
        if raise_errors:
            self._emit_pending()
        self._queue.put(None)
        self._thread.join()
        if self._error is not None and raise_errors:
            raise self._error


def _tar_header(path: str, size: int, mode: int, mtime: int) -> bytes:
    """The header block(s) `tarfile` writes for this member in PAX format, built without it.

    A short ASCII name is one plain ustar block; anything else (a long or non-ASCII name)
    goes through `TarInfo.tobuf`, which adds the PAX extended header. Identical bytes either
    way (see the tests); `tarfile`'s per-member bookkeeping was half a tar.gz export's time.
    """
    name = path.encode("ascii", "ignore")
    if len(name) != len(path) or len(name) > 100:
        info = tarfile.TarInfo(path)
        info.size, info.mtime, info.mode, info.type = size, mtime, mode, tarfile.REGTYPE
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    block = bytearray(
        name.ljust(100, b"\0")
        + b"%07o\0" % (mode & 0o7777)
        + b"0000000\0" * 2  # uid, gid
        + b"%011o\0" % size
        + b"%011o\0" % mtime
        + b" " * 8  # checksum, filled in below
        + tarfile.REGTYPE
        + b"\0" * 100  # link name
        + tarfile.POSIX_MAGIC
        + b"\0" * 64  # user and group names
        + b"\0" * 16  # device numbers: empty for regular files
        + b"\0" * 155  # prefix
    ).ljust(tarfile.BLOCKSIZE, b"\0")
    block[148:155] = b"%06o\0" % sum(block)
    return bytes(block)


@register_provider
class TarGzProvider(_ArchiveProvider):
    id = "tar.gz"
    extension = "tar.gz"

    def write_to(self, ctx: ExportContext, out: _HashingFile) -> None:
        stamp = ctx.commit_timestamp()
        pipe = _GzipPipe(out, mtime=stamp)
        try:
            files = ctx.files()
            top = ctx.archive_folder
            for index, (source, data) in enumerate(zip(files, ctx.read_many(files), strict=True)):
                pipe.write(_tar_header(f"{top}/{source.path}", len(data), _member_mode(source.mode), stamp))
                pipe.write(data)
                remainder = len(data) % tarfile.BLOCKSIZE
                if remainder:
                    pipe.write(b"\0" * (tarfile.BLOCKSIZE - remainder))
                if index % _HEARTBEAT_EVERY == 0:
                    ctx.heartbeat()
            # the end of the archive as tarfile writes it: two zero blocks, padded to a full record
            pipe.write(b"\0" * (2 * tarfile.BLOCKSIZE))
            remainder = pipe.size % tarfile.RECORDSIZE
            if remainder:
                pipe.write(b"\0" * (tarfile.RECORDSIZE - remainder))
        except BaseException:
            pipe.close(raise_errors=False)
            raise
        pipe.close()
