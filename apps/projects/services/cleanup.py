"""Retention: delete generated projects older than GENERATED_PROJECTS_RETENTION_DAYS.

A generated project is old when it finished (UTC) strictly more than the retention
period ago. Never touched: pending or running generations, generations with an export
that is still pending or running, and generations a running workflow step refers to.
Rows go first, in one transaction per generation (files and exports with them); then the
blob sweeper deletes the blobs no remaining generation, archive or template version points
at (`apps.storage.sweep`: a blob a generation completing meanwhile uses is kept), and a dry
run reports the bytes that would be freed. Folders left by Kiln versions before the blob
store are removed too, without following links (a link is removed, never its target).
A named lock makes overlapping runs safe: the second one
reports `already_running` and does nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.projects.models import GeneratedProject, ProjectFile, RepositoryExport
from apps.storage.sweep import blobs_sweep
from core.jobs import ACTIVE_STATUSES, TERMINAL_STATUSES
from core.locks import named_lock

logger = logging.getLogger("kiln.cleanup")


def _referenced_by_active_runs() -> set[int]:
    from apps.workflows.models import StepRun

    ids: set[int] = set()
    rows = StepRun.objects.filter(run__status__in=ACTIVE_STATUSES).values_list(
        "checkpoints", "output", "rendered_input"
    )
    for checkpoints, output, rendered in rows:
        for blob in (checkpoints, output, rendered):
            if isinstance(blob, dict):
                for key in ("generated", "generated_id"):
                    value = blob.get(key)
                    if isinstance(value, int):
                        ids.add(value)
    return ids


def remove_path(path: Path) -> int:
    """Delete a file or folder we own; a symlink is unlinked, never followed. Returns bytes freed."""
    if not shutil.rmtree.avoids_symlink_attacks:  # pragma: no cover - platform guard
        raise RuntimeError("refusing to delete on a platform without symlink-safe rmtree")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    if not os.path.isdir(path) or os.path.islink(path):
        size = st.st_size
        os.unlink(path)
        return size
    freed = 0
    for root, dirs, files in os.walk(path, followlinks=False):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            with contextlib.suppress(OSError):
                freed += os.lstat(os.path.join(root, name)).st_size
    shutil.rmtree(path)
    return freed


def _legacy_folders(pk: int, project_id: int) -> list[Path]:
    """What a generation kept on disk before the blob store: its folder and its archives."""
    root = Path(settings.GENERATED_PROJECTS_DIR) / str(int(project_id))
    return [root / str(int(pk)), *sorted((root / "exports").glob(f"{int(pk)}.*"))]


def generated_projects_cleanup(*, dry_run: bool, now: Any = None) -> dict[str, Any]:
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.GENERATED_PROJECTS_RETENTION_DAYS)
    with named_lock("kiln-cleanup") as acquired:
        if not acquired:
            logger.info("cleanup already running elsewhere; skipped")
            return {"status": "already_running", "dry_run": dry_run}
        old = GeneratedProject.objects.filter(status__in=TERMINAL_STATUSES, finished_at__lt=cutoff)
        busy_exports = set(
            RepositoryExport.objects.filter(status__in=ACTIVE_STATUSES).values_list("generated_id", flat=True)
        )
        busy_runs = _referenced_by_active_runs()
        candidates = list(old.order_by("finished_at").values_list("pk", "project_id"))
        report: dict[str, Any] = {
            "dry_run": dry_run,
            "cutoff": cutoff.isoformat(),
            "generated_deleted": 0,
            "files_deleted": 0,
            "archives_deleted": 0,
            "bytes_freed": 0,
            "blobs_deleted": 0,
            "skipped_active_export": 0,
            "skipped_active_run": 0,
        }
        doomed: list[int] = []
        for pk, project_id in candidates:
            if pk in busy_exports:
                report["skipped_active_export"] += 1
                continue
            if pk in busy_runs:
                report["skipped_active_run"] += 1
                continue
            file_count = ProjectFile.objects.filter(generated_id=pk).count()
            archives = RepositoryExport.objects.filter(generated_id=pk).exclude(archive_sha256="").count()
            if not dry_run:
                with transaction.atomic():
                    locked = (
                        GeneratedProject.objects.select_for_update(skip_locked=True)
                        .filter(pk=pk, status__in=TERMINAL_STATUSES, finished_at__lt=cutoff)
                        .first()
                    )
                    if (
                        locked is None
                        or RepositoryExport.objects.filter(generated_id=pk, status__in=ACTIVE_STATUSES).exists()
                    ):
                        report["skipped_active_export"] += 1
                        continue
                    locked.delete()
                for folder in _legacy_folders(pk, project_id):
                    report["bytes_freed"] += remove_path(folder)
            doomed.append(pk)
            report["generated_deleted"] += 1
            report["files_deleted"] += file_count
            report["archives_deleted"] += archives
        # The blobs nothing points at any more (shared ones stay), deleted or, in a dry run, counted
        # as if these generations were gone.
        ignoring = (
            {"generated files": Q(generated_id__in=doomed), "archives": Q(generated_id__in=doomed)} if dry_run else None
        )
        sweep = blobs_sweep(dry_run=dry_run, ignoring=ignoring)
        report["blobs_deleted"] = sweep.blobs_deleted
        report["bytes_freed"] += sweep.bytes_freed
        report["blobs_skipped_busy"] = sweep.skipped_busy
        # index rows whose object the storage lost (dropped: the next job stores the blob again); the
        # in-use ones name files already lost
        report["blobs_index_missing"] = sweep.index_missing
        report["blobs_index_missing_in_use"] = sweep.index_missing_in_use
        return report
