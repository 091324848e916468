"""The bench's in-process half: commands that run inside a Django process with the bench's environment.

`bench/run.py` starts `python -m bench.kiln_side COMMAND ...` with `bench.common.kiln_env` (its own
SQLite DB, template, cache and output folders; or a throwaway PostgreSQL database for the API
section) and reads the JSON result from the last `BENCH-RESULT` line. Nothing here changes Kiln:
templates are registered through Kiln's own service functions (`scan_template` + `_upsert`), and
generations and exports run through Kiln's services exactly as the CLI and the workers do.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import synth
from bench.common import REPO, discard, emit, remove


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings.local")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import django

    django.setup()


def _peak_rss_mib() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mib() -> float:
    try:
        import psutil

        return float(psutil.Process().memory_info().rss) / (1024 * 1024)
    except ImportError:  # pragma: no cover - psutil is in requirements/bench.txt
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


# --- catalog and users -----------------------------------------------------------------------------


def _register(source_paths: list[str]) -> dict[str, Any]:
    """Register templates below KILN_TEMPLATES_DIR through Kiln's catalog services, each as its
    format (the synthetic Copier and Cookiecutter folders as `synth.foreign_slug`)."""
    from django.conf import settings

    from apps.templates.models import TemplateSource
    from apps.templates.services import formats
    from apps.templates.services.catalog import _upsert, scan_template
    from apps.templates.services.versions import version_record_described

    registered: dict[str, Any] = {}
    for source_path in source_paths:
        folder = Path(settings.KILN_TEMPLATES_DIR) / source_path
        fmt = formats.detect(folder).id
        if fmt == "native":
            template = _upsert(scan_template(folder), source=TemplateSource.UPLOAD, source_path=source_path, user=None)
        else:
            n = int(source_path.split("/")[0].lstrip("n"))
            template = version_record_described(
                folder=folder,
                described=formats.describe(folder, fmt),
                slug=synth.foreign_slug(n, fmt),
                label=synth.TEMPLATE_VERSION,
                source=TemplateSource.UPLOAD,
                source_path=source_path,
                name=f"Bench synthetic {fmt} template ({n} files)",
                store_blobs=False,
            ).template
        registered[template.slug] = {"checksum": template.checksum, "files": template.file_count}
    return registered


def _user_and_project(username: str, *, password: str | None = None) -> tuple[Any, Any]:
    from django.contrib.auth import get_user_model

    from apps.projects.models import Project
    from apps.projects.services.projects import project_create

    user, created = get_user_model().objects.get_or_create(username=username)
    if created or password:
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save()
    project = Project.objects.filter(name=username, memberships__user=user).first()
    if project is None:
        project = project_create(owner=user, name=username)
    return user, project


def cmd_setup(args: argparse.Namespace) -> dict[str, Any]:
    """Migrate this run's database and register the synthetic templates."""
    _setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    return {"templates": _register(args.source_paths)}


def _template(slug: str) -> Any:
    from apps.templates.services.catalog import template_get

    return template_get(slug=slug)


def _generate(user: Any, project: Any, slug: str) -> Any:
    """One generation through the service, executed in-process (eager Celery) as the CLI does."""
    from apps.projects.services.generation import generated_project_start

    generated = generated_project_start(project=project, template_slug=slug, parameters={}, actor=user)
    generated.refresh_from_db()
    if generated.status != "completed":
        raise RuntimeError(f"generation {generated.pk} ended {generated.status}: {generated.error}")
    return generated


# --- throughput and memory -------------------------------------------------------------------------


class _DirSink:
    """A directory sink as the generation service uses (Kiln's SafeWriter: O_NOFOLLOW | O_EXCL)."""

    def __init__(self, root: Path) -> None:
        from core.safe_paths import SafeWriter

        root.mkdir(parents=True)
        self.writer = SafeWriter(root)

    def add(self, path: str, data: bytes, mode: int, sha256: str) -> None:
        self.writer.write(path, data, mode)


