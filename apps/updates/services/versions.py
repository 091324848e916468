"""What an update needs to know about template versions, in one place.

Which version an update goes to (default: the latest recorded one, any recorded version by its
label), the order of the template's versions (for migrations and drift), what a version declares
about updates per format (`update`/`migrations` in a native template.yaml; Copier's
`_skip_if_exists`, `_exclude`, answers file and `_migrations`), the answers the new version
renders with, and starting the generation that renders it (pinned to the version, recorded like
any other generation, so it is the base of the next update). The update, rollout, drift and
adoption services ask only these functions; the versions themselves are
`apps.templates.services.versions`' (TemplateVersion rows).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apps.projects.models import GeneratedProject, Project
from apps.templates.models import ProjectTemplate, TemplateFormat, TemplateVersion
from apps.templates.services import formats
from apps.templates.services.catalog import MANIFEST_NAME
from apps.templates.services.update_spec import UpdateSpec, parse_update_spec
from apps.templates.services.versions import version_get, version_latest, versions_of
from apps.updates.services.merge import MergePolicy
from apps.updates.services.policies import copier_policy, native_policy
from core.exceptions import NotFound, ValidationFailed
from core.values import UntrustedValueError, load_untrusted_yaml

# versions named in an error's `extra.available`
AVAILABLE_SHOWN = 20


@dataclass(frozen=True)
class VersionRef:
    """A recorded template version, as an update uses it."""

    template: ProjectTemplate
    row: TemplateVersion
    label: str
    format: str
    parameters: dict[str, Any]
    folder: Path
    trusted: bool
    ref: formats.VersionRef  # what the format renders (folder, checksum, source for Copier's answers file)


@dataclass(frozen=True)
class UpdateRules:
    """What a version declares about updates, read once per update."""

    spec: UpdateSpec  # native `update` + `migrations` (empty for other formats)
    policy: MergePolicy
    copier_migrations: list[Any] = field(default_factory=list)  # Copier `_migrations` (raw items)
    render: Callable[[str, dict[str, Any]], str] | None = None  # renders a Copier migration's text
    folder: Path | None = None  # the version's files (shown to migrations as Copier's template)


def _ref(version: TemplateVersion) -> VersionRef:
    from apps.projects.services.generation import template_version_ref

    ref = template_version_ref(version)
    return VersionRef(
        template=version.template,
        row=version,
        label=version.version,
        format=version.format,
        parameters=version.parameters or {"type": "object", "properties": {}},
        folder=ref.folder,
        trusted=version.is_trusted,
        ref=ref,
    )


def latest_label(template: ProjectTemplate) -> str:
    """The label of the template's latest version (PEP 440 order, as Copier orders tags)."""
    latest = versions_of(template).values_list("version", flat=True).first()
    return latest if latest is not None else template.version


def target_version(template: ProjectTemplate, label: str | None) -> VersionRef:
    """The version an update renders: `label` (any recorded version) or the latest; 404
    `version_not_found` naming the versions there are otherwise."""
    row = version_get(template, label) if label else version_latest(template)
    return _ref(row)


def version_positions(template: ProjectTemplate) -> dict[str, int]:
    """Recorded versions in the template's order (label → position, the oldest 0)."""
    labels = list(versions_of(template).values_list("version", flat=True))
    return {label: position for position, label in enumerate(reversed(labels))}


def is_behind(label: str, latest: str, positions: Mapping[str, int]) -> bool:
    """Whether a repository holding version `label` is older than `latest` (by the template's
    order; a label that is not a recorded version is behind unless it is the latest's)."""
    if label in positions and latest in positions:
        return positions[label] < positions[latest]
    return label != latest


# --- per format: what a version declares about updates ------------------------------------------------


