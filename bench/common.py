"""Shared helpers of the bench: paths, environments, timing, statistics, tree digests, machine info."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import socket
import stat
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
# KILN_BENCH_WORK_DIR moves every work folder (e.g. to a tmpfs, to take the disk out of the numbers).
WORK = Path(os.environ.get("KILN_BENCH_WORK_DIR") or BENCH / "work").resolve()
RESULTS = BENCH / "results"
# Outputs are moved here during a run (`discard`) and deleted when the run ends (`empty_trash`).
TRASH = WORK / "trash"
PYTHON = sys.executable
VENV_BIN = Path(sys.executable).parent
RESULT_PREFIX = "BENCH-RESULT "

# Environment variables that would point a Kiln process at the developer's services or data.
_KILN_ENV_STRIP = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "KILN_CELERY_EAGER",
    "KILN_CELERY_QUEUE",
    "GENERATED_PROJECTS_DIR",
    "KILN_DATA_DIR",
    "KILN_TEMPLATES_DIR",
    "KILN_TEMPLATE_CACHE_DIR",
    "KILN_SECRET_KEY_FILE",
    "DJANGO_SETTINGS_MODULE",
)


class BenchError(RuntimeError):
    """A bench step failed (a tool exited non-zero, outputs differ, ...)."""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def tool(name: str) -> str | None:
    """The executable `name` from the bench's venv, else from PATH, else None."""
    candidate = VENV_BIN / name
    if candidate.exists():
        return str(candidate)
    return shutil.which(name)


@dataclass(frozen=True)
class KilnPaths:
    """Where one bench run keeps Kiln's state: its own SQLite DB, outputs and caches."""

    run_dir: Path
    templates_dir: Path

    @property
    def data_dir(self) -> Path:
        return self.run_dir / "kiln-data"

    @property
    def generated_dir(self) -> Path:
        return self.run_dir / "generated-projects"

    @property
    def cache_dir(self) -> Path:
        return self.run_dir / "template-cache"


def kiln_env(paths: KilnPaths, **extra: str) -> dict[str, str]:
    """The environment of a Kiln process of this run: embedded SQLite, eager tasks, bench folders."""
    env = {k: v for k, v in os.environ.items() if k not in _KILN_ENV_STRIP}
    env.update(
        DJANGO_SETTINGS_MODULE="core.settings.local",
        DJANGO_DEBUG="0",
        KILN_DATA_DIR=str(paths.data_dir),
        GENERATED_PROJECTS_DIR=str(paths.generated_dir),
        KILN_TEMPLATES_DIR=str(paths.templates_dir),
        KILN_TEMPLATE_CACHE_DIR=str(paths.cache_dir),
        KILN_LOG_LEVEL="WARNING",
        KILN_ALLOW_FILE_REMOTES="1",
        PYTHONPATH=str(REPO),
    )
    env.update(extra)
    return env


