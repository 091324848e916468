"""Render fixture templates with the real tools (pinned cookiecutter and copier).

Run as a script by the differential harness (`python tests/formats/realtools.py JOBS.json`),
never imported by Kiln: one process renders every job of a test session with the tools'
own Python APIs, exactly as their command lines would (`--no-input` / `--defaults`, the
answers as extra context / data, hooks and tasks accepted), and writes one result line per
job: `{"id", "ok", "error"}`. A job's project lands in its `out` folder.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any


def _cookiecutter(job: dict[str, Any], scratch: Path) -> None:
    from cookiecutter.main import cookiecutter

    out = Path(job["out"])
    parent = Path(job["output_dir"])
    parent.mkdir(parents=True, exist_ok=True)
    config = scratch / "cookiecutter-config.yaml"
    config.write_text(
        f"replay_dir: {scratch / 'replay'}\ncookiecutters_dir: {scratch / 'cookiecutters'}\n", encoding="utf-8"
    )
    project = cookiecutter(
        job["template"],
        no_input=True,
        extra_context=job["answers"] or None,
        output_dir=str(parent),
        config_file=str(config),
        accept_hooks=job.get("hooks", True),
    )
    os.rename(project, out)


def _copier(job: dict[str, Any]) -> None:
    from copier import run_copy

    out = Path(job["out"])
    for rel, text in (job.get("existing") or {}).items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    run_copy(
        job["template"],
        str(out),
        data=job["answers"],
        defaults=True,
        unsafe=job.get("trust", True),
        quiet=True,
        overwrite=bool(job.get("existing")),
    )


def main(jobs_file: str) -> None:
    jobs = json.loads(Path(jobs_file).read_text(encoding="utf-8"))
    home = Path(tempfile.mkdtemp(prefix="kiln-realtools-"))
    os.environ["HOME"] = str(home)
    settings = home / "copier-settings.yml"
    settings.write_text("{}\n", encoding="utf-8")
    os.environ["COPIER_SETTINGS_PATH"] = str(settings)
    cwd = os.getcwd()
    try:
        for job in jobs:
            result: dict[str, Any] = {"id": job["id"], "ok": True, "error": ""}
            try:
                if job["tool"] == "cookiecutter":
                    _cookiecutter(job, home)
                else:
                    _copier(job)
            except BaseException as exc:
                result = {
                    "id": job["id"],
                    "ok": False,
                    "error": f"{type(exc).__name__}: {exc}",
                    "trace": traceback.format_exc(limit=3),
                }
            finally:
                os.chdir(cwd)
            print(json.dumps(result), flush=True)
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1])
