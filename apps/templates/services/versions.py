"""Template versions: record one from a checked folder, find one, and read its files.

A version is immutable once recorded: its files are kept in the blob store once per content
checksum (`TemplateFile` rows, the manifest), and its label never points at other content.
Recording the same label with the same content again returns the recorded version (uploads
and syncs are idempotent); the same label with other content is a 400 `template_version_exists`.

The template row repeats its latest version's columns (`version`, `format`, `parameters`,
`checksum`, ...), updated here in the transaction that records a version, so the catalog's
lists and the callers that only need the latest read one row. The latest is the greatest
version by `apps.templates.versioning` (PEP 440 order, as Copier orders tags; labels that are
not versions by the time they were recorded), not the last recorded: uploading 1.0.1 after
2.0.0 adds 1.0.1 and leaves 2.0.0 the latest.

Who may add a version (owner, staff) is the callers' rule (upload, git sync, blueprints).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.storage.blobs import ManifestItem, blob_store, blob_writes
from apps.templates.models import ProjectTemplate, TemplateFile, TemplateFormat, TemplateSource, TemplateVersion
from apps.templates.services import formats
from apps.templates.versioning import version_sort_key
from core.exceptions import NotFound, ValidationFailed

if TYPE_CHECKING:
    from apps.templates.services.formats.native import ScannedTemplate

logger = logging.getLogger("kiln.templates")

# columns of the template that repeat its latest version's
LATEST_FIELDS = (
    "version",
    "format",
    "parameters",
    "checksum",
    "exclude",
    "copy_without_render",
    "file_count",
    "total_bytes",
    "source_path",
)
# versions named in an error (`version_not_found`'s `extra.available`): the newest ones
AVAILABLE_SHOWN = 20


@dataclass(frozen=True)
class RecordedVersion:
    template: ProjectTemplate
    version: TemplateVersion
    created: bool


def _folder_files(folder: Path) -> list[tuple[str, int]]:
    """Every regular file below `folder` (relative path, 0o644/0o755), sorted; the format that
    described the folder already refused links and special files."""
    found = []
    for base, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(base) / name
            st = path.lstat()
            if stat.S_ISREG(st.st_mode):
                found.append((path.relative_to(folder).as_posix(), 0o755 if st.st_mode & stat.S_IXUSR else 0o644))
    return sorted(found)


def _store_blobs(folder: Path, checksum: str) -> None:
    """Keep a version's files in the blob store (once per checksum), with their manifest."""
    if TemplateFile.objects.filter(checksum=checksum).exists():
        return
    with blob_writes():
        manifest = blob_store().store_tree(folder, _folder_files(folder))
        TemplateFile.objects.bulk_create(
            [
                TemplateFile(checksum=checksum, path=m.path, mode=m.mode, size=m.size or 0, sha256=m.sha256)
                for m in manifest
            ],
            ignore_conflicts=True,
        )


def described_of(scanned: ScannedTemplate) -> formats.Description:
    """A native folder `scan_template` read, as its format describes it."""
    manifest = scanned.manifest
    return formats.Description(
        format=TemplateFormat.NATIVE,
        parameters=manifest.parameters,
        checksum=scanned.checksum,
        file_count=len(scanned.files),
        total_bytes=scanned.total_bytes,
        exclude=manifest.exclude,
        copy_without_render=manifest.copy_without_render,
        slug=manifest.slug,
        name=manifest.name,
        description=manifest.description,
        version=manifest.version,
    )


def version_record(
    scanned: ScannedTemplate,
    *,
    source: str,
    source_path: str = "",
    user: Any | None = None,
    format: str = TemplateFormat.NATIVE,
    store_blobs: bool = True,
    may_add: Callable[[ProjectTemplate], bool] | None = None,
) -> RecordedVersion:
    """Record a native folder (`scan_template`) as a version of its manifest's slug and label."""
    described = described_of(scanned)
    if format != described.format:
        described = dataclasses.replace(described, format=format)
    return version_record_described(
        folder=scanned.folder,
        described=described,
        slug=described.slug,
        label=described.version,
        source=source,
        source_path=source_path,
        user=user,
        store_blobs=store_blobs,
        may_add=may_add,
    )


