from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_builtin_templates(sender: AppConfig, **kwargs: Any) -> None:
    """Keep the catalog in step with the built-in template folders after every migrate."""
    from apps.templates.services.catalog import template_sync_builtin

    template_sync_builtin()


class TemplatesConfig(AppConfig):
    name = "apps.templates"
    label = "templates"
    verbose_name = "Template catalog"

    def ready(self) -> None:
        from apps.storage.references import register_blob_reference

        register_blob_reference("template files", "templates.TemplateFile", "sha256")
        post_migrate.connect(_sync_builtin_templates, sender=self, dispatch_uid="kiln-sync-builtin-templates")
