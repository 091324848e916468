"""Blueprint services: preview a structure document, register it as a catalog template.

A registered blueprint is stored as a native template folder (template.yaml + the scaffold's
files, Jinja only where parameters go) beside the document it came from (`blueprint.md`,
excluded from rendering), so generation, exports and everything else that works on catalog
templates applies unchanged. Registering an edited document under the same slug adds a new
version label (1.0.0 → 1.0.1 ...); the same document again changes nothing.
"""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from django.db import transaction

from apps.blueprints.services.errors import BlueprintInvalid
from apps.blueprints.services.parser import Blueprint, parse_document
from apps.blueprints.services.scaffold import Scaffold, scaffold
from apps.templates.models import ProjectTemplate, TemplateSource
from apps.templates.services.catalog import scan_template
from apps.templates.services.formats.native import SLUG_RE
from apps.templates.services.versions import version_record
from core.exceptions import ValidationFailed
from core.safe_paths import SafeWriter

DOCUMENT_NAME = "blueprint.md"


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


def _next_version(version: str) -> str:
    match = re.match(r"^(\d+)\.(\d+)\.(\d+)$", version)
    if match is None:
        return "1.0.0"
    major, minor, patch = (int(part) for part in match.groups())
    return f"{major}.{minor}.{patch + 1}"


@transaction.atomic
def blueprint_template_register(*, slug: str, name: str, document: str, user: Any) -> ProjectTemplate:
    """Parse and scaffold the document, then store it as a catalog template (see the module docstring)."""
    if not SLUG_RE.match(slug or ""):
        raise ValidationFailed("'slug' must be lowercase letters, digits and dashes.", extra={"field": "slug"})
    blueprint, made = blueprint_parse(document=document)
    existing = ProjectTemplate.objects.select_for_update().filter(slug=slug).first()
    if existing is not None and (existing.source == TemplateSource.BUILTIN or existing.uploaded_by_id != user.pk):
        raise ValidationFailed(
            f"A template named '{slug}' already exists.", code="template_exists", extra={"slug": slug}
        )
    version = existing.version if existing is not None else "1.0.0"
    description = (blueprint.title or f"Blueprint {name}")[:2000]
    manifest = {
        "slug": slug,
        "name": name[:200] or slug,
        "description": description,
        "version": version,
        "parameters": made.parameters,
        "exclude": [DOCUMENT_NAME],
    }
    storage = Path(settings.KILN_TEMPLATES_DIR)
    storage.mkdir(parents=True, exist_ok=True)
    staging = storage / f".blueprint-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        writer = SafeWriter(staging)
        writer.write("template.yaml", yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True).encode(), 0o644)
        writer.write(DOCUMENT_NAME, document.encode("utf-8"), 0o644)
        for path, item in sorted(made.files.items()):
            if path in {"template.yaml", DOCUMENT_NAME}:
                raise BlueprintInvalid(f"The tree names '{path}', which Kiln's template format reserves.")
            writer.write(path, item.content.encode("utf-8"), item.mode)
        scanned = scan_template(staging)
        if existing is not None:
            if scanned.checksum == existing.checksum:
                return existing  # the same document again: nothing new
            manifest["version"] = _next_version(existing.version)
            (staging / "template.yaml").write_bytes(
                yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True).encode()
            )
            scanned = scan_template(staging)
        relative = f"{slug}/{scanned.checksum[:16]}"
        final = storage / relative
        final.parent.mkdir(parents=True, exist_ok=True)
        if not final.exists():
            staging.rename(final)
        # kept in the blob store too, like an upload: a worker without this folder renders it (issue 18)
        recorded = version_record(scan_template(final), source=TemplateSource.UPLOAD, source_path=relative, user=user)
        return recorded.template
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
