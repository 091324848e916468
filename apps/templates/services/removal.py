"""Deleting an uploaded template (`DELETE /templates/{slug}/`), or deactivating one that is in use.

Rules (issue 20, API.md § Events and ergonomics):
- Only the person who uploaded it, or staff, may (403 `permission_denied`). Built-in templates ship
  with Kiln and come back at every sync: 400 `template_builtin`.
- While a generation of it is pending or running, or a rollout of it is active: 409 `template_busy`.
- A template that generations were made from (their rows are history, deleted ones too) cannot
  disappear: 409 `template_in_use` naming how many, unless the caller asks `deactivate`, which
  hides it from the catalog (no new generation, update or rollout; the pages and lists drop it)
  and keeps the generations, their files and exports. Uploading the same slug again reactivates it.
- Otherwise the template goes: its row, its rollouts, its files' manifest (when no other template
  row shares the content) and its upload folder; its blobs are swept after the commit.
Both outcomes are audited (`template.deleted`, `template.deactivated`).

One version (`DELETE /templates/{slug}/versions/{version}/`) follows the same rules, with no
deactivation: 409 `version_in_use` while generations pin it (`template_version_ref`, deleted ones
too), 409 `version_last` for a template's only version (delete the template instead); otherwise the
version row and its files' manifest go (unless another version has the same content) and the
template's latest columns follow its newest remaining version (`versions.latest_refresh`).
Audited `template.version_deleted`.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from apps.templates.models import ProjectTemplate, TemplateFile, TemplateSource, TemplateVersion
from apps.templates.services.versions import latest_refresh
from core.exceptions import Conflict, PermissionDenied, ValidationFailed
from core.jobs import ACTIVE_STATUSES

logger = logging.getLogger("kiln.templates")


def can_delete(actor: Any, template: ProjectTemplate) -> bool:
    if not getattr(actor, "is_authenticated", False):
        return False
    return bool(actor.is_staff or actor.is_superuser or template.uploaded_by_id == actor.pk)


def _check_may_delete(actor: Any, template: ProjectTemplate) -> None:
    if template.source == TemplateSource.BUILTIN:
        raise ValidationFailed(
            f"'{template.slug}' is a built-in template; it ships with Kiln and cannot be deleted.",
            code="template_builtin",
            extra={"template": template.slug},
        )
    if not can_delete(actor, template):
        raise PermissionDenied(
            "Only the person who uploaded the template, or staff, can delete it.", extra={"template": template.slug}
        )


def _sweep_after_commit(folder: Path | None = None) -> None:
    def remove_files() -> None:
        from apps.storage.sweep import blobs_sweep

        if folder is not None and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
        # blobs no row points at any more (shared ones stay); a sweep running elsewhere
        # leaves them to the next one (the retention cleanup sweeps daily)
        blobs_sweep(dry_run=False, scan_storage=False)

    transaction.on_commit(remove_files, robust=True)


def version_delete(*, version: TemplateVersion, actor: Any) -> None:
    """Delete one version of an uploaded template (see the module docstring)."""
    from apps.projects.models import GeneratedProject
    from apps.projects.signals import audit

    template = version.template
    _check_may_delete(actor, template)
    with transaction.atomic():
        ProjectTemplate.objects.select_for_update().filter(pk=template.pk).first()
        row = TemplateVersion.objects.filter(pk=version.pk).first()
        if row is None:
            return  # removed by a concurrent request
        pinned = GeneratedProject.objects.filter(template_version_ref_id=row.pk)
        busy = pinned.filter(status__in=ACTIVE_STATUSES).count()
        used = pinned.count()
        if used:
            raise Conflict(
                f"Version {row.version} of '{template.slug}' has {used} generation(s) made from it"
                + (f" ({busy} still pending or running)" if busy else "")
                + " (deleted ones are kept as history), so it cannot be deleted.",
                code="version_in_use",
                extra={"template": template.slug, "version": row.version, "generations": used},
            )
        if not TemplateVersion.objects.filter(template_id=template.pk).exclude(pk=row.pk).exists():
            raise Conflict(
                f"{row.version} is the only version of '{template.slug}'; delete the template instead "
                f"(DELETE /api/v1/templates/{template.slug}/).",
                code="version_last",
                extra={"template": template.slug, "version": row.version},
            )
        shared = (
            TemplateVersion.objects.filter(checksum=row.checksum).exclude(pk=row.pk).exists()
            or ProjectTemplate.objects.filter(checksum=row.checksum).exclude(pk=template.pk).exists()
        )
        if not shared:
            TemplateFile.objects.filter(checksum=row.checksum).delete()
        audit(
            "template.version_deleted",
            obj=template,
            project_id=None,
            actor=actor,
            slug=template.slug,
            version=row.version,
            checksum=row.checksum,
        )
        row.delete()
        latest_refresh(template)
        folder = None
        if template.source == TemplateSource.UPLOAD and row.source_path:
            others = TemplateVersion.objects.filter(template_id=template.pk, source_path=row.source_path).exists()
            root = Path(settings.KILN_TEMPLATES_DIR).resolve()
            candidate = (root / row.source_path).resolve()
            folder = None if others or not candidate.is_relative_to(root) or candidate == root else candidate
        _sweep_after_commit(folder)


def template_delete(*, template: ProjectTemplate, actor: Any, deactivate: bool = False) -> str:
    """Delete `template`, or deactivate it; returns "deleted" or "deactivated"."""
    from apps.projects.models import GeneratedProject
    from apps.projects.signals import audit
    from apps.updates.models import Rollout

    _check_may_delete(actor, template)
    with transaction.atomic():
        row = ProjectTemplate.objects.select_for_update().get(pk=template.pk)
        generations = GeneratedProject.objects.filter(template_id=row.pk)
        busy = generations.filter(status__in=ACTIVE_STATUSES).count()
        rollouts = Rollout.objects.filter(template_id=row.pk, status__in=ACTIVE_STATUSES).count()
        if busy or rollouts:
            raise Conflict(
                f"'{row.slug}' has {busy} generation(s) and {rollouts} rollout(s) pending or running; "
                "wait for them or cancel them, then delete.",
                code="template_busy",
                extra={"template": row.slug, "generations_active": busy, "rollouts_active": rollouts},
            )
        detail = {"slug": row.slug, "version": row.version, "checksum": row.checksum}
        if deactivate:
            ProjectTemplate.objects.filter(pk=row.pk).update(is_active=False)
            audit("template.deactivated", obj=row, project_id=None, actor=actor, **detail)
            return "deactivated"
        used = generations.count()
        if used:
            raise Conflict(
                f"'{row.slug}' has {used} generation(s) made from it (deleted ones are kept as history), so it "
                "cannot be deleted. Deactivate it instead (DELETE with ?deactivate=true): it leaves the catalog "
                "and its generations stay.",
                code="template_in_use",
                extra={"template": row.slug, "generations": used},
            )
        # every version's manifest, unless another template's version has the same content
        checksums = {
            row.checksum,
            *TemplateVersion.objects.filter(template_id=row.pk).values_list("checksum", flat=True),
        }
        shared = set(
            TemplateVersion.objects.filter(checksum__in=checksums)
            .exclude(template_id=row.pk)
            .values_list("checksum", flat=True)
        )
        TemplateFile.objects.filter(checksum__in=checksums - shared).delete()
        folder = Path(settings.KILN_TEMPLATES_DIR) / row.slug if row.source == TemplateSource.UPLOAD else None
        audit("template.deleted", obj=row, project_id=None, actor=actor, **detail)
        row.delete()

        def remove_files() -> None:
            from apps.storage.sweep import blobs_sweep

            if folder is not None and folder.is_dir() and not ProjectTemplate.objects.filter(slug=row.slug).exists():
                shutil.rmtree(folder, ignore_errors=True)
            # blobs no row points at any more (shared ones stay); a sweep running elsewhere
            # leaves them to the next one (the retention cleanup sweeps daily)
            blobs_sweep(dry_run=False, scan_storage=False)

        transaction.on_commit(remove_files, robust=True)
    return "deleted"
