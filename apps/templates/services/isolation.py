"""The isolation runner: the ONE place where code written by a template's author runs.

Cookiecutter hooks, Copier `_tasks` (and, for updates, `_migrations`) are commands. Kiln never
runs them in its own processes: each run is a `bubblewrap` sandbox (Debian package
`bubblewrap`) with

* no network (a new network namespace: only a loopback that is down), no other namespaces
  shared (pid, ipc, uts, cgroup, user), no capabilities, no new user namespaces inside;
* a file system made of the host's `/usr` read-only, a generated `/etc` (passwd, group, hosts),
  fresh `/proc`, `/dev` and a small `/tmp`; the template read-only at `/template`; and the
  project as the only writable place: a size-capped tmpfs at `/output/<project>` holding a
  copy of the files rendered so far. Kiln's data folder, database socket, settings, source,
  virtualenv and other generations are simply not there;
* an empty environment (PATH, HOME=/tmp, LANG and the tool's own variables only), so no Kiln
  secret or setting can be read;
* limits: wall-clock time (the whole sandbox is killed), CPU seconds, address space per
  process, number of processes (a fresh unprivileged uid per run when Kiln runs as root, so the
  count is the run's own), file size, output size (the tmpfs), output file count and log size.

The project comes back as a tar stream, checked member by member like an uploaded archive
(regular files and folders only, safe names, sizes), and replaces the files handed in: what
the hooks left is what Kiln records (except a top-level `.git` a task made: Kiln keeps files and
makes its own commits when it exports). A failing command fails the generation with its (redacted,
truncated) output. Without bubblewrap (or without user namespaces) code is refused with
`isolation_unavailable`, never run without isolation.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from secrets import randbelow
from typing import IO, Any

from django.conf import settings

from apps.projects.services.project_generator import GenerationFailed
from apps.templates.services.formats._engine import Output
from core.exceptions import ApplicationError
from core.redaction import redact
from core.safe_paths import UnsafePath, clean_relative_path

logger = logging.getLogger("kiln.isolation")

LAUNCHER = Path(__file__).with_name("isolation_launcher.py")
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
TAR_OVERHEAD = 1 << 20


class IsolationUnavailable(ApplicationError):
    """The sandbox cannot be set up on this machine: template code is refused, never run bare."""

    status_code = 503
    default_code = "isolation_unavailable"


class CodeFailed(GenerationFailed):
    status_code = 422
    default_code = "hook_failed"


@dataclass(frozen=True)
class Command:
    argv: Sequence[str]
    cwd: str = "."
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Limits:
    seconds: float
    memory_bytes: int
    processes: int
    output_bytes: int
    tmp_bytes: int
    log_bytes: int

    @classmethod
    def from_settings(cls) -> Limits:
        return cls(
            seconds=settings.KILN_ISOLATION_TIME_LIMIT,
            memory_bytes=settings.KILN_ISOLATION_MEMORY_BYTES,
            processes=settings.KILN_ISOLATION_MAX_PROCESSES,
            output_bytes=settings.KILN_ISOLATION_OUTPUT_BYTES,
            tmp_bytes=settings.KILN_ISOLATION_TMP_BYTES,
            log_bytes=settings.KILN_ISOLATION_LOG_BYTES,
        )


@dataclass
class _Probe:
    ok: bool
    reason: str


_probe: _Probe | None = None
_probe_lock = threading.Lock()


def _bwrap() -> str | None:
    configured = settings.KILN_ISOLATION_BWRAP
    return shutil.which(configured) if configured else None


def _usr_layout() -> list[str]:
    """Bind the host's /usr read-only; /bin, /lib... follow it (merged /usr) or are bound too."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), f"/{name}"]
        elif path.is_dir():
            args += ["--ro-bind", str(path), f"/{name}"]
    return args


def python() -> str:
    """The interpreter hooks and the launcher run with: the system's, which the sandbox sees under /usr."""
    configured = settings.KILN_ISOLATION_PYTHON
    candidates = [configured] if configured else ["/usr/bin/python3", "/usr/local/bin/python3"]
    for candidate in candidates:
        if candidate.startswith("/usr/") and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise IsolationUnavailable(
        "No Python 3 interpreter under /usr for template hooks (set KILN_ISOLATION_PYTHON).",
        extra={"reason": "python_missing"},
    )


def _run_as() -> tuple[int | None, int | None]:
    """A fresh unprivileged uid/gid per run when Kiln runs as root; Kiln's own otherwise."""
    if os.geteuid() != 0:
        return None, None
    base = settings.KILN_ISOLATION_UID_BASE
    uid = base + randbelow(65_536)
    return uid, uid