def version_record_described(
    *,
    folder: Path,
    described: formats.Description,
    slug: str,
    label: str,
    source: str,
    source_path: str = "",
    user: Any | None = None,
    commit: str = "",
    orderable: bool = True,
    name: str = "",
    description: str = "",
    template_fields: dict[str, Any] | None = None,
    store_blobs: bool = True,
    may_add: Callable[[ProjectTemplate], bool] | None = None,
) -> RecordedVersion:
    """Record `folder`, as its format described it (`formats.describe`), as version `label` of
    template `slug`.

    Creates the template on its first version (`source`, `user` as its owner, `name`/`description`
    or the described ones, `template_fields` such as the git_* columns). `source_path` names a local
    folder holding exactly these files (relative to the source root), read before the blob copy
    where it exists. `orderable=False` orders a label by time even when it reads as a version (a
    short commit). `store_blobs=False` leaves the files where they are (built-in templates, which
    every Kiln process ships; tests' folders). `may_add(template)` decides, under the template's row
    lock, whether the caller may add a version to a template that already exists (400 `template_exists`
    otherwise): a check made before the lock could be beaten by a concurrent first upload.
    """
    name = name or described.name or slug
    description = description or described.description
    if store_blobs:
        _store_blobs(folder, described.checksum)  # before the rows: the sweeper keeps blobs a TemplateFile names
    with transaction.atomic():
        template = ProjectTemplate.objects.select_for_update().filter(slug=slug).first()
        created = False
        if template is None:
            template, created = _template_create(
                slug=slug,
                name=name,
                description=description,
                version=label,
                format=described.format,
                parameters=described.parameters,
                source=source,
                source_path=source_path,
                checksum=described.checksum,
                uploaded_by=user if getattr(user, "pk", None) else None,
                **(template_fields or {}),
            )
        if not created and may_add is not None and not may_add(template):
            raise ValidationFailed(
                f"A template named '{slug}' already exists. Choose another slug.",
                code="template_exists",
                extra={"slug": slug},
            )
        existing = template.versions.filter(version=label).first()
        if existing is not None:
            if existing.checksum != described.checksum:
                raise ValidationFailed(
                    f"Template '{template.slug}' version {existing.version} exists with different content; "
                    "bump 'version'.",
                    code="template_version_exists",
                    extra={"slug": template.slug, "version": existing.version},
                )
            if source_path and not existing.source_path:
                TemplateVersion.objects.filter(pk=existing.pk).update(source_path=source_path)
            if not template.is_active:
                ProjectTemplate.objects.filter(pk=template.pk).update(is_active=True)
            template.refresh_from_db()
            existing.refresh_from_db()
            return RecordedVersion(template, existing, created=False)
        try:
            with transaction.atomic():  # a savepoint: the same label recorded concurrently
                version = TemplateVersion.objects.create(
                    template=template,
                    version=label,
                    format=described.format,
                    parameters=described.parameters,
                    checksum=described.checksum,
                    commit=commit,
                    exclude=list(described.exclude),
                    copy_without_render=list(described.copy_without_render),
                    file_count=described.file_count,
                    total_bytes=described.total_bytes,
                    uses_code=list(described.uses_code),
                    source_path=source_path,
                    sort_key=version_sort_key(label, timezone.now(), orderable=orderable),
                    created_by=user if getattr(user, "pk", None) else None,
                )
        except IntegrityError:
            raise ValidationFailed(
                f"Template '{template.slug}' version {label} was recorded at the same time; try again.",
                code="template_version_exists",
                extra={"slug": template.slug, "version": label},
            ) from None
        _refresh_latest(template, recorded=version, name=name, description=description)
    logger.info("template %s: version %s recorded (%s)", template.slug, version.version, version.checksum[:12])
    return RecordedVersion(template, version, created=True)


def _template_create(**values: Any) -> tuple[ProjectTemplate, bool]:
    """A new template row, or the one a concurrent first version created (locked, not created here)."""
    try:
        with transaction.atomic():  # a savepoint: the INSERT waits for the other transaction
            return ProjectTemplate.objects.create(**values), True
    except IntegrityError:
        return ProjectTemplate.objects.select_for_update().get(slug=values["slug"]), False


