from __future__ import annotations

from django.apps import AppConfig


class UpdatesConfig(AppConfig):
    name = "apps.updates"
    label = "updates"
    verbose_name = "Template updates, rollouts and drift"

    def ready(self) -> None:
        from apps.storage.references import register_blob_reference
        from apps.updates import tasks  # noqa: F401 - tasks register their job kinds with the reaper

        register_blob_reference("update diffs", "updates.TemplateUpdate", "diff_sha256")
