"""Template sources: where a template's versions come from, one module per kind.

Each kind (`builtin`, `upload`, `git`) is a module in this package registered with
`@register_source`, like the export providers (`apps/projects/services/export_providers/`).
A source module declares:

- `kind`: the `ProjectTemplate.source` value it owns;
- `body_key`: the key of a `POST /templates/` body that registers a template from it
  (`archive`, `git`; None when templates of that kind are not registered through the API);
- `register(data, *, user)`: check the body's part and record the template with its versions;
- `syncs`: whether the source has somewhere to sync from;
- `sync(template, *, user)`: record the versions the source has that the catalog does not and
  return a `SyncResult` (a `sync_unsupported` 400 where a source has nothing to sync from);
- `describe(template)`: the source's details shown on the template (`None` when there are none).

The catalog records what a source hands it (a folder, a version label, a commit); views,
tasks and commands find the module with `get_source` / `source_for_body` and call it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from apps.templates.models import ProjectTemplate, TemplateSource
from core.exceptions import PermissionDenied, ValidationFailed


@dataclass
class SyncResult:
    """What a sync recorded (`added`, oldest first) and the new versions it could not record
    (`skipped`: {version, code, message}; tried again at the next sync)."""

    added: list[str] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)


class SourceModule(Protocol):
    kind: str
    body_key: str | None
    syncs: bool

    def register(self, data: Any, *, user: Any) -> ProjectTemplate: ...

    def sync(self, template: ProjectTemplate, *, user: Any) -> SyncResult: ...

    def describe(self, template: ProjectTemplate) -> dict[str, Any] | None: ...


SOURCES: dict[str, SourceModule] = {}


def register_source(module: type[Any]) -> type[Any]:
    instance = module()
    if instance.kind in SOURCES:
        raise RuntimeError(f"template source '{instance.kind}' registered twice")
    if instance.kind not in TemplateSource.values:
        raise RuntimeError(f"template source '{instance.kind}' is not a TemplateSource choice")
    SOURCES[instance.kind] = instance
    return module


def _load() -> None:
    from apps.templates.services.sources import builtin, git, upload  # noqa: F401 - fills the registry


def get_source(kind: str) -> SourceModule:
    _load()
    source = SOURCES.get(kind)
    if source is None:
        raise ValidationFailed(
            f"Unknown template source '{kind}'. Kiln knows: {', '.join(sorted(SOURCES))}.", code="source_unknown"
        )
    return source


def source_for_body(data: Any) -> SourceModule | None:
    """The source whose `body_key` the body of `POST /templates/` holds (None: no source's key)."""
    _load()
    if not hasattr(data, "keys"):
        return None
    for source in SOURCES.values():
        if source.body_key is not None and source.body_key in data:
            return source
    return None


def sync_unsupported(template: ProjectTemplate, how: str) -> ValidationFailed:
    return ValidationFailed(
        f"Template '{template.slug}' comes from a {template.source} source, which has nothing to sync from; {how}.",
        code="sync_unsupported",
        extra={"source": template.source},
    )


def template_sync(*, template: ProjectTemplate, actor: Any) -> SyncResult:
    """`POST /templates/{slug}/sync/`: the template's owner (or staff) records its source's new versions."""
    source = get_source(template.source)
    if not source.syncs:
        return source.sync(template, user=actor)  # sync_unsupported, saying what to do instead
    if not (getattr(actor, "is_staff", False) or (actor is not None and template.uploaded_by_id == actor.pk)):
        raise PermissionDenied(
            f"Only the owner of template '{template.slug}' (or staff) may sync it.", code="template_not_owner"
        )
    return source.sync(template, user=actor)