def _refresh_latest(template: ProjectTemplate, *, recorded: TemplateVersion, name: str, description: str) -> None:
    """After recording `recorded`: the template's latest columns (its name too when `recorded` is the latest)."""
    latest = versions_of(template).first()
    named = latest is not None and latest.pk == recorded.pk
    ProjectTemplate.objects.filter(pk=template.pk).update(is_active=True)  # a new version brings it back
    latest_refresh(template, name=name if named else None, description=description if named else None)


def latest_refresh(template: ProjectTemplate, *, name: str | None = None, description: str | None = None) -> None:
    """Copy the template's newest remaining version's columns onto it (`LATEST_FIELDS`); call it in
    the transaction that adds or removes a version. A template without versions is left as it is."""
    latest = versions_of(template).first()
    if latest is None:
        return
    values: dict[str, Any] = {field: getattr(latest, field) for field in LATEST_FIELDS}
    if name is not None:
        values["name"] = name
    if description is not None:
        values["description"] = description
    ProjectTemplate.objects.filter(pk=template.pk).update(**values, updated_at=timezone.now())
    template.refresh_from_db()


def versions_of(template: ProjectTemplate) -> Any:
    """The template's versions, newest first (a queryset)."""
    return TemplateVersion.objects.filter(template=template).order_by("-sort_key", "-created_at", "-id")


def version_latest(template: ProjectTemplate) -> TemplateVersion:
    """The template's latest version (404 `version_not_found` for a template without any)."""
    latest = versions_of(template).first()
    if latest is None:
        raise NotFound(
            f"Template '{template.slug}' has no versions.",
            code="version_not_found",
            extra={"template": template.slug, "available": []},
        )
    return latest


def _available(template: ProjectTemplate) -> list[str]:
    return list(versions_of(template).values_list("version", flat=True)[:AVAILABLE_SHOWN])


def version_get(template: ProjectTemplate, label: str) -> TemplateVersion:
    """The version labelled `label` (404 `version_not_found` naming the newest labels)."""
    version = TemplateVersion.objects.filter(template=template, version=label).first()
    if version is None:
        available = _available(template)
        raise NotFound(
            f"Template '{template.slug}' has no version '{label}' (available: {', '.join(available) or 'none'}).",
            code="version_not_found",
            extra={"template": template.slug, "version": label, "available": available},
        )
    return version


def version_for_generation(template: ProjectTemplate, label: str | None) -> TemplateVersion:
    """The version a generation body asks for (default: the latest); an unknown label is the
    body's error (400 `version_not_found`, naming the versions available)."""
    if label is None or label == "":
        try:
            return version_latest(template)
        except NotFound as exc:
            raise ValidationFailed(exc.message, code=exc.code, extra=exc.extra) from None
    try:
        return version_get(template, str(label))
    except NotFound as exc:
        raise ValidationFailed(
            exc.message, code=exc.code, extra={**exc.extra, "fields": {"version": [exc.message]}}
        ) from None


def version_template_folder(version: TemplateVersion) -> Path:
    """The version's files as a local folder: the one way to read them.

    A built-in version is read from Kiln's own folder and an uploaded one from KILN_TEMPLATES_DIR
    where this machine has the folder it was recorded from (`source_path`); elsewhere (a worker
    on another machine, a built-in version Kiln no longer ships) the files come from the blob
    store, written once per machine into KILN_TEMPLATE_CACHE_DIR/files/<checksum>/ and verified
    as they are read.
    """
    template = version.template
    root = Path(
        settings.KILN_BUILTIN_TEMPLATES_DIR
        if template.source == TemplateSource.BUILTIN
        else settings.KILN_TEMPLATES_DIR
    )
    local = root / version.source_path if version.source_path else None
    if local is not None and local.is_dir():
        return local
    files = TemplateFile.objects.filter(checksum=version.checksum).order_by("path")
    manifest = [ManifestItem(f.path, f.mode, f.sha256, f.size) for f in files]
    if not manifest:
        # recorded before the blob store, on a folder this machine does not have
        return local if local is not None else root / template.slug / version.checksum[:16]
    return blob_store().tree_cache(Path(settings.KILN_TEMPLATE_CACHE_DIR) / "files", version.checksum, manifest)


def builtin_version_superseded(template: ProjectTemplate, *, folder: str, checksum: str) -> None:
    """The built-in folder now holds other files: older versions read from the blob store."""
    TemplateVersion.objects.filter(template=template, source_path=folder).exclude(checksum=checksum).update(
        source_path=""
    )
