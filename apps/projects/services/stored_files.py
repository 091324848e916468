"""The files a completed generation recorded (`ProjectFile` rows), read back from the blob store.

Exports (git, zip, tar.gz), downloads and the CLI's `--output` read a generation's files through
here: by the sha256 and size recorded for each path, verified as they are read, so a file that is
missing or damaged in the storage is a coded error (`blob_missing`, `blob_corrupt`), never a wrong file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from apps.projects.models import ProjectFile
from apps.storage.blobs import ManifestItem, blob_store


@dataclass(frozen=True)
class SourceFile:
    path: str
    mode: int
    size: int
    sha256: str


def generation_files(generated_id: int) -> list[SourceFile]:
    """A generation's recorded files, sorted by path (one query)."""
    rows = (
        ProjectFile.objects.filter(generated_id=generated_id)
        .order_by("path")
        .values_list("path", "mode", "size", "sha256")
    )
    return [SourceFile(path=path, mode=mode, size=size, sha256=sha256) for path, mode, size, sha256 in rows]


def read_source(source: SourceFile) -> bytes:
    """One recorded file's bytes, verified against its recorded size and sha256."""
    return blob_store().read(source.sha256, size=source.size)


def read_sources(sources: Sequence[SourceFile]) -> Iterator[bytes]:
    """The bytes of many recorded files, verified, in order (fetched several at a time from S3)."""
    return blob_store().read_many([(source.sha256, source.size) for source in sources])


def manifest_of(sources: Sequence[SourceFile]) -> list[ManifestItem]:
    return [ManifestItem(source.path, source.mode, source.sha256, source.size) for source in sources]
