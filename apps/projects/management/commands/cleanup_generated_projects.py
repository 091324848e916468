from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.projects.services.cleanup import generated_projects_cleanup


class Command(BaseCommand):
    help = "Delete generated projects older than GENERATED_PROJECTS_RETENTION_DAYS (what the beat job runs)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="report what would be deleted; delete nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        report = generated_projects_cleanup(dry_run=options["dry_run"])
        self.stdout.write(json.dumps(report, indent=2, sort_keys=True))
