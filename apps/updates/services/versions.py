"""What an update needs to know about template versions, in one place.

Which version an update goes to (default: the latest), the order of version labels (for
migrations), what the version declares about updates (`update`/`migrations` in template.yaml,
`_skip_if_exists`/`_exclude`/answers file for Copier), the answers it renders with, and starting
the generation that renders it (recorded like any other generation, so it is the base of the
next update). The update service asks only these functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apps.projects.models import GeneratedProject, Project
from apps.templates.models import ProjectTemplate, TemplateVersion
from apps.templates.services.catalog import MANIFEST_NAME, template_folder
from apps.templates.services.update_spec import UpdateSpec, parse_update_spec
from apps.templates.services.versions import version_get, version_latest, versions_of
from apps.updates.services.merge import MergePolicy
from core.exceptions import NotFound, ValidationFailed
from core.values import UntrustedValueError, load_untrusted_yaml


@dataclass(frozen=True)
class VersionRef:
    template: ProjectTemplate
    label: str
    format: str
    parameters: dict[str, Any]
    folder: Path


def latest_label(template: ProjectTemplate) -> str:
    return template.version


def target_version(template: ProjectTemplate, label: str | None) -> VersionRef:
    """The version an update renders (default: the latest); 404 `version_not_found` otherwise."""
    row = version_get(template, label) if label else version_latest(template)
    return _ref(template, row)


def _ref(template: ProjectTemplate, row: TemplateVersion) -> VersionRef:
    return VersionRef(
        template=template,
        label=row.version,
        format=row.format,
        parameters=row.parameters or {"type": "object", "properties": {}},
        folder=template_folder(row),
    )


def version_positions(template: ProjectTemplate) -> dict[str, int]:
    """Recorded versions in order, oldest first (label → position), as the catalog orders them."""
    labels = list(versions_of(template).values_list("version", flat=True))
    return {label: position for position, label in enumerate(reversed(labels))}


def update_spec(version: VersionRef) -> UpdateSpec:
    """The version's `update` and `migrations` keys (validated when the version was recorded)."""
    if version.format != "native":
        return UpdateSpec()
    try:
        data = load_untrusted_yaml((version.folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, UntrustedValueError, ValueError):
        return UpdateSpec()
    return parse_update_spec(data if isinstance(data, dict) else {})


def merge_policy(version: VersionRef, spec: UpdateSpec) -> MergePolicy:
    return MergePolicy(skip_if_exists=spec.skip_if_exists, exclude=spec.exclude)


def new_answers(
    *, generated: GeneratedProject | None, version: VersionRef, changed: Mapping[str, Any], renamed: Mapping[str, Any]
) -> dict[str, Any]:
    """The answers the new version renders with: the recorded ones (after `rename_answers`)
    that the new version still asks, then the caller's changes; new questions take defaults
    when the generation starts."""
    properties = (version.parameters or {}).get("properties") or {}
    kept = {name: value for name, value in renamed.items() if name in properties}
    unknown = sorted(set(changed) - set(properties))
    if unknown:
        raise ValidationFailed(
            f"Unknown parameters for version {version.label}: {', '.join(unknown)}.",
            extra={"fields": {f"parameters.{name}": ["Not a parameter of this version."] for name in unknown}},
        )
    return {**kept, **changed}


def template_for_source(source: str) -> ProjectTemplate | None:
    """The registered git template whose URL is `source` (as an answers file records it), if any."""
    return None  # templates have no git sources before TemplateVersion lands


def version_for_recorded(template: ProjectTemplate, recorded: Any) -> str:
    """The label of the version an answers file names: Copier's `_commit` tag (with or without a
    `v`, or past a tag as `git describe` writes it), or the commit a version was recorded from
    (cruft's sha, a short sha)."""
    tag = str(recorded.version_tag)
    rows = versions_of(template)
    wanted = {tag, tag.removeprefix("v"), f"v{tag.removeprefix('v')}"}
    found = rows.filter(version__in=wanted).first()
    if found is None and len(str(recorded.version)) >= 7:
        sha = str(recorded.version).lower()
        found = next((row for row in rows.exclude(commit="") if row.commit.startswith(sha)), None)
    if found is not None:
        return found.version
    available = list(rows.values_list("version", flat=True)[:20])
    raise NotFound(
        f"Template '{template.slug}' has no version matching {recorded.version!r} recorded in {recorded.path}.",
        code="version_not_found",
        extra={"version": recorded.version, "available": available},
    )


def start_generation(*, project: Project, version: VersionRef, answers: dict[str, Any], actor: Any) -> GeneratedProject:
    """Record the generation of the new version (not enqueued: the update job runs it)."""
    from apps.projects.services.generation import generated_project_start

    return generated_project_start(
        project=project,
        template_slug=version.template.slug,
        parameters=answers,
        actor=actor,
        version=version.label,
        enqueue=False,
    )