def cmd_throughput(args: argparse.Namespace) -> dict[str, Any]:
    """Warm in-process throughput of the generator: render only, and render + write."""
    _setup_django()
    from django.conf import settings

    from apps.projects.services.generation import _prepared, parameters_validate
    from apps.projects.services.project_generator import NullSink, ProjectGenerator

    template = _template(args.slug)
    values = parameters_validate(template=template, parameters={})
    started = time.perf_counter()
    prepared = _prepared(template)
    prepare_s = time.perf_counter() - started
    generator = ProjectGenerator(prepared)
    started = time.perf_counter()
    first = generator.render(values, NullSink())
    first_s = time.perf_counter() - started
    scratch = Path(args.scratch)
    remove(scratch)
    fast = Path(args.fast_scratch) if args.fast_scratch else None
    null_s: list[float] = []
    write_s: list[float] = []
    fast_s: list[float] = []

    def into(folder: Path, samples: list[float]) -> None:
        gc.collect()
        started = time.perf_counter()
        generator.render(values, _DirSink(folder))
        samples.append(time.perf_counter() - started)
        discard(folder)  # deleting now would slow the next writes down (see bench.common.discard)

    for run in range(args.runs):
        gc.collect()
        started = time.perf_counter()
        result = generator.render(values, NullSink())
        null_s.append(time.perf_counter() - started)
        assert result.content_sha256 == first.content_sha256
        into(scratch / f"r{run}", write_s)
        if fast is not None:
            into(fast / f"r{run}", fast_s)
    remove(scratch)
    if fast is not None:
        remove(fast)
    return {
        "files": first.file_count,
        "bytes": first.total_bytes,
        "prepare_s": prepare_s,
        "first_render_s": first_s,
        "render_s": null_s,
        "render_write_s": write_s,
        "render_write_tmpfs_s": fast_s,
        "memory_cache_files": settings.KILN_TEMPLATE_MEMORY_CACHE_FILES,
        "compiled_in_memory": len(getattr(prepared, "_compiled", ())),  # native templates: code kept in memory
    }


def cmd_memory(args: argparse.Namespace) -> dict[str, Any]:
    """Peak RSS of one fresh process running one whole generation job in-process (as a worker does)."""
    _setup_django()
    from django.conf import settings

    user, project = _user_and_project("bench-memory")
    _template(args.slug)
    gc.collect()
    baseline = _peak_rss_mib()
    baseline_now = _current_rss_mib()
    started = time.perf_counter()
    generated = _generate(user, project, args.slug)
    elapsed = time.perf_counter() - started
    peak = _peak_rss_mib()
    return {
        "files": generated.file_count,
        "baseline_peak_mib": baseline,
        "baseline_rss_mib": baseline_now,
        "peak_mib": peak,
        "seconds": elapsed,
        "cache_dir_entries": len(list(Path(settings.KILN_TEMPLATE_CACHE_DIR).glob("*.code"))),
    }


def cmd_service_time(args: argparse.Namespace) -> dict[str, Any]:
    """The API section's baseline: warm in-process render + write of the same template (no queue, no HTTP)."""
    result = cmd_throughput(args)
    return {"render_write_s": result["render_write_s"], "files": result["files"]}


# --- whole-process profile ------------------------------------------------------------------------