def run(
    cmd: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 900,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; a non-zero exit raises BenchError with the tail of its output."""
    proc = subprocess.run(
        list(cmd),
        cwd=str(cwd) if cwd else None,
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-15:]
        raise BenchError(f"{' '.join(cmd[:4])} ... exited {proc.returncode}:\n" + "\n".join(tail))
    return proc


def timed(
    cmd: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None, timeout: float = 900
) -> float:
    """Wall-clock seconds of a whole process, from fork to exit."""
    started = time.perf_counter()
    run(cmd, cwd=cwd, env=env, timeout=timeout)
    return time.perf_counter() - started


def kiln_side(
    command: str, *args: str, env: Mapping[str, str], timeout: float = 900, cwd: Path = REPO
) -> dict[str, Any]:
    """Run `python -m bench.kiln_side COMMAND ...` (Django set up) and return its JSON result."""
    proc = run([PYTHON, "-m", "bench.kiln_side", command, *args], cwd=cwd, env=env, timeout=timeout)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            return result
    raise BenchError(f"kiln_side {command} printed no result:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def emit(result: Mapping[str, Any]) -> None:
    """How a bench subprocess hands its result back (see `kiln_side`)."""
    print(RESULT_PREFIX + json.dumps(result, sort_keys=True), flush=True)


def remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def byte_compile_kiln() -> None:
    """Write the .pyc files of Kiln's own modules (the templates' .py files are Jinja, skipped)."""
    run([PYTHON, "-m", "compileall", "-q", "-x", "/builtin_templates/", "apps", "core", "manage.py"], cwd=REPO)


def discard(path: Path) -> None:
    """Take `path` out of the way now and delete it when the run ends (`empty_trash`).

    Deleting thousands of files makes the next few thousand file creations on the same disk
    slow for a while: on ext4 without a journal (this project's VM) the inode allocator checks,
    and skips, every recently freed inode (the kernel's `recently_deleted()` took 65 % of the
    CPU of a 1,000-file `cp -r` run right after an `rm -r`, seen with `perf record -a -g`). That
    cost landed on whichever tool ran after a deletion and made every number depend on the
    order. Renaming the output into the trash frees no inode, so each tool writes into the same
    disk state; the trash is deleted once, after the last measurement.
    """
    if not (path.exists() or path.is_symlink()):
        return
    TRASH.mkdir(parents=True, exist_ok=True)
    target = TRASH / f"{time.monotonic_ns()}-{os.getpid()}-{path.name}"
    try:
        os.rename(path, target)
    except OSError:  # another file system (e.g. the tmpfs scratch): deleting there costs nothing later
        remove(path)


def empty_trash() -> None:
    remove(TRASH)


def _probe_creates(folder: Path, count: int = 1000) -> float:
    """Seconds to create `count` empty files in 50 new folders below `folder` (kept: see `discard`)."""
    folder.mkdir(parents=True)
    started = time.perf_counter()
    for index in range(count):
        sub = folder / f"d{index // 20}"
        if index % 20 == 0:
            sub.mkdir()
        os.close(os.open(sub / f"f{index}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    return time.perf_counter() - started


def wait_for_quiet_disk(max_wait: float) -> str:
    """Wait (up to `max_wait` s) until creating files on the work disk costs what it does on a quiet disk.

    Files deleted shortly before a run (an earlier bench run's trash, a test suite) make file
    creation on ext4 without a journal slow for up to 60-300 s (see `discard`). A probe creates
    1,000 empty files, on the work disk and on /dev/shm; the disk counts as quiet when its probe
    takes under max(100 ms, 6x the tmpfs probe). Returns a line for the report's header.
    """
    shm = Path("/dev/shm")
    baseline = 0.0
    if shm.is_dir() and os.access(shm, os.W_OK):
        scratch = shm / f"kiln-bench-probe-{os.getpid()}"
        try:
            baseline = _probe_creates(scratch)
        finally:
            remove(scratch)
    limit = max(0.1, 6 * baseline)
    waited = 0.0
    probes = 0
    while True:
        probes += 1
        probe = WORK / f"disk-probe-{os.getpid()}-{probes}"
        seconds = _probe_creates(probe)
        discard(probe)
        if seconds < limit or waited >= max_wait:
            break
        log(f"the work disk is slow right after deletions ({seconds * 1000:.0f} ms for 1,000 files); waiting")
        time.sleep(15)
        waited += 15
    state = "quiet" if seconds < limit else "NOT quiet (numbers that create files are inflated)"
    return (
        f"{state}: 1,000 file creations {seconds * 1000:.0f} ms (tmpfs {baseline * 1000:.0f} ms, "
        f"limit {limit * 1000:.0f} ms) after waiting {waited:.0f} s"
    )


def settle() -> None:
    """Flush dirty pages before a timed process starts, so no tool pays for the previous one's writes."""
    os.sync()


def clear_dir(path: Path) -> None:
    """Empty `path` (create it when missing); its children go to the trash (see `discard`)."""
    if path.exists():
        for child in path.iterdir():
            discard(child)
    path.mkdir(parents=True, exist_ok=True)


# --- statistics --------------------------------------------------------------------------------


@dataclass
class Samples:
    """Timings (or any measure) of one tool; `unit` is how the table shows them."""

    name: str
    values: list[float] = field(default_factory=list)
    unit: str = "s"

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def min(self) -> float:
        return min(self.values) if self.values else float("nan")

    @property
    def max(self) -> float:
        return max(self.values) if self.values else float("nan")


def ratio(numerator: float, denominator: float) -> float:
    if denominator <= 0 or numerator != numerator or denominator != denominator:
        return float("nan")
    return numerator / denominator


# --- output trees ----------------------------------------------------------------------------


TreeDigest = dict[str, tuple[str, bool]]


def tree_digest(root: Path) -> TreeDigest:
    """Relative POSIX path → (sha256 of the bytes, owner-executable bit) for every regular file."""
    digest: TreeDigest = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            full = Path(dirpath) / name
            st = full.lstat()
            if not stat.S_ISREG(st.st_mode):
                raise BenchError(f"{full} is not a regular file")
            rel = full.relative_to(root).as_posix()
            digest[rel] = (hashlib.sha256(full.read_bytes()).hexdigest(), bool(st.st_mode & stat.S_IXUSR))
    return digest


def single_child(folder: Path) -> Path:
    """The one folder inside `folder` (Cookiecutter's `{{cookiecutter.project_slug}}/` root)."""
    children = list(folder.iterdir())
    if len(children) != 1 or not children[0].is_dir():
        raise BenchError(f"expected exactly one folder in {folder}, found {[c.name for c in children]}")
    return children[0]


def diff_digests(reference: TreeDigest, other: TreeDigest, *, limit: int = 5) -> list[str]:
    """Human-readable differences between two tree digests (empty when identical)."""
    problems: list[str] = []
    for rel in sorted(set(reference) - set(other))[:limit]:
        problems.append(f"missing {rel}")
    for rel in sorted(set(other) - set(reference))[:limit]:
        problems.append(f"extra {rel}")
    for rel in sorted(set(reference) & set(other)):
        if reference[rel] != other[rel]:
            what = "content" if reference[rel][0] != other[rel][0] else "executable bit"
            problems.append(f"{what} differs: {rel}")
            if len(problems) >= 3 * limit:
                break
    return problems


# --- machine description -----------------------------------------------------------------------


def _first_line(cmd: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not available"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "not available"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"


RUNTIME_PATHS = ("apps", "core", "manage.py", ":(exclude)**/tests/**", ":(exclude)**/conftest.py")


def kiln_revision() -> str:
    """The commit Kiln runs from, and whether its runtime code differs from it (others' edits)."""
    commit = _first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    try:
        status = subprocess.run(
            [*("git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no", "--"), *RUNTIME_PATHS],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return commit
    return f"{commit} + local changes" if status.strip() else commit


def _zip_version() -> str:
    if not shutil.which("zip"):
        return "not installed"
    out = subprocess.run(["zip", "-v"], capture_output=True, text=True, timeout=30, check=False).stdout
    return next((line.strip() for line in out.splitlines() if line.startswith("This is Zip")), "zip")


def machine_info() -> dict[str, str]:
    copier = tool("copier")
    cookiecutter = tool("cookiecutter")
    return {
        "host": socket.gethostname(),
        "os": f"{platform.system()} {platform.release()}",
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count() or "?"),
        "ram": _ram_gib(),
        "python": platform.python_version(),
        "git": _first_line(["git", "--version"]),
        "copier": _first_line([copier, "--version"]) if copier else "not installed",
        "cookiecutter": _first_line([cookiecutter, "--version"]).split(" from ")[0]
        if cookiecutter
        else "not installed",
        "zip": _zip_version(),
        "tar": _first_line(["tar", "--version"]),
        "kiln commit": kiln_revision(),
        "load average at start": load_average(),
    }
