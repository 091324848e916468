"""Retention: delete generated projects older than GENERATED_PROJECTS_RETENTION_DAYS.

A generated project is old when it finished (UTC) strictly more than the retention
period ago. Never touched: pending or running generations, generations with an export
that is still pending or running, and generations a running workflow step refers to.
Rows go first, in one transaction per project (files and exports with them); its
folder and archives are removed after commit, without following links (a link is
removed, never its target). A named lock makes overlapping runs safe: the second one
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
from django.db.models import Sum
from django.utils import timezone

from apps.projects.models import GeneratedProject, ProjectFile, RepositoryExport
from apps.projects.services.generation import generated_project_output_dir
from apps.projects.services.repository_exporter import exports_root
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
            "bytes_freed": 0,
            "archives_deleted": 0,
            "skipped_active_export": 0,
            "skipped_active_run": 0,
        }
        for pk, project_id in candidates:
            if pk in busy_exports:
                report["skipped_active_export"] += 1
                continue
            if pk in busy_runs:
                report["skipped_active_run"] += 1
                continue
            files = ProjectFile.objects.filter(generated_id=pk).aggregate(total=Sum("size"))
            file_count = ProjectFile.objects.filter(generated_id=pk).count()
            archives = list(
                RepositoryExport.objects.filter(generated_id=pk)
                .exclude(archive_path="")
                .values_list("pk", "archive_path")
            )
            if dry_run:
                report["generated_deleted"] += 1
                report["files_deleted"] += file_count
                report["bytes_freed"] += files["total"] or 0
                report["archives_deleted"] += len(archives)
                continue
            generated = GeneratedProject.objects.filter(pk=pk).first()
            if generated is None:
                continue
            folder = generated_project_output_dir(generated)
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
            report["generated_deleted"] += 1
            report["files_deleted"] += file_count
            report["bytes_freed"] += remove_path(folder)
            root = exports_root(project_id)
            for export_id, _ in archives:
                for candidate in root.glob(f"{int(export_id)}.*"):
                    report["bytes_freed"] += remove_path(candidate)
                    report["archives_deleted"] += 1
        return report
