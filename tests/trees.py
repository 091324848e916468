"""Tests read a generation's files as a folder: its recorded files written out from the blob store."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings


def materialised(generated: Any) -> Path:
    """A fresh folder holding the generation's recorded files (verified blobs, recorded modes)."""
    from apps.projects.services.stored_files import generation_files, manifest_of
    from apps.storage.blobs import blob_store

    root = Path(settings.GENERATED_PROJECTS_DIR) / ".scratch" / "trees"
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"g{generated.pk}-", dir=root))
    blob_store().materialise(manifest_of(generation_files(generated.pk)), folder)
    return folder


def stored_archive(export: Any) -> Path:
    """A completed archive export's stored bytes, written to a file (verified blob)."""
    from apps.projects.services.exports import repository_export_archive
    from apps.storage.blobs import blob_store

    archive = repository_export_archive(export)
    root = Path(settings.GENERATED_PROJECTS_DIR) / ".scratch" / "archives"
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{export.pk}.{export.provider}"
    path.write_bytes(blob_store().read(archive.sha256, size=archive.size))
    return path
