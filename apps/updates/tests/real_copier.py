"""Run the real `copier copy` + user commits + `copier update` for the update differential tests.

Used as a script (`python real_copier.py JOBS.json`), never imported by Kiln. For each job it
generates the project from the template's first version exactly as `copier copy --defaults
--data ... --vcs-ref V --trust` would, commits it, replays the user's commits, then runs
`copier update --defaults --conflict inline --vcs-ref V2 --data ... --trust` (copier 9.19.1,
pinned in requirements/dev.txt). The updated working tree stays in the job's `project`
folder; one JSON line per job reports `{"id", "ok", "error", "ours", "seconds"}` where `ours`
is the commit the update started from (the project's HEAD, which the update does not move).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ENV = {
    "GIT_AUTHOR_NAME": "User",
    "GIT_AUTHOR_EMAIL": "user@example.invalid",
    "GIT_COMMITTER_NAME": "User",
    "GIT_COMMITTER_EMAIL": "user@example.invalid",
    "GIT_AUTHOR_DATE": "2026-02-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2026-02-01T00:00:00Z",
}


def git(args: list[str], cwd: Path) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False, env={**os.environ, **ENV})
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode()


def apply_commit(project: Path, commit: dict[str, Any]) -> None:
    for rel, value in commit["files"].items():
        path = project / rel
        if value is None:
            path.unlink()
            continue
        if value.startswith("@replace "):
            old, new = value[len("@replace ") :].split("|", 1)
            text = path.read_text(encoding="utf-8")
            if old not in text:
                raise RuntimeError(f"{rel}: {old!r} not found")
            value = text.replace(old, new, 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value, encoding="utf-8")
    for rel, mode in commit.get("modes", {}).items():
        (project / rel).chmod(mode)
    git(["add", "-A"], project)
    git(["commit", "-q", "-m", commit["message"]], project)


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    from copier import run_copy, run_update

    project = Path(job["project"])
    run_copy(
        job["template"],
        str(project),
        data=job["answers"],
        vcs_ref=job["from_version"],
        defaults=True,
        unsafe=True,
        quiet=True,
    )
    git(["init", "-q", "-b", "main"], project)
    git(["add", "-A"], project)
    git(["commit", "-q", "-m", "generated"], project)
    for commit in job["commits"]:
        apply_commit(project, commit)
    ours = git(["rev-parse", "HEAD"], project).strip()
    started = time.perf_counter()
    run_update(
        str(project),
        data=job.get("new_answers") or {},
        vcs_ref=job["to_version"],
        defaults=True,
        overwrite=True,
        conflict="inline",
        unsafe=True,
        quiet=True,
    )
    return {"ours": ours, "seconds": time.perf_counter() - started}


def main(jobs_file: str) -> None:
    jobs = json.loads(Path(jobs_file).read_text(encoding="utf-8"))
    home = Path(tempfile.mkdtemp(prefix="kiln-real-copier-"))
    os.environ["HOME"] = str(home)
    os.environ["GIT_CONFIG_NOSYSTEM"] = "1"
    os.environ["GIT_CONFIG_GLOBAL"] = os.devnull
    settings = home / "copier-settings.yml"
    settings.write_text("{}\n", encoding="utf-8")
    os.environ["COPIER_SETTINGS_PATH"] = str(settings)
    for job in jobs:
        try:
            result = {"id": job["id"], "ok": True, "error": "", **run_job(job)}
        except BaseException as exc:
            result = {"id": job["id"], "ok": False, "error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"}
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