# Functions whose inclusive time the profile summary reports (outermost occurrence only).
PROFILE_BUCKETS: list[tuple[str, str, str]] = [
    ("django.setup() (imports, app registry)", "django/__init__.py", "setup"),
    ("generate_project: Command.handle (all)", "generate_project.py", "handle"),
    ("  generated_project_start (incl. the eager job)", "generation.py", "generated_project_start"),
    ("    generated_project_execute (the job)", "generation.py", "generated_project_execute"),
    ("      prepare_template (scan, sniff, compile/load)", "project_generator.py", "prepare_template"),
    ("        iter_template_files (walk + stat)", "templates.py", "iter_template_files"),
    ("        PreparedTemplate._compile_path (templated path segments)", "project_generator.py", "_compile_path"),
    ("        PreparedTemplate._compile_contents (content templates)", "project_generator.py", "_compile_contents"),
    ("          waiting for the compile helpers' share", "parallel_compile.py", "result"),
    ("        Jinja compile, paths + contents (Environment.compile)", "jinja2/environment.py", "compile"),
    ("        compiled-code store reads (CompiledCodeStore.get)", "code_store.py", "get"),
    ("        compiled-code store write (StoreWriter.__exit__ + add)", "code_store.py", "add"),
    ("      ProjectGenerator.render (all files)", "project_generator.py", "render"),
    ("        _render_content (Jinja)", "project_generator.py", "_render_content"),
    ("        _render_path", "project_generator.py", "_render_path"),
    ("        storing new blobs (_BlobSink.add, BlobWriter)", "generation.py", "add"),
    ("      ProjectFile rows (insert_many)", "projects/models.py", "insert_many"),
    ("  --output copy (generated_project_copy_to)", "generation.py", "generated_project_copy_to"),
]


def _bucket_times(frame: Any) -> list[tuple[str, float]]:
    totals = dict.fromkeys((label for label, _, _ in PROFILE_BUCKETS), 0.0)

    def walk(node: Any, active: frozenset[str]) -> None:
        now = active
        for label, file_part, function in PROFILE_BUCKETS:
            if label in active:
                continue
            if node.function == function and file_part in (node.file_path or ""):
                totals[label] += node.time
                now = now | {label}
        for child in node.children:
            walk(child, now)

    walk(frame, frozenset())
    return list(totals.items())


def cmd_profile_cli(args: argparse.Namespace) -> dict[str, Any]:
    """Run `manage.py generate_project ...` under pyinstrument in this process; save text + summary."""
    import runpy

    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005)
    started = time.perf_counter()
    profiler.start()
    sys.argv = ["manage.py", "generate_project", *json.loads(args.cli_args)]
    runpy.run_path(str(REPO / "manage.py"), run_name="__main__")  # as the timed runs: manage.py's own start-up
    session = profiler.stop()
    wall = time.perf_counter() - started
    Path(args.text_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.text_out).write_text(profiler.output_text(unicode=True, color=False, show_all=False))
    root = session.root_frame()
    buckets = _bucket_times(root) if root is not None else []
    # Writing the report is not part of the profiled run; the driver subtracts it.
    return {"profiled_s": wall, "report_s": time.perf_counter() - started - wall, "buckets": buckets}


# --- exports ---------------------------------------------------------------------------------------


