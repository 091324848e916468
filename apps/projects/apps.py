from __future__ import annotations

from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "apps.projects"
    label = "projects"
    verbose_name = "Projects and generated projects"

    def ready(self) -> None:
        from apps.projects import signals, tasks  # noqa: F401 - tasks register their job kinds with the reaper
        from apps.storage.references import register_blob_reference

        register_blob_reference("generated files", "projects.ProjectFile", "sha256")
        register_blob_reference("archives", "projects.RepositoryExport", "archive_sha256")