def available() -> _Probe:
    """Whether a sandbox can start here (checked once per process)."""
    global _probe
    with _probe_lock:
        if _probe is not None:
            return _probe
        binary = _bwrap()
        if binary is None:
            _probe = _Probe(False, "bubblewrap (bwrap) is not installed")
            return _probe
        uid, gid = _run_as()
        try:
            proc = subprocess.run(
                [
                    binary,
                    "--unshare-all",
                    "--die-with-parent",
                    *_usr_layout(),
                    "--proc",
                    "/proc",
                    "--dev",
                    "/dev",
                    "/bin/true",
                ],
                capture_output=True,
                timeout=20,
                user=uid,
                group=gid,
                extra_groups=[] if uid is not None else None,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            _probe = _Probe(False, f"bubblewrap does not start: {exc}")
            return _probe
        if proc.returncode != 0:
            message = proc.stderr.decode("utf-8", "replace").strip()[:300]
            _probe = _Probe(False, f"bubblewrap cannot create a sandbox here ({message or proc.returncode})")
        else:
            _probe = _Probe(True, "")
        return _probe


def reset_probe() -> None:
    global _probe
    with _probe_lock:
        _probe = None


def require_available() -> None:
    probe = available()
    if not probe.ok:
        raise IsolationUnavailable(
            f"This template version runs code, and Kiln runs template code only in its isolation sandbox, "
            f"which is not available on this server: {probe.reason}. Install the Debian package 'bubblewrap' "
            "(and allow unprivileged user namespaces), or generate a version without hooks or tasks.",
            extra={"reason": probe.reason},
        )


def _etc(folder: Path, uid: int) -> Path:
    etc = folder / "etc"
    etc.mkdir()
    (etc / "passwd").write_text(f"kiln:x:{uid}:{uid}:Kiln sandbox:/tmp:/bin/sh\n", encoding="utf-8")
    (etc / "group").write_text(f"kiln:x:{uid}:\n", encoding="utf-8")
    (etc / "hosts").write_text("127.0.0.1 localhost\n", encoding="utf-8")
    return etc


def _write_tree(root: Path, files: Output) -> None:
    """The files handed to the sandbox, readable by its unprivileged uid whatever Kiln's umask."""
    root.mkdir()
    root.chmod(0o755)
    for path, data, mode in files.items():
        target = root / path
        if not target.parent.exists():
            target.parent.mkdir(parents=True)
            for parent in target.relative_to(root).parents:
                (root / parent).chmod(0o755)
        target.write_bytes(data)
        target.chmod(mode | 0o444)


def _scratch_root(uid: int | None) -> Path:
    """The folder holding each run's scratch copy; the sandbox's uid must be able to pass through
    every folder above it (bubblewrap resolves bind sources as that uid)."""
    root = Path(settings.KILN_ISOLATION_DIR)
    root.mkdir(parents=True, exist_ok=True)
    if uid is not None:
        root.chmod(0o711)
        for folder in [root, *root.parents]:
            if not os.stat(folder).st_mode & 0o001:
                raise IsolationUnavailable(
                    f"KILN_ISOLATION_DIR ({root}) is below '{folder}', which the sandbox's unprivileged user cannot "
                    "enter; use a folder such as /var/tmp/kiln-isolation (every folder above it passable by others).",
                    extra={"reason": "isolation_dir_not_passable"},
                )
    return root


def run(
    *,
    commands: Sequence[Command],
    files: Output,
    project: str,
    template: Path | None,
    scripts: dict[str, tuple[bytes, int]] | None = None,
    stage: str,
    limits: Limits | None = None,
    secrets: Sequence[str] = (),
) -> Output:
    """Run `commands` in a sandbox over a copy of `files`; returns the project as they left it.

    `secrets` (secret answers) are removed from any output quoted in an error, with the known
    token shapes.
    """
    require_available()
    limits = limits or Limits.from_settings()
    try:
        project = clean_relative_path(project)
    except UnsafePath:
        project = "project"
    if "/" in project:
        project = project.replace("/", "_")
    binary = _bwrap()
    assert binary is not None
    uid, gid = _run_as()
    work = Path(tempfile.mkdtemp(prefix="run-", dir=_scratch_root(uid)))
    work.chmod(0o711)
    try:
        run_dir = work / "run"
        run_dir.mkdir()
        shutil.copyfile(LAUNCHER, run_dir / "launcher.py")
        for name, (data, mode) in (scripts or {}).items():
            target = run_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            target.chmod(mode)
        job = {
            "project": project,
            "seconds": limits.seconds,
            "log_bytes": limits.log_bytes,
            "commands": [{"argv": list(c.argv), "cwd": c.cwd, "env": dict(c.env)} for c in commands],
        }
        (run_dir / "job.json").write_text(json.dumps(job), encoding="utf-8")
        etc = _etc(work, uid if uid is not None else os.geteuid())
        _write_tree(work / "input", files)
        for folder in (run_dir, etc):
            folder.chmod(0o755)
            for entry in folder.rglob("*"):
                entry.chmod(0o755 if entry.is_dir() else entry.stat().st_mode | 0o444)
        mounts = [(work / "input", "/input"), (run_dir, "/run/kiln"), (etc, "/etc")]
        if template is not None:
            shutil.copytree(template, work / "template", symlinks=True)
            for walked, _dirs, names in os.walk(work / "template"):
                os.chmod(walked, 0o755)  # noqa: S103 - the sandbox's own uid reads the template copy
                for name in names:
                    file_path = os.path.join(walked, name)
                    os.chmod(file_path, os.stat(file_path).st_mode | 0o444)
            mounts.append((work / "template", "/template"))
        argv = [
            "prlimit",
            f"--as={limits.memory_bytes}",
            f"--cpu={int(limits.seconds) + 5}",
            f"--fsize={settings.MAX_FILE_SIZE}",
            "--core=0",
            "--nofile=256",
        ]
        if uid is not None:
            argv.append(f"--nproc={limits.processes}")
        argv += [
            "--",
            binary,
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--hostname",
            "kiln-sandbox",
            *_usr_layout(),
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--size",
            str(limits.tmp_bytes),
            "--tmpfs",
            "/tmp",
            "--size",
            str(limits.output_bytes),
            "--tmpfs",
            "/output",
        ]
        for source_folder, destination in mounts:
            argv += ["--ro-bind", str(source_folder), destination]
        argv += [
            "--chdir",
            "/tmp",
            "--clearenv",
            "--setenv",
            "PATH",
            SANDBOX_PATH,
            "--setenv",
            "HOME",
            "/tmp",
            "--setenv",
            "TMPDIR",
            "/tmp",
            "--setenv",
            "LANG",
            "C.UTF-8",
            "--setenv",
            "USER",
            "kiln",
            "--setenv",
            "PYTHONDONTWRITEBYTECODE",
            "1",
            # tasks often `git init && git commit`: a neutral identity, no system config
            "--setenv",
            "GIT_CONFIG_NOSYSTEM",
            "1",
            "--setenv",
            "GIT_AUTHOR_NAME",
            "Kiln",
            "--setenv",
            "GIT_AUTHOR_EMAIL",
            "kiln@localhost",
            "--setenv",
            "GIT_COMMITTER_NAME",
            "Kiln",
            "--setenv",
            "GIT_COMMITTER_EMAIL",
            "kiln@localhost",
            python(),
            "-I",
            "-S",
            "/run/kiln/launcher.py",
        ]
        return _collect(argv, limits, uid, gid, stage=stage, commands=commands, scripts=scripts or {}, secrets=secrets)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _collect(
    argv: list[str],
    limits: Limits,
    uid: int | None,
    gid: int | None,
    *,
    stage: str,
    commands: Sequence[Command],
    scripts: dict[str, tuple[bytes, int]],
    secrets: Sequence[str],
) -> Output:
    started = time.monotonic()
    deadline = started + limits.seconds + 10
    cap = limits.output_bytes + TAR_OVERHEAD + limits.log_bytes * 4 + 4096
    with tempfile.TemporaryFile() as spool:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            user=uid,
            group=gid,
            extra_groups=[] if uid is not None else None,
            env={"PATH": "/usr/bin:/bin"},
        )
        assert proc.stdout is not None and proc.stderr is not None
        stderr = bytearray()
        received = 0
        too_big = timed_out = False
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ)
        selector.register(proc.stderr, selectors.EVENT_READ)
        try:
            open_streams = 2
            while open_streams:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                for key, _ in selector.select(timeout=min(remaining, 1.0)):
                    stream: IO[bytes] = key.fileobj  # type: ignore[assignment]
                    chunk = os.read(stream.fileno(), 1 << 16)
                    if not chunk:
                        selector.unregister(stream)
                        open_streams -= 1
                        continue
                    if stream is proc.stdout:
                        received += len(chunk)
                        if received > cap:
                            too_big = True
                            break
                        spool.write(chunk)
                    elif len(stderr) < 64 * 1024:
                        stderr.extend(chunk)
                if too_big:
                    break
        finally:
            selector.close()
            if proc.poll() is None:
                _kill(proc)
            proc.wait()
            proc.stdout.close()
            proc.stderr.close()
        script_names = ", ".join(sorted(scripts)) or stage
        if timed_out:
            raise CodeFailed(
                f"The template's {stage} code ({script_names}) ran longer than {limits.seconds:.0f} s and was stopped.",
                code="hook_timeout",
                extra={"stage": stage, "limit_seconds": limits.seconds},
            )
        if too_big:
            raise CodeFailed(
                f"The template's {stage} code left more than {limits.output_bytes} bytes.",
                code="output_limit_exceeded",
                extra={"stage": stage, "limit": limits.output_bytes},
            )
        spool.seek(0)
        header = spool.readline(limits.log_bytes * 4 + 4096)
        try:
            outcome = json.loads(header)
        except ValueError:
            message = stderr.decode("utf-8", "replace").strip()[-1000:]
            raise CodeFailed(
                f"The sandbox for the template's {stage} code failed before it ran"
                + (f": {redact(message, secrets)}" if message else f" (exit status {proc.returncode})."),
                code="isolation_failed",
                extra={"stage": stage},
            ) from None
        log = redact(str(outcome.get("log", ""))[: limits.log_bytes], secrets)
        if outcome.get("timed_out"):
            raise CodeFailed(
                f"The template's {stage} code ({script_names}) ran longer than {limits.seconds:.0f} s and was stopped.",
                code="hook_timeout",
                extra={"stage": stage, "limit_seconds": limits.seconds, "output": log},
            )
        if outcome.get("returncode"):
            index = outcome.get("command")
            failed = commands[index] if isinstance(index, int) and 0 <= index < len(commands) else None
            what = " ".join(failed.argv) if failed is not None else stage
            what = redact(what, secrets)
            raise CodeFailed(
                f"The template's {stage} code failed (exit status {outcome['returncode']}): {what}"
                + (f"\n{log.strip()}" if log.strip() else ""),
                extra={
                    "stage": stage,
                    "exit_status": outcome["returncode"],
                    "command": redact(what, secrets),
                    "output": log,
                },
            )
        return _read_tar(spool, limits, stage)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def _read_tar(stream: Any, limits: Limits, stage: str) -> Output:
    output = Output()
    total = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                name = member.name[2:] if member.name.startswith("./") else member.name
                if name in (".", "") or name == ".git" or name.startswith(".git/"):
                    continue  # a repository a task made: Kiln keeps files, and makes its own commits on export
                if member.isdir():
                    continue
                if not member.isreg():
                    raise CodeFailed(
                        f"The template's {stage} code left '{name[:200]}', which is not a regular file "
                        "(links and special files are not kept in generated projects).",
                        code="hook_output_invalid",
                        extra={"stage": stage, "path": name[:200]},
                    )
                try:
                    clean = clean_relative_path(name)
                except UnsafePath as exc:
                    raise CodeFailed(
                        f"The template's {stage} code left a file Kiln cannot keep: {exc.message}",
                        code="hook_output_invalid",
                        extra={"stage": stage, **exc.extra},
                    ) from None
                total += member.size
                if member.size > settings.MAX_FILE_SIZE or total > limits.output_bytes:
                    raise CodeFailed(
                        f"The template's {stage} code left more than the allowed output.",
                        code="output_limit_exceeded",
                        extra={"stage": stage},
                    )
                extracted = tar.extractfile(member)
                assert extracted is not None
                data = extracted.read(member.size + 1)
                if len(data) != member.size:
                    raise CodeFailed(
                        f"The template's {stage} code output is truncated.",
                        code="hook_output_invalid",
                        extra={"stage": stage},
                    )
                output.add(
                    clean,
                    data,
                    0o755 if member.mode & 0o100 else 0o644,
                    source=f"({stage})",
                    is_binary=b"\0" in data[:8192],
                )
    except tarfile.TarError as exc:
        raise CodeFailed(
            f"The template's {stage} code output could not be read back: {exc}",
            code="hook_output_invalid",
            extra={"stage": stage},
        ) from None
    return output


