from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apps.templates.services.catalog import template_sync_builtin


class Command(BaseCommand):
    help = "Sync the built-in templates (apps/templates/builtin_templates/) into the catalog."

    def handle(self, *args: Any, **options: Any) -> None:
        for template in template_sync_builtin():
            self.stdout.write(
                f"{template.slug} {template.version} ({template.file_count} files, {template.checksum[:12]})"
            )
