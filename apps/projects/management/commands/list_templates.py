"""`manage.py list_templates`: the catalog's templates, their versions and parameters.

What `generate_project --template SLUG --set NAME=VALUE` needs to know: each parameter's type
(which decides how `--set` reads VALUE), its default and its description.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.projects.management.commands._parameters import parameter_rows
from apps.templates.models import ProjectTemplate
from apps.templates.services.catalog import template_sync_builtin
from apps.templates.services.versions import versions_of
from core.json_schema import json_shown

MAX_VERSIONS_SHOWN = 20  # newest first


def template_entry(template: ProjectTemplate) -> dict[str, Any]:
    """One template as the command shows it (also its --json form); parameters are the latest version's."""
    labels = list(versions_of(template).values_list("version", flat=True)[:MAX_VERSIONS_SHOWN])
    return {
        "slug": template.slug,
        "name": template.name,
        "description": " ".join(template.description.split()),
        "source": template.source,
        "format": template.format,
        "versions": labels,
        "latest_version": template.version,
        "parameters": parameter_rows(template.parameters or {}),
    }


class Command(BaseCommand):
    help = "List the catalog's templates: slug, versions, and each parameter's type, default and description."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slugs", nargs="*", metavar="SLUG", help="only these templates")
        parser.add_argument("--json", action="store_true", help="print JSON (one object per template, in a list)")
        parser.add_argument("--no-sync", action="store_true", help="do not sync built-in templates first")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["no_sync"]:
            template_sync_builtin()
        templates = ProjectTemplate.objects.filter(is_active=True).order_by("slug")
        if options["slugs"]:
            templates = templates.filter(slug__in=options["slugs"])
            missing = sorted(set(options["slugs"]) - {t.slug for t in templates})
            if missing:
                raise CommandError(f"template_not_found: no template named {', '.join(missing)}")
        entries = [template_entry(template) for template in templates]
        if options["json"]:
            self.stdout.write(json.dumps(entries, indent=2, ensure_ascii=False))
            return
        if not entries:
            self.stdout.write("no templates (sync the built-in ones with `manage.py sync_templates`)")
        for index, entry in enumerate(entries):
            if index:
                self.stdout.write("")
            self._write(entry)

    def _write(self, entry: dict[str, Any]) -> None:
        self.stdout.write(
            f"{entry['slug']}  {entry['latest_version']}  ({entry['source']}, {entry['format']})  {entry['name']}"
        )
        if entry["description"]:
            self.stdout.write(f"  {entry['description']}")
        self.stdout.write(f"  versions: {', '.join(entry['versions']) or 'none'} (newest first)")
        rows = entry["parameters"]
        if not rows:
            self.stdout.write("  parameters: none")
            return
        self.stdout.write("  parameters:")
        for row in rows:
            if "default" in row:
                default = f"default {json_shown(row['default'], 60)}"
            else:
                default = "required" if row["required"] else "optional"
            self.stdout.write(f"    {row['name']}: {row['type']}, {default}")
            if row["description"]:
                self.stdout.write(f"      {row['description']}")
