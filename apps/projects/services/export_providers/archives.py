"""`zip` and `tar.gz`: deterministic archives streamed to disk.

Members are the recorded files in sorted order, read without following links, with
fixed timestamps (the generation's finish time), fixed owner and regular-file modes
only. Memory stays flat: each file is read and written once, one at a time.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Any

from apps.projects.models import ProviderConnection
from apps.projects.services.repository_exporter import (
    CleanTarget,
    ExportContext,
    ExportResult,
    exports_root,
    register_provider,
)
from apps.projects.services.stored_files import read_generated_file
from core.exceptions import ValidationFailed


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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

    def write(self, ctx: ExportContext, path: Path) -> None:
        raise NotImplementedError  # each archive format overrides this

    def export(self, ctx: ExportContext) -> ExportResult:
        root = exports_root(ctx.generated.project_id)
        final = root / f"{ctx.export.pk}.{self.extension}"
        partial = ctx.workspace / f"archive.{self.extension}"
        self.write(ctx, partial)
        os.replace(partial, final)
        size = final.stat().st_size
        digest = _sha256_of(final)
        ctx.log(f"wrote {self.extension} archive: {size} bytes, sha256 {digest}")
        return ExportResult(
            archive_path=str(final.relative_to(root.parent.parent)), archive_size=size, archive_sha256=digest
        )


@register_provider
class ZipProvider(_ArchiveProvider):
    id = "zip"
    extension = "zip"

    def write(self, ctx: ExportContext, path: Path) -> None:
        stamp = time.gmtime(max(ctx.commit_timestamp(), 315532800))[:6]
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
            for index, source in enumerate(ctx.files()):
                info = zipfile.ZipInfo(source.path, date_time=stamp)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = (0o100000 | (0o755 if source.mode & 0o111 else 0o644)) << 16
                info.create_system = 3
                archive.writestr(info, read_generated_file(ctx.files_root, source))
                if index % 500 == 0:
                    ctx.heartbeat()


@register_provider
class TarGzProvider(_ArchiveProvider):
    id = "tar.gz"
    extension = "tar.gz"

    def write(self, ctx: ExportContext, path: Path) -> None:
        stamp = ctx.commit_timestamp()
        with (
            open(path, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=stamp) as zipped,
            tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as archive,
        ):
            for index, source in enumerate(ctx.files()):
                data = read_generated_file(ctx.files_root, source)
                info = tarfile.TarInfo(source.path)
                info.size = len(data)
                info.mtime = stamp
                info.mode = 0o755 if source.mode & 0o111 else 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.type = tarfile.REGTYPE
                archive.addfile(info, _BytesReader(data))
                if index % 500 == 0:
                    ctx.heartbeat()


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self.view = memoryview(data)
        self.offset = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.view) if size < 0 else min(self.offset + size, len(self.view))
        chunk = bytes(self.view[self.offset : end])
        self.offset = end
        return chunk