def _git_env() -> dict[str, str]:
    """The git CLI baseline: isolated from the machine's config, with an identity."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_AUTHOR_NAME="Bench",
        GIT_AUTHOR_EMAIL="bench@example.invalid",
        GIT_COMMITTER_NAME="Bench",
        GIT_COMMITTER_EMAIL="bench@example.invalid",
        GIT_TERMINAL_PROMPT="0",
    )
    return env


def _sh(command: str, *, cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(["sh", "-c", command], cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = call()
    return time.perf_counter() - started, value


ARCHIVE_TOOLS = (("zip", "zip -qr", "zip -qr {out} ."), ("tar.gz", "tar czf", "tar czf {out} ."))
GIT_CLI_BUILD = "git init -q -b main && git add -A && git commit -q -m 'Initial commit'"


class _ExportBench:
    """One generated project exported by Kiln and by the CLI tools, round after round."""

    def __init__(self, slug: str, scratch: Path) -> None:
        from django.conf import settings

        from apps.projects.services.generation import generated_project_copy_to

        self.user, self.project = _user_and_project("bench-export")
        self.generated = _generate(self.user, self.project, slug)
        self.scratch = scratch
        discard(scratch)
        scratch.mkdir(parents=True)
        # the CLI tools work on a tree: the generation's files written out once (Kiln reads its blobs)
        self.files_root = scratch / "tree"
        generated_project_copy_to(generated=self.generated, destination=self.files_root)
        self.git_env = _git_env()
        self.git = settings.KILN_GIT_BINARY
        self.message = f"Initial commit from Kiln template {slug}\n"
        self.timestamp = int(self.generated.finished_at.timestamp())
        self.archive_bytes: dict[str, int] = {}

    def bare(self, name: str) -> str:
        path = self.scratch / name
        discard(path)
        subprocess.run([self.git, "init", "-q", "--bare", str(path)], check=True, env=self.git_env, capture_output=True)
        return f"file://{path}"

    def fresh_tree(self) -> Path:
        tree = self.scratch / "cli-tree"
        discard(tree)
        shutil.copytree(self.files_root, tree)
        return tree

    def kiln_build(self, git_dir: Path) -> str:
        """What the git providers do: the recorded files (one query) into `git fast-import`."""
        from apps.projects.services.gitops import build_commit
        from apps.projects.services.stored_files import generation_files, read_sources

        return build_commit(
            files=generation_files(self.generated.pk),
            read_many=read_sources,
            git_dir=git_dir,
            branch="main",
            message=self.message,
            timestamp=self.timestamp,
        )

    def kiln_push(self, git_dir: Path, url: str, commit: str) -> None:
        from apps.projects.services.gitops import push_commit

        push_commit(git_dir=git_dir, url=url, branch="main", commit=commit, auth=None)

    def kiln_job(self, data: dict[str, Any]) -> Any:
        """A whole export job through the service (validate, record, run eagerly, finish)."""
        from apps.projects.services.exports import repository_export_start

        export = repository_export_start(generated=self.generated, data=data, actor=self.user)
        export.refresh_from_db()
        if export.status != "completed":
            raise RuntimeError(f"export {export.provider} ended {export.status}: {export.error}")
        return export

    def kiln_writer(self, provider: str) -> float:
        """Only the provider's archive writer (no job, no DB bookkeeping), for the diagnosis."""
        from apps.projects.models import RepositoryExport
        from apps.projects.services.repository_exporter import ExportContext, get_provider

        export = RepositoryExport(generated=self.generated, provider=provider)
        ctx = ExportContext(
            export=export,
            generated=self.generated,
            workspace=self.scratch,
            connection=None,
            token=None,
            record=lambda **fields: None,
            heartbeat=lambda: None,
        )
        writer: Any = get_provider(provider)
        out = self.scratch / f"writer.{provider}"
        discard(out)
        started = time.perf_counter()
        writer.write(ctx, out)
        elapsed = time.perf_counter() - started
        discard(out)
        return elapsed

    def round(self) -> dict[str, float]:

        timings: dict[str, float] = {}
        kiln_repo = self.scratch / "kiln-repo.git"
        discard(kiln_repo)
        timings["kiln git build+commit"], commit = _timed(lambda: self.kiln_build(kiln_repo))
        tree = self.fresh_tree()
        timings["git init && git add -A && git commit"] = _sh(GIT_CLI_BUILD, cwd=tree, env=self.git_env)

        url = self.bare("kiln-remote.git")
        timings["kiln git push"], _ = _timed(lambda: self.kiln_push(kiln_repo, url, commit))
        url = self.bare("cli-remote.git")
        timings["git push"] = _sh(f"git push -q {url} main", cwd=tree, env=self.git_env)

        url = self.bare("kiln-job-remote.git")
        job = {"provider": "git", "remote_url": url, "branch": "main"}
        timings["kiln git export job"], _ = _timed(lambda: self.kiln_job(job))
        tree = self.fresh_tree()
        url = self.bare("cli-job-remote.git")
        timings["git init+add+commit+push"] = _sh(
            f"{GIT_CLI_BUILD} && git push -q {url} main", cwd=tree, env=self.git_env
        )

        for provider, label, command in ARCHIVE_TOOLS:
            data = {"provider": provider}
            timings[f"kiln {provider} export job"], export = _timed(functools.partial(self.kiln_job, data))
            self.archive_bytes[f"kiln {provider} export job"] = int(export.archive_size or 0)
            timings[f"kiln {provider} writer only"] = self.kiln_writer(provider)
            if shutil.which(label.split()[0]) is None:
                continue  # the CLI is not installed: no baseline for this archive format
            out = self.scratch / f"cli.{provider}"
            discard(out)
            timings[label] = _sh(command.format(out=out), cwd=self.files_root, env=self.git_env)
            self.archive_bytes[label] = out.stat().st_size
            discard(out)
        for name in ("kiln-repo.git", "kiln-remote.git", "cli-remote.git", "kiln-job-remote.git", "cli-job-remote.git"):
            discard(self.scratch / name)
        discard(tree)
        return timings

    def close(self) -> None:  # after the last round
        remove(self.scratch)


