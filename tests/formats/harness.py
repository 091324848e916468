"""The differential harness: the same fixture, the same answers, the real tool and Kiln, the trees
compared byte for byte (paths, contents, executable bit).

The real tools (pinned in requirements/dev.txt: cookiecutter 2.7.1, copier 9.19.1) run in ONE
subprocess per batch (`realtools.py`), through their own Python APIs exactly as their command
lines do with `--no-input` / `--defaults`. Each fixture is first copied out of the repository so
that neither tool sees Kiln's git checkout around it.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.formats.cases import Case

CORPUS = Path(__file__).resolve().parent / "corpus"
REALTOOLS = Path(__file__).resolve().parent / "realtools.py"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Rendered:
    ok: bool
    error: str = ""
    code: str = ""
    tree: dict[str, tuple[bytes, bool]] | None = None


def copy_fixture(fmt: str, fixture: str, destination: Path) -> Path:
    """The fixture as a plain folder (modes kept), outside any git repository."""
    shutil.copytree(CORPUS / fmt / fixture, destination, symlinks=True)
    return destination


def read_tree(root: Path) -> dict[str, tuple[bytes, bool]]:
    """Every file below `root`: relative path → (bytes, executable by its owner)."""
    tree: dict[str, tuple[bytes, bool]] = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            st = path.lstat()
            assert stat.S_ISREG(st.st_mode), f"{path} is not a regular file"
            tree[path.relative_to(root).as_posix()] = (path.read_bytes(), bool(st.st_mode & stat.S_IXUSR))
    return tree


def differences(real: dict[str, tuple[bytes, bool]], kiln: dict[str, tuple[bytes, bool]]) -> list[str]:
    found = []
    for path in sorted(set(real) | set(kiln)):
        if path not in kiln:
            found.append(f"missing in Kiln's output: {path}")
        elif path not in real:
            found.append(f"only in Kiln's output: {path}")
        else:
            (a, ax), (b, bx) = real[path], kiln[path]
            if a != b:
                found.append(f"{path}: contents differ\n  tool: {a[:400]!r}\n  kiln: {b[:400]!r}")
            if ax != bx:
                found.append(f"{path}: executable bit differs (tool {ax}, kiln {bx})")
    return found


def job_for(case: Case, template: Path, work: Path) -> dict[str, Any]:
    out = work / "real" / case.id / "project"
    job: dict[str, Any] = {
        "id": case.id,
        "tool": case.format,
        "template": str(template),
        "answers": case.answers,
        "out": str(out),
    }
    if case.format == "cookiecutter":
        job["output_dir"] = str(work / "real" / case.id / "parent")
    if case.existing:
        job["existing"] = case.existing
    return job


def run_real_tools(jobs: list[dict[str, Any]], work: Path, timeout: float = 600) -> dict[str, Rendered]:
    """Render every job with the real tools in one subprocess; results by job id."""
    jobs_file = work / "jobs.json"
    jobs_file.write_text(json.dumps(jobs), encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO", "KILN", "DATABASE"))}
    proc = subprocess.run(
        [sys.executable, str(REALTOOLS), str(jobs_file)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=work,
        env=env,
        check=False,
    )
    results: dict[str, Rendered] = {}
    for line in proc.stdout.splitlines():
        if not line.startswith("{"):
            continue
        data = json.loads(line)
        out = next(Path(job["out"]) for job in jobs if job["id"] == data["id"])
        results[data["id"]] = Rendered(
            ok=data["ok"], error=data.get("error", ""), tree=read_tree(out) if data["ok"] else None
        )
    missing = [job["id"] for job in jobs if job["id"] not in results]
    assert not missing, f"the real tools did not finish {missing}: {proc.stderr[-3000:]}"
    return results


class DirectorySink:
    """Writes Kiln's output into a folder (SafeWriter: no links, no escapes), like a generation."""

    def __init__(self, root: Path) -> None:
        from core.safe_paths import SafeWriter

        root.mkdir(parents=True, exist_ok=True)
        self.writer = SafeWriter(root)

    def add(self, path: str, data: bytes, mode: int, sha256: str) -> None:
        self.writer.write(path, data, mode)


def render_with_kiln(case: Case, template: Path, work: Path, *, trusted: bool = True, label: str = "kiln") -> Rendered:
    """Kiln's engines on the fixture, told what the tool was told (template path, output folder)."""
    from apps.templates.services import isolation
    from apps.templates.services.formats import cookiecutter, copier
    from apps.templates.services.formats._engine import SourceInfo
    from core.exceptions import ApplicationError

    out = work / label / case.id / "project"
    try:
        if case.format == "cookiecutter":
            source = SourceInfo(
                url=str(template), output_dir=str(work / "real" / case.id / "parent"), repo_dir=str(template)
            )
            prepared = cookiecutter.prepare(template)
            cookiecutter.render(
                prepared,
                case.answers,
                DirectorySink(out),
                source=source,
                run_hooks=isolation.cookiecutter_hook if trusted else None,
            )
        else:
            real_out = work / "real" / case.id / "project"
            source = SourceInfo(
                url=str(template),
                repo_dir=str(template.resolve()),
                output_dir=str(real_out.parent),
                folder_name=real_out.name,
            )
            existing = {path: (text.encode(), 0o644) for path, text in (case.existing or {}).items()}
            prepared_copier = copier.prepare(template)
            copier.render(
                prepared_copier,
                case.answers,
                DirectorySink(out),
                source=source,
                run_tasks=isolation.copier_tasks if trusted else None,
                existing=existing or None,
                overwrite=bool(existing),
            )
    except ApplicationError as exc:
        return Rendered(ok=False, error=exc.message, code=exc.code)
    return Rendered(ok=True, tree=read_tree(out))
