"""Blueprint services: preview a structure document, register it as a template version.

A registered document is a version of format `blueprint` (`apps/templates/services/formats/
blueprint.py`: the document, `blueprint.yaml` with the parameters, and the scaffold below
`project/`), recorded by `versions.version_record_described` like any other format's version, so
versions, generation of any version, exports, updates and the MCP tools apply unchanged.

Labels: the body's `version` when given (the same label with other content is a 400
`template_version_exists`, the same label and document again changes nothing); otherwise the
next label after the template's greatest one (1.0.0 first, then 1.0.1, ...; 2.0 → 2.0.1),
and a document equal to the latest version's adds nothing. An existing slug takes a new
version from its owner or staff only (400 `template_exists` otherwise, and always for built-in
and git templates).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.blueprints.services.errors import BlueprintInvalid
from apps.blueprints.services.parser import Blueprint, parse_document
from apps.blueprints.services.scaffold import Scaffold, scaffold
from apps.templates.models import ProjectTemplate, TemplateSource
from apps.templates.services import formats
from apps.templates.services.catalog import template_may_add_version
from apps.templates.services.formats import blueprint as blueprint_format
from apps.templates.services.formats.native import SLUG_RE, VERSION_RE
from apps.templates.services.versions import version_record_described, versions_of
from apps.templates.versioning import parse_version
from core.exceptions import ValidationFailed


def blueprint_parse(*, document: str) -> tuple[Blueprint, Scaffold]:
    blueprint = parse_document(document)
    return blueprint, scaffold(blueprint, source=document)


def blueprint_preview(*, document: str) -> dict[str, Any]:
    """What a generation from this document would make; nothing is stored."""
    blueprint, made = blueprint_parse(document=document)
    return {
        "title": blueprint.title,
        "root": blueprint.root,
        "entries": [entry.as_dict() for entry in blueprint.entries],
        "stack": blueprint.stack.as_dict(),
        "warnings": [warning.as_dict() for warning in blueprint.warnings],
        "files": sorted(made.files),
        "parameters": made.parameters,
        "start_command": made.start_command,
    }


def _next_label(template: ProjectTemplate | None) -> str:
    """The label after the template's greatest version label (1.0.0 for the first version)."""
    labels = set(versions_of(template).values_list("version", flat=True)) if template is not None else set()
    parsed = [version for version in map(parse_version, labels) if version is not None]
    if parsed:
        release = [*max(parsed).release, 0, 0][: max(3, len(max(parsed).release))]
        release[-1] += 1
    else:
        release = [1, 0, 0]
    while ".".join(map(str, release)) in labels:
        release[-1] += 1
    return ".".join(map(str, release))


def _check_request(*, slug: str, version: str | None, user: Any) -> ProjectTemplate | None:
    if not SLUG_RE.match(slug or ""):
        raise ValidationFailed(
            "'slug' must be lowercase letters, digits and dashes.",
            extra={"field": "slug", "fields": {"blueprint.slug": ["Lowercase letters, digits and dashes."]}},
        )
    if version is not None and not VERSION_RE.match(version):
        message = "'version' must be a version label such as 1.2.3 (letters, digits, '.', '+', '_', '-')."
        raise ValidationFailed(message, extra={"field": "version", "fields": {"blueprint.version": [message]}})
    existing = ProjectTemplate.objects.filter(slug=slug).first()
    if existing is not None and not template_may_add_version(existing, user):
        raise ValidationFailed(
            f"A template named '{slug}' already exists.", code="template_exists", extra={"slug": slug}
        )
    return existing


def blueprint_template_register(
    *, slug: str, name: str, document: str, user: Any, version: str | None = None
) -> ProjectTemplate:
    """Parse and scaffold the document, then record it as a `blueprint` version of template `slug`
    (see the module docstring for labels and who may add one). Returns the template."""
    existing = _check_request(slug=slug, version=version, user=user)
    blueprint, made = blueprint_parse(document=document)
    if blueprint_format.RESERVED in made.files:
        raise BlueprintInvalid(
            f"The tree names '{blueprint_format.RESERVED}' at its top, which Kiln's template format reserves."
        )
    storage = Path(settings.KILN_TEMPLATES_DIR)
    storage.mkdir(parents=True, exist_ok=True)
    staging = storage / f".blueprint-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        blueprint_format.folder_write(
            staging,
            document=document,
            title=blueprint.title,
            start_command=made.start_command,
            parameters=made.parameters,
            files=((path, item.content.encode("utf-8"), item.mode) for path, item in sorted(made.files.items())),
        )
        described = formats.describe(staging, blueprint_format.FORMAT)
        latest = versions_of(existing).first() if existing is not None else None
        if version is None and latest is not None and latest.checksum == described.checksum:
            return latest.template  # the latest version's document again: nothing new
        label = version if version is not None else _next_label(existing)
        relative = f"{slug}/{described.checksum[:16]}"
        final = storage / relative
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staging, final)
        except OSError:
            if not final.is_dir():  # else: the same document's folder, written before (or concurrently)
                raise
        # blobs too, like an upload: a worker without this folder renders it (issue 18)
        recorded = version_record_described(
            folder=final,
            described=described,
            slug=slug,
            label=label,
            source=TemplateSource.UPLOAD,
            source_path=relative,
            user=user,
            name=name[:200] or slug,
            description=(blueprint.title or f"Blueprint {name}")[:2000],
            may_add=lambda template: template_may_add_version(template, user),  # again, under the row lock
        )
        return recorded.template
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
