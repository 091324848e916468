from __future__ import annotations

from django.apps import AppConfig


class StorageConfig(AppConfig):
    name = "apps.storage"
    label = "storage"
    verbose_name = "Blob storage (generated files, archives, template versions)"

    def ready(self) -> None:
        from apps.storage import references  # noqa: F401 - the built-in reference kinds register here
