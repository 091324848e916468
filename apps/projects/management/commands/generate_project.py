"""Kiln's main job from the shell: generate a project from a template, write it to a folder.

Runs the same service, task and step executor as the API. On the embedded default
(no CELERY_BROKER_URL) the task runs in-process; with a broker the command waits for a
worker to finish it.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.projects.models import GeneratedProject, Project
from apps.projects.services.generation import generated_project_output_dir, generated_project_start
from apps.projects.services.projects import project_create
from apps.projects.services.templates import template_sync_builtin
from core.exceptions import ApplicationError
from core.jobs import TERMINAL_STATUSES


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


class Command(BaseCommand):
    help = "Generate a project from a template with parameters and write it to a folder."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--template", required=True, help="template slug (see `sync_templates`)")
        parser.add_argument(
            "--set", action="append", default=[], metavar="NAME=VALUE", help="a parameter; VALUE may be JSON"
        )
        parser.add_argument("--params", help="all parameters as one JSON object")
        parser.add_argument("--output", help="copy the generated files to this folder (must not exist)")
        parser.add_argument("--project", default="cli", help="project name to generate into (created if missing)")
        parser.add_argument("--user", default="kiln-cli", help="user acting (created if missing)")
        parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for a worker")
        parser.add_argument("--no-sync", action="store_true", help="do not sync built-in templates first")

    def handle(self, *args: Any, **options: Any) -> None:
        parameters: dict[str, Any] = json.loads(options["params"]) if options["params"] else {}
        for item in options["set"]:
            name, sep, value = item.partition("=")
            if not sep:
                raise CommandError(f"--set expects NAME=VALUE, got {item!r}")
            parameters[name.strip()] = _parse_value(value)
        output = Path(options["output"]).resolve() if options["output"] else None
        if output is not None and output.exists() and any(output.iterdir()):
            raise CommandError(f"{output} exists and is not empty")
        if not options["no_sync"]:
            template_sync_builtin()

        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(username=options["user"])
        if created:
            user.set_unusable_password()
            user.save()
        project = Project.objects.filter(name=options["project"], memberships__user=user).first()
        if project is None:
            project = project_create(owner=user, name=options["project"])

        started = time.monotonic()
        try:
            generated = generated_project_start(
                project=project, template_slug=options["template"], parameters=parameters, actor=user
            )
        except ApplicationError as exc:
            raise CommandError(f"{exc.code}: {exc.message} {json.dumps(exc.extra) if exc.extra else ''}") from exc
        generated = self._wait(generated, options["timeout"])
        elapsed = time.monotonic() - started
        if generated.status != "completed":
            error = generated.error or {}
            raise CommandError(
                f"generation {generated.pk} {generated.status}: {error.get('code')}: {error.get('message')}"
            )
        source = generated_project_output_dir(generated)
        self.stdout.write(
            f"generated #{generated.pk} from {generated.template.slug} {generated.template_version}: "
            f"{generated.file_count} files, {generated.total_bytes} bytes, sha256 {generated.content_sha256} "
            f"in {elapsed:.2f}s"
        )
        if output is not None:
            shutil.copytree(source, output, symlinks=False, dirs_exist_ok=True)
            self.stdout.write(f"written to {output}")
        else:
            self.stdout.write(f"files in {source}")

    def _wait(self, generated: GeneratedProject, timeout: float) -> GeneratedProject:
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            generated.refresh_from_db()
            if generated.status in TERMINAL_STATUSES:
                return generated
            if time.monotonic() > deadline:
                raise CommandError(f"generation {generated.pk} still {generated.status} after {timeout:.0f}s")
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)