def _native_rules(version: VersionRef, generated: GeneratedProject | None) -> UpdateRules:
    try:
        data = load_untrusted_yaml((version.folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, UntrustedValueError, ValueError):
        data = {}
    spec = parse_update_spec(data if isinstance(data, dict) else {})
    return UpdateRules(spec=spec, policy=native_policy(exclude=spec.exclude, skip_if_exists=spec.skip_if_exists))


def _copier_rules(version: VersionRef, generated: GeneratedProject | None) -> UpdateRules:
    from apps.templates.services.formats import copier

    prepared = copier.prepare(version.folder, version.ref.checksum)
    spec = prepared.spec
    raw = spec.settings.get("migrations") or []
    # Copier runs `_migrations` only with --trust; Kiln only for a trusted version (isolated)
    migrations = list(raw) if version.trusted and isinstance(raw, list) else []

    def render(text: str, context: dict[str, Any]) -> str:
        return prepared.render_string(text, context, where=f"{spec.config_name}: _migrations")

    policy = copier_policy(spec)
    if generated is not None:
        # `_exclude` and `_skip_if_exists` are templates: rendered with the new answers, as
        # `copier update` renders them (`_copier_operation` is "update")
        answers = copier.open_secrets(spec, dict(generated.parameters or {}))
        resolved = copier.validate(prepared, answers, version.ref.source)
        context = copier.render_context(
            spec, resolved.answers, version.ref.source or formats.SourceInfo(), phase="render"
        )
        context["_copier_operation"] = "update"

        def patterns(items: tuple[str, ...], key: str) -> tuple[str, ...]:
            rendered: list[str] = []
            for item in items:
                text = prepared.render_string(item, context, where=f"{spec.config_name}: {key}")
                rendered.extend(line for line in text.splitlines() if line.strip())
            return tuple(rendered)

        policy = MergePolicy(
            skip_if_exists=patterns(policy.skip_if_exists, "_skip_if_exists"),
            exclude=patterns(policy.exclude, "_exclude"),
            template_owned=policy.template_owned,
        )
    return UpdateRules(
        spec=UpdateSpec(),
        policy=policy,
        copier_migrations=migrations,
        render=render,
        folder=version.folder,
    )


def _plain_rules(version: VersionRef, generated: GeneratedProject | None) -> UpdateRules:
    return UpdateRules(spec=UpdateSpec(), policy=MergePolicy())


RULES: dict[str, Callable[[VersionRef, GeneratedProject | None], UpdateRules]] = {
    TemplateFormat.NATIVE: _native_rules,
    TemplateFormat.COPIER: _copier_rules,
}


def update_rules(version: VersionRef, generated: GeneratedProject | None = None) -> UpdateRules:
    """What `version` declares about updates; `generated` (the new version's generation) renders
    what the format templates with the answers (Copier's `_exclude` / `_skip_if_exists`)."""
    return RULES.get(version.format, _plain_rules)(version, generated)


def update_spec(version: VersionRef) -> UpdateSpec:
    """The version's native `update` and `migrations` keys (validated when the version was recorded)."""
    return update_rules(version).spec


def merge_policy(version: VersionRef, spec: UpdateSpec | None = None) -> MergePolicy:
    return update_rules(version).policy


# --- answers ------------------------------------------------------------------------------------------


def _copier_recorded(generated: GeneratedProject, version: TemplateVersion) -> dict[str, Any]:
    """What Copier's answers file of the generation holds (the answers as resolved by the old
    version: defaults included), plus the secret answers it does not write (still sealed): what
    `copier update` reads back before rendering the new version."""
    from apps.projects.services.generation import template_version_ref
    from apps.templates.services.formats import copier

    ref = template_version_ref(version)
    prepared = copier.prepare(ref.folder, ref.checksum)
    recorded = dict(generated.parameters or {})
    resolved = copier.validate(prepared, copier.open_secrets(prepared.spec, recorded), ref.source)
    remembered = {k: v for k, v in resolved.remember.items() if not k.startswith("_")}
    secrets = {k: v for k, v in recorded.items() if k in prepared.spec.secret_questions}
    return {**remembered, **secrets}


RECORDED: dict[str, Callable[[GeneratedProject, TemplateVersion], dict[str, Any]]] = {
    TemplateFormat.COPIER: _copier_recorded,
}


def recorded_answers(generated: GeneratedProject) -> dict[str, Any]:
    """The answers a generation was made with, as its format carries them into an update."""
    version = generated.template_version_ref
    if version is not None and version.format in RECORDED:
        return RECORDED[version.format](generated, version)
    return dict(generated.parameters or {})


def render_answers(generated: GeneratedProject) -> dict[str, Any]:
    """A Copier generation's answers as its render saw them (defaults resolved, secrets opened):
    the context of the version's `_migrations`."""
    from apps.projects.services.generation import template_version_ref
    from apps.templates.services.formats import copier

    version = generated.template_version_ref
    if version is None or version.format != TemplateFormat.COPIER:
        return dict(generated.parameters or {})
    ref = template_version_ref(version)
    prepared = copier.prepare(ref.folder, ref.checksum)
    answers = copier.open_secrets(prepared.spec, dict(generated.parameters or {}))
    return {k: v for k, v in copier.validate(prepared, answers, ref.source).values.items() if not k.startswith("_")}


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


# --- adoptions: which registered template and version an answers file names --------------------------


def _normal_url(url: str) -> str:
    text = url.strip().rstrip("/")
    text = text.removesuffix(".git").rstrip("/")
    if "://" in text:
        scheme, rest = text.split("://", 1)
        host, _, path = rest.partition("/")
        text = f"{scheme.lower()}://{host.lower()}/{path}"
    return text


def template_for_source(source: str) -> ProjectTemplate | None:
    """The registered git template whose URL is `source` (as an answers file records it), with or
    without `.git` and a trailing slash, the host in any case; None when there is none."""
    wanted = _normal_url(source)
    if not wanted:
        return None
    stem = wanted.rsplit("/", 1)[-1]
    candidates = ProjectTemplate.objects.filter(is_active=True, git_url__icontains=stem).order_by("id")[:200]
    for template in candidates:
        if _normal_url(template.git_url) == wanted:
            return template
    return None


def version_for_recorded(template: ProjectTemplate, recorded: Any) -> str:
    """The label of the version an answers file names: Copier's `_commit` (a tag, or `git describe`
    past a tag: the tag), with or without a leading `v`; cruft's commit (the version recorded from it)."""
    given = str(recorded.version)
    tag = recorded.version_tag
    labels = [given, tag, tag.removeprefix("v"), f"v{tag}"]
    found = TemplateVersion.objects.filter(template=template, version__in=labels).values_list("version", flat=True)
    for label in labels:
        if label in found:
            return label
    if len(given) >= 7 and all(c in "0123456789abcdef" for c in given.lower()):
        row = TemplateVersion.objects.filter(template=template, commit__startswith=given.lower()).first()
        if row is not None:
            return row.version
    available = list(versions_of(template).values_list("version", flat=True)[:AVAILABLE_SHOWN])
    raise NotFound(
        f"Template '{template.slug}' has no version matching {recorded.version!r} recorded in {recorded.path} "
        f"(available: {', '.join(available) or 'none'}).",
        code="version_not_found",
        extra={"version": recorded.version, "available": available},
    )


def start_generation(*, project: Project, version: VersionRef, answers: dict[str, Any], actor: Any) -> GeneratedProject:
    """Record the generation of the version (pinned to it; not enqueued: the update job runs it)."""
    from apps.projects.services.generation import generated_project_start

    return generated_project_start(
        project=project,
        template_slug=version.template.slug,
        parameters=answers,
        actor=actor,
        enqueue=False,
        version=version.label,
    )
