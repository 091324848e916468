"""Kiln's main job from the shell: generate a project from a template and export it.

Runs the same service, task and step executor as the API. On the embedded default
(no CELERY_BROKER_URL) the task runs in-process; with a broker the command waits for a
worker to finish it.
"""

from __future__ import annotations

import gc
import os
import shutil
import time
from pathlib import Path
from typing import Any, TypeVar

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.projects.management.commands._parameters import json_type, value_from_text
from apps.projects.management.commands._sources import recognise
from apps.projects.models import GeneratedProject, Project
from apps.projects.services.exports import repository_export_archive, repository_export_check, repository_export_start
from apps.projects.services.generation import generated_project_copy_to, generated_project_start
from apps.projects.services.projects import project_create
from apps.storage.blobs import blob_store
from apps.templates.services.catalog import template_sync_builtin
from apps.templates.services.versions import version_for_generation, versions_of
from core.exceptions import ApplicationError
from core.jobs import TERMINAL_STATUSES, Job
from core.json_schema import json_shown
from core.values import UntrustedValueError, load_untrusted_json

J = TypeVar("J", bound=Job)


def command_error(exc: ApplicationError) -> CommandError:
    """A service's coded error as the command's: `code: message`, then one line per field error."""
    fields = exc.extra.get("fields") if isinstance(exc.extra, dict) else None
    lines = [f"{exc.code}: {exc.message}"]
    if isinstance(fields, dict):
        for key, messages in fields.items():
            for message in messages if isinstance(messages, list) else [messages]:
                if f"{key}: {message}" not in exc.message:  # the message names the first one
                    lines.append(f"  {key}: {message}")
    return CommandError("\n".join(lines))