def cmd_exports(args: argparse.Namespace) -> dict[str, Any]:
    """Kiln's exports (in-process, as a worker runs them) against the CLI tools, alternating per round."""
    _setup_django()
    bench = _ExportBench(args.slug, Path(args.scratch))
    samples: dict[str, list[float]] = {}
    try:
        for run in range(args.runs + 1):
            timings = bench.round()
            if run > 0:  # round 0 is the warm-up
                for name, value in timings.items():
                    samples.setdefault(name, []).append(value)
    finally:
        bench.close()
    return {"files": bench.generated.file_count, "samples": samples, "archive_bytes": bench.archive_bytes}


# --- storage: the blob store on the configured backend -------------------------------------------

STORAGE_REAL = "django-rest-service"  # a real template: most of its files do not depend on the parameters


def cmd_storage(args: argparse.Namespace) -> dict[str, Any]:
    """Generations and zip exports on the backend this process is configured with (KILN_STORAGE_BACKEND),
    and the bytes the blob store keeps for many generations of one template with different parameters."""
    _setup_django()
    from django.conf import settings
    from django.db.models import Sum
    from django.db.models.functions import Coalesce

    from apps.projects.models import ProjectFile
    from apps.projects.services.exports import repository_export_start
    from apps.projects.services.generation import generated_project_start
    from apps.storage.blobs import EMPTY_SHA256
    from apps.storage.models import Blob
    from apps.templates.services.catalog import template_sync_builtin

    template_sync_builtin()
    user, project = _user_and_project("bench-storage")

    def generate(slug: str, parameters: dict[str, Any]) -> tuple[float, Any]:
        started = time.perf_counter()
        generated = generated_project_start(project=project, template_slug=slug, parameters=parameters, actor=user)
        elapsed = time.perf_counter() - started
        generated.refresh_from_db()
        if generated.status != "completed":
            raise RuntimeError(f"generation {generated.pk} ended {generated.status}: {generated.error}")
        return elapsed, generated

    def real(i: int) -> dict[str, Any]:
        return {"project_name": f"service-{i:03d}", "description": f"Service number {i}, made by the bench."}

    def synthetic(i: int) -> dict[str, Any]:
        return {"project_name": f"Bench Project {i}", "author": f"Author {i}"}

    result: dict[str, Any] = {"backend": settings.KILN_STORAGE_BACKEND, "samples": {}}
    samples = result["samples"]
    generate(STORAGE_REAL, real(10_000))  # warm-up: template prepared, the shared files stored
    generate(args.slug, synthetic(10_000))
    for i in range(args.runs):
        samples.setdefault(f"generate {STORAGE_REAL}", []).append(generate(STORAGE_REAL, real(i))[0])
    exported = []
    for i in range(args.runs):
        seconds, generated = generate(args.slug, synthetic(i))  # every text file differs: all new blobs
        samples.setdefault(f"generate {args.slug} (new parameters)", []).append(seconds)
        exported.append(generated)
    for i in range(args.runs):
        seconds, _ = generate(args.slug, synthetic(i))  # the same parameters again: every blob known
        samples.setdefault(f"generate {args.slug} (same parameters)", []).append(seconds)
    for generated in exported:
        started = time.perf_counter()
        export = repository_export_start(generated=generated, data={"provider": "zip"}, actor=user)
        samples.setdefault(f"zip export {args.slug}", []).append(time.perf_counter() - started)
        export.refresh_from_db()
        if export.status != "completed":
            raise RuntimeError(f"export {export.pk} ended {export.status}: {export.error}")
    result["files"] = {args.slug: exported[0].file_count}

    # dedupe: N generations of the real template with different parameters
    ids = [generate(STORAGE_REAL, real(20_000 + i))[1].pk for i in range(args.dedupe)]
    rows = ProjectFile.objects.filter(generated_id__in=ids)
    logical = int(rows.aggregate(total=Sum("size"))["total"] or 0)
    distinct = set(rows.values_list("sha256", flat=True))
    distinct.discard(EMPTY_SHA256)  # never stored
    blobs = Blob.objects.filter(sha256__in=distinct)
    content = int(blobs.aggregate(total=Sum("size"))["total"] or 0)
    stored = int(blobs.aggregate(total=Sum(Coalesce("stored_size", "size")))["total"] or 0)
    result["dedupe"] = {
        "template": STORAGE_REAL,
        "generations": args.dedupe,
        "files": rows.count(),
        "logical_bytes": logical,
        "distinct_blobs": len(distinct),
        "distinct_bytes": content,  # once per content (dedupe alone)
        "stored_bytes": stored,  # what the storage holds for them (compressed where that pays)
        "compressed_blobs": blobs.filter(encoding="zlib").count(),
    }
    result["files"][STORAGE_REAL] = rows.count() // max(args.dedupe, 1)
    return result


