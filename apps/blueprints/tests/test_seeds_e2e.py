"""Each seed document end to end: register as a blueprint, generate through the API, then in a
throwaway virtualenv install its requirements, run its tests, `ruff check` it, start its app on
a free port (the Procfile's web line) and GET /health → 200.

Virtualenvs are cached per requirements hash under KILN_BLUEPRINT_VENV_CACHE (default
`.cache/blueprint-venvs/`, git-ignored), so a warm run only runs the projects.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from apps.projects.models import GeneratedProject
from apps.projects.services.generation import generated_project_copy_to

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

SEEDS = sorted((Path(__file__).parent / "seeds").glob("*.txt"))
ROOT = Path(__file__).resolve().parents[3]
CACHE = Path(os.environ.get("KILN_BLUEPRINT_VENV_CACHE", ROOT / ".cache" / "blueprint-venvs"))
RUFF = Path(sys.executable).parent / "ruff"


def venv_for(project: Path, install: list[str]) -> Path:
    digest = hashlib.sha256(b"".join((project / name).read_bytes() for name in install)).hexdigest()[:16]
    venv = CACHE / digest
    if (venv / ".complete").exists():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    command = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    for name in install:
        command += ["-r", str(project / name)]
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (venv / ".complete").write_text("ok")
    return venv


def clean_env(venv: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_URL", "CELERY_", "KILN_", "PYTEST_", "PYTHONPATH", "VIRTUAL_ENV"))
    }
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("document", SEEDS, ids=lambda path: path.name[:3])
def test_seed_becomes_a_running_project(document, cast, api, run_jobs, tmp_path):
    client = api(cast.alice)
    slug = f"seed-{document.name[:3]}"
    body = {"blueprint": {"slug": slug, "name": slug, "document": document.read_text(encoding="utf-8")}}
    registered = client.post("/api/v1/templates/", body, format="json")
    assert registered.status_code == 201, registered.content
    with run_jobs():
        started = client.post(
            f"/api/v1/projects/{cast.project.pk}/generated/", {"template": slug, "parameters": {}}, format="json"
        )
    assert started.status_code == 202, started.content
    detail = client.get(f"/api/v1/projects/{cast.project.pk}/generated/{started.json()['id']}/").json()
    assert detail["status"] == "completed", detail["error"]
    project = tmp_path / "project"
    generated_project_copy_to(generated=GeneratedProject.objects.get(pk=detail["id"]), destination=project)

    # every path of the document exists
    preview = client.post("/api/v1/blueprints/preview/", {"document": body["blueprint"]["document"]}, format="json")
    for entry in preview.json()["entries"]:
        assert (project / entry["path"]).exists(), entry["path"]

    install = sorted(p.name for p in project.glob("requirements*.txt"))
    venv = venv_for(project, install)
    env = clean_env(venv)
    tests = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    assert "100%" in tests.stdout
    lint = subprocess.run(
        [str(RUFF), "check", "--no-cache", "."], cwd=project, capture_output=True, text=True, timeout=120
    )
    assert lint.returncode == 0, lint.stdout[-4000:]

    web = (project / "Procfile").read_text().split("web:", 1)[1].strip()
    port = free_port()
    env["PORT"] = str(port)
    server = subprocess.Popen(
        ["sh", "-c", f"exec {web}"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                    status = answer.status
                    break
            except OSError:
                time.sleep(0.2)
        assert status == 200, server.stderr.read().decode()[-3000:] if server.poll() is not None else "no answer"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
