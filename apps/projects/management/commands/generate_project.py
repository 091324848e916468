"""Kiln's main job from the shell: generate a project from a template and export it.

Runs the same service, task and step executor as the API. On the embedded default
(no CELERY_BROKER_URL) the task runs in-process; with a broker the command waits for a
worker to finish it.
"""

from __future__ import annotations

import gc
import json
import shutil
import time
from pathlib import Path
from typing import Any, TypeVar

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.projects.models import GeneratedProject, Project
from apps.projects.services.exports import repository_export_archive, repository_export_start
from apps.projects.services.generation import generated_project_copy_to, generated_project_start
from apps.projects.services.projects import project_create
from apps.storage.blobs import blob_store
from apps.templates.services.catalog import template_sync_builtin
from core.exceptions import ApplicationError
from core.jobs import TERMINAL_STATUSES, Job
from core.values import UntrustedValueError, load_untrusted_json

J = TypeVar("J", bound=Job)


def _parse_value(raw: str) -> Any:
    try:
        return load_untrusted_json(raw)
    except UntrustedValueError as exc:
        if exc.reason == "invalid":
            return raw  # not JSON: the text itself
        raise CommandError(exc.message) from None


class Command(BaseCommand):
    help = "Generate a project from a template with parameters and write it to a folder."
    # A runtime job, like a worker's: Django's system checks (models, admin, the whole URL
    # conf and API views) are for `check`/`migrate`/`runserver`, and would import the web
    # stack into every generation (~0.2 s).
    requires_system_checks: list[str] = []

    def run_from_argv(self, argv: list[str]) -> None:
        # Run as a process's own command (not through call_command): Django's start-up
        # objects live until exit, so keep the garbage collector from re-scanning them on
        # every full collection while thousands of files are compiled and rendered.
        gc.freeze()
        super().run_from_argv(argv)

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
        parser.add_argument(
            "--export",
            nargs="+",
            metavar="PROVIDER [URL]",
            help="then export: `zip`, `tar.gz`, or `git URL` (an https:// or, where allowed, file:// remote)",
        )
        parser.add_argument("--branch", default="main", help="branch for --export git")
        parser.add_argument(
            "--archive-output",
            help="write the zip/tar.gz here (default: next to --output, else <project>-<id>.<ext> here)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            parameters: dict[str, Any] = load_untrusted_json(options["params"]) if options["params"] else {}
        except UntrustedValueError as exc:
            raise CommandError(f"--params: {exc.message}") from None
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
        self.stdout.write(
            f"generated #{generated.pk} from {generated.template.slug} {generated.template_version}: "
            f"{generated.file_count} files, {generated.total_bytes} bytes, sha256 {generated.content_sha256} "
            f"in {elapsed:.2f}s"
        )
        if output is not None:
            try:
                generated_project_copy_to(generated=generated, destination=output)
            except ApplicationError as exc:
                raise CommandError(f"{exc.code}: {exc.message}") from exc
            self.stdout.write(f"written to {output}")
        else:
            self.stdout.write("files kept in the blob store (KILN_STORAGE_BACKEND); --output writes a copy")
        if options["export"]:
            self._export(generated, user, options, output)

    def _export(self, generated: GeneratedProject, user: Any, options: dict[str, Any], output: Path | None) -> None:
        provider, *rest = options["export"]
        data: dict[str, Any] = {"provider": provider}
        if provider == "git":
            if len(rest) != 1:
                raise CommandError("--export git needs the remote URL: --export git https://host/owner/repo.git")
            data.update(remote_url=rest[0], branch=options["branch"])
        elif provider not in ("zip", "tar.gz") or rest:
            raise CommandError("--export takes `zip`, `tar.gz` or `git URL`")
        started = time.monotonic()
        try:
            export = repository_export_start(generated=generated, data=data, actor=user)
        except ApplicationError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        export = self._wait(export, options["timeout"])
        if export.status != "completed":
            error = export.error or {}
            raise CommandError(f"export {export.pk} {export.status}: {error.get('code')}: {error.get('message')}")
        elapsed = time.monotonic() - started
        if export.archive_sha256:
            archive = repository_export_archive(export)
            default = (
                f"{output}.{provider}" if output is not None else f"{generated.project.slug}-{generated.pk}.{provider}"
            )
            target = Path(options["archive_output"] or default).resolve()
            with blob_store().open(archive.sha256, size=archive.size) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            self.stdout.write(
                f"exported #{export.pk} as {provider}: {export.archive_size} bytes, sha256 {export.archive_sha256} "
                f"in {elapsed:.2f}s -> {target}"
            )
        else:
            verb = "pushed" if export.pushed else "already on the remote"
            self.stdout.write(
                f"exported #{export.pk} to {export.remote_url} ({export.branch}): commit {export.commit_sha}, "
                f"{verb}, in {elapsed:.2f}s"
            )

    def _wait(self, job: J, timeout: float) -> J:
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            job.refresh_from_db()
            if job.status in TERMINAL_STATUSES:
                return job
            if time.monotonic() > deadline:
                raise CommandError(f"{type(job).__name__} {job.pk} still {job.status} after {timeout:.0f}s")
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)