class Command(BaseCommand):
    help = (
        "Generate a project from a template (a catalog slug, a local folder, a .zip/.tar.gz archive or a git "
        "repository) "
        "with parameters, write it to a folder and optionally export it."
    )
    # A runtime job, like a worker's: Django's system checks (models, admin, the whole URL
    # conf and API views) are for `check`/`migrate`/`runserver`, and would import the web
    # stack into every generation (~0.2 s).
    requires_system_checks: list[str] = []

    def add_base_argument(self, parser: CommandParser, *args: Any, **kwargs: Any) -> None:
        if "--version" not in args:  # here --version is the template's version, not Django's
            super().add_base_argument(parser, *args, **kwargs)

    def run_from_argv(self, argv: list[str]) -> None:
        # Run as a process's own command (not through call_command): Django's start-up
        # objects live until exit, so keep the garbage collector from re-scanning them on
        # every full collection while thousands of files are compiled and rendered.
        gc.freeze()
        super().run_from_argv(argv)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--template",
            help="a catalog slug, a local folder, a .zip/.tar.gz archive (`./name` forces a folder), or a git "
            "repository (https://..., gh:owner/repo, gl:group/repo); a folder or archive is registered as an "
            "uploaded template (a new version of it) on the way, a repository as a git template (synced)",
        )
        parser.add_argument(
            "--version",
            help="the template version to generate (default: the latest); with a folder or archive, the label "
            "it is registered as (needed for Cookiecutter/Copier; a native template.yaml's own must agree)",
        )
        parser.add_argument("--vcs-ref", help="git: the branch or tag to read versions from (default branch)")
        parser.add_argument("--subdirectory", help="git: the template's folder inside the repository")
        parser.add_argument("--git-connection", help="git: id of the --user's connection to a private repository")
        parser.add_argument(
            "--slug",
            help="the slug to register a folder, archive or repository as (needed for Cookiecutter/Copier "
            "folders and archives; git default: the repository's name)",
        )
        parser.add_argument("--list", action="store_true", help="list the templates and their parameters, then exit")
        parser.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="a parameter; VALUE is text where the parameter's schema type is string, JSON otherwise "
            "(--set python_version=3.12 --set port=8000 --set ci=false --set tags='[\"a\"]')",
        )
        parser.add_argument("--params", help="all parameters as one JSON object (--set applies on top)")
        parser.add_argument("--output", help="copy the generated files to this folder (must not exist or be empty)")
        parser.add_argument("--project", default="cli", help="project name to generate into (created if missing)")
        parser.add_argument("--user", default="kiln-cli", help="user acting (created if missing)")
        parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for a worker")
        parser.add_argument("--no-sync", action="store_true", help="do not sync built-in templates first")
        parser.add_argument(
            "--export",
            nargs="+",
            metavar="PROVIDER [URL]",
            help="then export: `zip`, `tar.gz`, `git URL` (an https:// or, where allowed, file:// remote), "
            "or `github`/`gitlab` with --connection and --export-body",
        )
        parser.add_argument("--branch", help="branch for a git export (default: main)")
        parser.add_argument("--connection", help="id of the --user's provider connection, for github/gitlab exports")
        parser.add_argument(
            "--export-body",
            metavar="JSON",
            help='more of the export body, as in the API (e.g. \'{"repository": {"name": "demo"}}\')',
        )
        parser.add_argument(
            "--archive-output",
            help="write the zip/tar.gz here (default: next to --output, else <project>-<id>.<ext> here)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["list"]:
            call_command("list_templates", no_sync=options["no_sync"], stdout=self.stdout)
            return
        if not options["template"]:
            raise CommandError("--template is required: a slug (`manage.py list_templates`), a folder or an archive")
        # Every argument is checked before anything is registered, generated or created.
        parameters = _read_params(options["params"])
        assignments = _read_sets(options["set"])
        output = _check_output(options["output"])
        export_body = self._check_export(options) if options["export"] else None
        if options["archive_output"] and not export_body:
            raise CommandError("--archive-output goes with --export zip or --export tar.gz")
        source = recognise(options["template"], options)

        if not options["no_sync"]:
            template_sync_builtin()
        user = _user(options["user"], create=True)
        try:
            template = source.resolve(source, user, options, self.stdout.write)
            if source.kind != "slug":
                labels = ", ".join(versions_of(template).values_list("version", flat=True)[:10])
                self.stdout.write(f"template {template.slug} from {source.kind} {source.text}: versions {labels}")
            pinned = version_for_generation(template, options["version"])
        except ApplicationError as exc:
            raise command_error(exc) from None
        for name, text in assignments:
            parameters[name] = value_from_text(name, text, pinned.parameters or {})
        project = Project.objects.filter(name=options["project"], memberships__user=user).first()
        if project is None:
            project = project_create(owner=user, name=options["project"])

        started = time.monotonic()
        try:
            generated = generated_project_start(
                project=project, template_slug=template.slug, parameters=parameters, actor=user, version=pinned.version
            )
        except ApplicationError as exc:
            raise command_error(exc) from None
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
                raise command_error(exc) from None
            self.stdout.write(f"written to {output}")
        else:
            self.stdout.write("files kept in the blob store (KILN_STORAGE_BACKEND); --output writes a copy")
        if export_body is not None:
            self._export(generated, user, export_body, options, output)

    def _check_export(self, options: dict[str, Any]) -> dict[str, Any]:
        """The export body from --export/--branch/--connection/--export-body, checked by the export
        service (provider, connection, target, remote URL) before any work."""
        provider, *rest = options["export"]
        body: dict[str, Any] = {}
        if options["export_body"]:
            body = _read_json_object("--export-body", options["export_body"])
        body["provider"] = provider
        if len(rest) > 1:
            raise CommandError(f"--export takes a provider and at most one URL, got {' '.join(options['export'])!r}")
        if rest:
            body["remote_url"] = rest[0]
        if options["branch"]:
            body["branch"] = options["branch"]
        if options["connection"]:
            body["connection"] = options["connection"]
        try:
            repository_export_check(data=body, actor=_user(options["user"], create=False))
        except ApplicationError as exc:
            raise CommandError(f"--export: {command_error(exc)}") from None
        if options["archive_output"]:
            target = Path(options["archive_output"]).expanduser().resolve()
            if target.is_dir() or not target.parent.is_dir():
                raise CommandError(f"--archive-output {str(target)!r}: not a file in an existing folder")
        return body

    def _export(
        self, generated: GeneratedProject, user: Any, data: dict[str, Any], options: dict[str, Any], output: Path | None
    ) -> None:
        provider = data["provider"]
        started = time.monotonic()
        try:
            export = repository_export_start(generated=generated, data=data, actor=user)
        except ApplicationError as exc:
            raise command_error(exc) from None
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


def _read_json_object(option: str, text: str) -> dict[str, Any]:
    try:
        value = load_untrusted_json(text)
    except UntrustedValueError as exc:
        raise CommandError(f"{option} is not valid JSON: {exc.message.removeprefix('JSON parse error - ')}") from None
    if not isinstance(value, dict):
        raise CommandError(f"{option} must be a JSON object ({{...}}), not {json_type(value)} {json_shown(value, 60)}")
    return value


def _read_params(text: str | None) -> dict[str, Any]:
    return _read_json_object("--params", text) if text else {}


def _read_sets(items: list[str]) -> list[tuple[str, str]]:
    """(name, text) of each --set; the text is read by the parameter's type once the template is known."""
    pairs = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise CommandError(f"--set expects NAME=VALUE, got {item!r}")
        pairs.append((name.strip(), value))
    return pairs


def _check_output(text: str | None) -> Path | None:
    if not text:
        return None
    output = Path(text).expanduser().resolve()
    if output.exists() and not output.is_dir():
        raise CommandError(f"--output {str(output)!r} is a file, not a folder")
    if output.is_dir() and any(output.iterdir()):
        raise CommandError(f"{output} exists and is not empty")
    # missing folders are made, as copier and cookiecutter make their destination; the nearest
    # existing one must be a folder this process may write in
    existing = output.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise CommandError(f"--output {str(output)!r}: {str(existing)!r} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CommandError(f"--output {str(output)!r}: the folder {str(existing)!r} is not writable")
    return output


def _user(username: str, *, create: bool) -> Any:
    user_model = get_user_model()
    if not create:
        return user_model.objects.filter(username=username).first()
    user, created = user_model.objects.get_or_create(username=username)
    if created:
        user.set_unusable_password()
        user.save()
    return user
