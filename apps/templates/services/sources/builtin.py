"""`builtin`: the templates that ship with Kiln (apps/templates/builtin_templates), kept in step
with their folders after every migrate and by `manage.py sync_templates`."""

from __future__ import annotations

from typing import Any

from apps.templates.models import ProjectTemplate, TemplateSource
from apps.templates.services import catalog
from apps.templates.services.sources import SyncResult, register_source, sync_unsupported
from core.exceptions import ValidationFailed


@register_source
class BuiltinSource:
    kind = TemplateSource.BUILTIN
    body_key: str | None = None
    syncs = False

    def register(self, data: Any, *, user: Any) -> ProjectTemplate:
        raise ValidationFailed("Built-in templates ship with Kiln; they are not registered.", code="source_unknown")

    def sync(self, template: ProjectTemplate, *, user: Any) -> SyncResult:
        raise sync_unsupported(template, "built-in templates change with Kiln itself (manage.py sync_templates)")

    def sync_all(self) -> list[ProjectTemplate]:
        """Make the catalog match the built-in folders (after migrate, `sync_templates`)."""
        return catalog.template_sync_builtin()

    def describe(self, template: ProjectTemplate) -> dict[str, Any] | None:
        return None