# --- the formats' callers -------------------------------------------------------------------------


def cookiecutter_hook(
    *, stage: str, script: str, text: str, files: Output, project: str, template: Path | None
) -> Output:
    """Run one Cookiecutter hook (already rendered) in the project folder, as cookiecutter runs it."""
    name = script.rsplit("/", 1)[-1]
    path = f"/run/kiln/hooks/{name}"
    argv = [python(), path] if name.endswith(".py") else [path]
    if stage == "pre_prompt":
        return run(
            commands=[Command(argv=argv)],
            files=files,
            project="template",
            template=None,
            scripts={f"hooks/{name}": (text.encode("utf-8"), 0o755)},
            stage=stage,
        )
    return run(
        commands=[Command(argv=argv)],
        files=files,
        project=project,
        template=template,
        scripts={f"hooks/{name}": (text.encode("utf-8"), 0o755)},
        stage=stage,
    )


def copier_tasks(
    *, commands: list[dict[str, Any]], files: Output, project: str, template: Path | None, secrets: Sequence[str] = ()
) -> Output:
    """Run Copier `_tasks` (already rendered) one after the other in the project folder."""
    return run(
        commands=[Command(argv=c["argv"], cwd=c.get("cwd") or ".", env=c.get("env") or {}) for c in commands],
        files=files,
        project=project,
        template=template,
        stage="_tasks",
        secrets=secrets,
    )
