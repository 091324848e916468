"""Template sources: where a template's versions come from, one module per kind.

Each kind (`builtin`, `upload`, `git`) is a module in this package registered with
`@register_source`, like the export providers (`apps/projects/services/export_providers/`).
A source module declares:

- `kind`: the `ProjectTemplate.source` value it owns;
- `body_key`: the key of a `POST /templates/` body that registers a template from it
  (`archive`, `git`; None when templates of that kind are not registered through the API);
- `register(data, *, user)`: check the body's part and record the template with its versions;
- `sync(template, *, user)`: record the versions the source has that the catalog does not
  (a `sync_unsupported` 400 where a source has nothing to sync from);
- `describe(template)`: the source's details shown on the template (`None` when there are none).

The catalog records what a source hands it (a folder, a version label, a commit); views,
tasks and commands find the module with `get_source` / `source_for_body` and call it.
"""

from __future__ import annotations

from typing import Any, Protocol

from apps.templates.models import ProjectTemplate, TemplateSource
from core.exceptions import ValidationFailed


class SourceModule(Protocol):
    kind: str
    body_key: str | None

    def register(self, data: Any, *, user: Any) -> ProjectTemplate: ...

    def sync(self, template: ProjectTemplate, *, user: Any) -> list[str]: ...

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
