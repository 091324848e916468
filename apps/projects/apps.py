from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_builtin_templates(sender: AppConfig, **kwargs: Any) -> None:
    """Keep the catalog in step with the built-in template folders after every migrate."""
    from apps.projects.services.templates import template_sync_builtin

    template_sync_builtin()


class ProjectsConfig(AppConfig):
    name = "apps.projects"
    label = "projects"
    verbose_name = "Projects, templates and generated projects"

    def ready(self) -> None:
        from apps.projects import signals, tasks  # noqa: F401 - tasks register their job kinds with the reaper

        post_migrate.connect(_sync_builtin_templates, sender=self, dispatch_uid="kiln-sync-builtin-templates")
