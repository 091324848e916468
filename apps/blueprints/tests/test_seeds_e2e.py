"""Each structure document end to end, as a user would: register it as a blueprint, generate through
the API, then in a fresh virtualenv install the project's own requirement files, run its tests (they
must pass), `ruff check` it (clean), start its Procfile's `web:` line on a free port and GET /health → 200.

Documents: the five seeds (`seeds/`) and the ones written for these tests (`documents/`: Flask + RQ,
Django + APScheduler, a plain Python CLI, a Markdown document with a bare indented tree).

Time (CI always starts from a fresh clone): each project gets a new virtualenv made by uv, which
installs the project's requirement files from uv's wheel cache, `KILN_BLUEPRINT_UV_CACHE` (default
`~/.cache/kiln/blueprint-uv`, outside the clone; kept between CI runs on one machine). A cold cache
downloads each pinned wheel once for the whole run: every generated project pins the same versions
(scaffold/pins.py). The app starts while its tests run. `KILN_BLUEPRINT_SEEDS` runs fewer documents
locally: a number (the first N, seeds first) or names separated by commas (`000,flask_rq`).
"""

from __future__ import annotations

import os
import re
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

HERE = Path(__file__).parent
ALL_DOCUMENTS = sorted((HERE / "seeds").glob("*.txt")) + sorted((HERE / "documents").glob("*.*"))
BIN = Path(sys.executable).parent
UV_CACHE = Path(os.environ.get("KILN_BLUEPRINT_UV_CACHE") or Path.home() / ".cache" / "kiln" / "blueprint-uv")


def document_id(path: Path) -> str:
    return path.name[:3] if path.parent.name == "seeds" else path.stem


def selected(documents: list[Path], choice: str) -> list[Path]:
    """`KILN_BLUEPRINT_SEEDS`: empty → all; `N` → the first N; `a,b` → those ids (or id prefixes)."""
    choice = choice.strip()
    if not choice:
        return documents
    if choice.isdigit():
        return documents[: int(choice)]
    wanted = [name.strip() for name in choice.split(",") if name.strip()]
    return [path for path in documents if any(document_id(path).startswith(name) for name in wanted)]


DOCUMENTS = selected(ALL_DOCUMENTS, os.environ.get("KILN_BLUEPRINT_SEEDS", ""))


def uv(*args: str, timeout: int = 600) -> None:
    env = {**os.environ, "UV_CACHE_DIR": str(UV_CACHE), "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"}
    result = subprocess.run([str(BIN / "uv"), *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"uv {' '.join(args)}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"


def fresh_venv(project: Path, venv: Path) -> list[str]:
    """A new virtualenv holding exactly what the project's requirement files install; returns them."""
    install = sorted(path.name for path in project.glob("requirements*.txt"))
    assert install, "the project has no requirements file"
    uv("venv", "--quiet", "--no-config", "--python", sys.executable, str(venv))
    requirements = [arg for name in install for arg in ("-r", str(project / name))]
    uv("pip", "install", "--quiet", "--no-config", "--python", str(venv / "bin" / "python"), *requirements)
    return install


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


def health(port: int, server: subprocess.Popen[bytes], *, deadline: float) -> int | None:
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                return int(answer.status)
        except OSError:
            time.sleep(0.2)
    return None


def test_selection_by_env_var():
    assert [document_id(p) for p in selected(ALL_DOCUMENTS, "2")] == ["000", "001"]
    assert [document_id(p) for p in selected(ALL_DOCUMENTS, "004, flask")] == ["004", "flask_rq"]
    assert selected(ALL_DOCUMENTS, "") == ALL_DOCUMENTS
    assert len(ALL_DOCUMENTS) == 9


@pytest.mark.parametrize("document", DOCUMENTS, ids=document_id)
def test_document_becomes_a_running_project(document, cast, api, run_jobs, tmp_path):
    client = api(cast.alice)
    slug = f"doc-{document_id(document).replace('_', '-')}"
    text = document.read_text(encoding="utf-8")
    registered = client.post(
        "/api/v1/templates/", {"blueprint": {"slug": slug, "name": slug, "document": text}}, format="json"
    )
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
    preview = client.post("/api/v1/blueprints/preview/", {"document": text}, format="json")
    assert preview.status_code == 200, preview.content
    for entry in preview.json()["entries"]:
        assert (project / entry["path"]).exists(), entry["path"]

    venv = tmp_path / "venv"
    fresh_venv(project, venv)
    env = clean_env(venv)

    # the app starts (its Procfile's web line on $PORT) while the project's tests and ruff run
    web = (project / "Procfile").read_text().split("web:", 1)[1].strip()
    port = free_port()
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        ["sh", "-c", f"exec {web}"],
        cwd=project,
        env={**env, "PORT": str(port)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        tests = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pytest", "-p", "no:cacheprovider"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
        passed = re.search(r"\b(\d+) passed\b", tests.stdout)
        assert passed and int(passed.group(1)) >= 2, tests.stdout[-2000:]  # /health and the imports at least
        lint = subprocess.run(
            [str(BIN / "ruff"), "check", "--no-cache", "."],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert lint.returncode == 0, lint.stdout[-4000:]
        status = health(port, server, deadline=time.monotonic() + 60)
        assert status == 200, (tmp_path / "server.log").read_text(errors="replace")[-3000:] or "no answer"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        log.close()