# --- API: fixtures, query counts -------------------------------------------------------------------


def cmd_api_setup(args: argparse.Namespace) -> dict[str, Any]:
    """Migrate the throwaway PostgreSQL database, register the template, create the API user."""
    _setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    registered = _register(args.source_paths)
    user, project = _user_and_project(args.username, password=args.password)
    return {"templates": registered, "user_id": user.pk, "project_id": project.pk}


def cmd_querycounts(args: argparse.Namespace) -> dict[str, Any]:
    _setup_django()
    from bench.api_queries import count_list_queries

    return count_list_queries(rows=args.rows, page_sizes=[int(p) for p in args.page_sizes.split(",")])


# --- updates (issue 16) ----------------------------------------------------------------------------


def cmd_update_setup(args: argparse.Namespace) -> dict[str, Any]:
    """Record the two Copier-format versions of the git template, adopt the project (its answers
    file names the template and version), return the adopted generation."""
    _setup_django()
    from django.conf import settings
    from django.core.management import call_command

    from apps.templates.models import TemplateSource
    from apps.templates.services import formats
    from apps.templates.services.versions import version_record_described
    from apps.updates.services.adoptions import adoption_execute, adoption_start

    call_command("migrate", verbosity=0, interactive=False)
    for label in ("1.0.0", "2.0.0"):
        source_path = f"{args.versions}/{label}"
        folder = Path(settings.KILN_TEMPLATES_DIR) / source_path
        version_record_described(
            folder=folder,
            described=formats.describe(folder),
            slug=args.slug,
            label=label,
            source=TemplateSource.GIT,
            source_path=source_path,
            template_fields={"git_url": args.git_url},
            store_blobs=False,
        )
    user, project = _user_and_project("bench-updates")
    adoption = adoption_start(
        project=project, data={"provider": "git", "remote_url": args.remote}, actor=user, enqueue=False
    )
    adoption = adoption_execute(adoption_id=adoption.pk, owner="bench:adopt")
    if adoption.status != "completed":
        raise RuntimeError(f"adoption ended {adoption.status}: {adoption.error}")
    return {"generated": adoption.generated_id, "version": adoption.version}


def cmd_update(args: argparse.Namespace) -> dict[str, Any]:
    """One update, start to pushed branch, in this process (what the bench times, whole process);
    with --text-out, under pyinstrument (Django's set-up included), its text report written there."""
    if args.text_out:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
        try:
            result = _update(args)
        finally:
            profiler.stop()
        Path(args.text_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.text_out).write_text(profiler.output_text(unicode=True, color=False, show_all=False))
        return result
    return _update(args)


def _update(args: argparse.Namespace) -> dict[str, Any]:
    _setup_django()
    from apps.projects.models import GeneratedProject
    from apps.updates.services.updates import update_execute, update_start

    generated = GeneratedProject.objects.select_related("project").get(pk=args.generated)
    user = generated.created_by
    update, _ = update_start(
        generated=generated, data={"mode": "branch", "to_version": args.to}, actor=user, enqueue=False
    )
    update = update_execute(update_id=update.pk, owner="bench:update")
    return {
        "update": update.pk,
        "status": update.status,
        "outcome": update.outcome,
        "error": update.error,
        "branch": update.branch,
        "commit": update.commit_sha,
        "conflicts": update.conflicts,
    }


def cmd_update_reset(args: argparse.Namespace) -> dict[str, Any]:
    """Forget the earlier updates of the generation and the generations they rendered (so the next
    update renders again and builds its commit afresh)."""
    _setup_django()
    from apps.projects.models import GeneratedProject
    from apps.updates.models import TemplateUpdate

    rows = TemplateUpdate.objects.filter(generated_id=args.generated)
    rendered = list(rows.exclude(new_generation=None).values_list("new_generation_id", flat=True))
    rows.delete()
    GeneratedProject.objects.filter(pk__in=rendered).delete()
    return {"removed": len(rendered)}


# --- entry point -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.kiln_side", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("setup")
    p.add_argument("source_paths", nargs="+")
    p.set_defaults(func=cmd_setup)

    for name, func in (("throughput", cmd_throughput), ("service-time", cmd_service_time)):
        p = sub.add_parser(name)
        p.add_argument("--slug", required=True)
        p.add_argument("--runs", type=int, default=5)
        p.add_argument("--scratch", required=True)
        p.add_argument("--fast-scratch", help="a second output folder on a tmpfs (render + write without the disk)")
        p.set_defaults(func=func)

    p = sub.add_parser("memory")
    p.add_argument("--slug", required=True)
    p.set_defaults(func=cmd_memory)

    p = sub.add_parser("profile-cli")
    p.add_argument("--text-out", required=True)
    p.add_argument("--cli-args", required=True, help="JSON list of generate_project arguments")
    p.set_defaults(func=cmd_profile_cli)

    p = sub.add_parser("exports")
    p.add_argument("--slug", required=True)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--scratch", required=True)
    p.set_defaults(func=cmd_exports)

    p = sub.add_parser("storage")
    p.add_argument("--slug", required=True)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--dedupe", type=int, default=50)
    p.set_defaults(func=cmd_storage)

    p = sub.add_parser("api-setup")
    p.add_argument("--username", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("source_paths", nargs="+")
    p.set_defaults(func=cmd_api_setup)

    p = sub.add_parser("querycounts")
    p.add_argument("--rows", type=int, default=105)
    p.add_argument("--page-sizes", default="10,100")
    p.set_defaults(func=cmd_querycounts)

    p = sub.add_parser("update-setup")
    p.add_argument("--slug", required=True)
    p.add_argument("--versions", required=True, help="folder below KILN_TEMPLATES_DIR holding 1.0.0/ and 2.0.0/")
    p.add_argument("--git-url", required=True)
    p.add_argument("--remote", required=True)
    p.set_defaults(func=cmd_update_setup)

    p = sub.add_parser("update")
    p.add_argument("--generated", type=int, required=True)
    p.add_argument("--to", required=True)
    p.add_argument("--text-out", help="profile the update with pyinstrument, its report here")
    p.set_defaults(func=cmd_update)

    p = sub.add_parser("update-reset")
    p.add_argument("--generated", type=int, required=True)
    p.set_defaults(func=cmd_update_reset)

    args = parser.parse_args(argv)
    result = args.func(args)
    result.setdefault("pid", os.getpid())
    emit(result)


if __name__ == "__main__":
    main()
