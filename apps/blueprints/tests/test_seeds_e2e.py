"""Each structure document end to end, as a user would: register it as a blueprint, generate through
the API (every path of the document exists), then in a fresh virtualenv install the project's own
requirement files, run its tests (they must pass), `ruff check` it (clean), start its Procfile's `web:`
line on a free port and GET /health → 200.

Documents: the five seeds (`seeds/`) and the ones written for these tests (`documents/`: Flask + RQ,
Django + APScheduler, a plain Python CLI, a Markdown document with a bare indented tree, a Flask app
factory with feature blueprints drawn by `tree -F`, a FastAPI service drawn by Windows `tree /F /A`).

Time (CI always starts from a fresh clone): `test_document_generates_through_the_api[x]` generates and
hands the project to a pool of two threads; `test_generated_project_installs_...[x]` waits for its run, so
projects install, test and start while the next ones are generated. Each virtualenv is new (uv), filled
from uv's wheel cache, `KILN_BLUEPRINT_UV_CACHE` (default `~/.cache/kiln/blueprint-uv`, outside the clone;
kept between CI runs on one machine); a cold cache downloads each pinned wheel once for the whole run:
every generated project pins the same versions (scaffold/pins.py). `KILN_BLUEPRINT_SEEDS` runs fewer
documents locally: a number (the first N, seeds first) or names separated by commas (`000,flask_rq`).
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
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
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
    install = [
        str(path.relative_to(project))
        for path in [*sorted(project.glob("requirements*.txt")), *sorted(project.glob("requirements/*.txt"))]
    ]
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
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # the server reuses the bytecode the tests' imports wrote
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
    assert [document_id(p) for p in selected(ALL_DOCUMENTS, "004, flask_r")] == ["004", "flask_rq"]
    assert selected(ALL_DOCUMENTS, "") == ALL_DOCUMENTS
    assert len(ALL_DOCUMENTS) == 11


def generate(document: Path, *, cast, api, run_jobs, folder: Path) -> Path:
    """Register the document as a blueprint and generate it through the API; returns the project's folder."""
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
    project = folder / "project"
    generated_project_copy_to(generated=GeneratedProject.objects.get(pk=detail["id"]), destination=project)
    # every path of the document exists
    preview = client.post("/api/v1/blueprints/preview/", {"document": text}, format="json")
    assert preview.status_code == 200, preview.content
    for entry in preview.json()["entries"]:
        assert (project / entry["path"]).exists(), entry["path"]
    return project


def run_project(project: Path) -> str:
    """In a fresh virtualenv: install the project's requirement files, run its tests (they must pass), then
    start the app from its Procfile's web line on $PORT while `ruff check` runs, and GET /health → 200.
    Returns a one-line account; raises AssertionError naming what failed."""
    venv = project.parent / "venv"
    install = fresh_venv(project, venv)
    env = clean_env(venv)
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
    web = (project / "Procfile").read_text().split("web:", 1)[1].splitlines()[0].strip()
    port = free_port()
    log_path = project.parent / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            ["sh", "-c", f"exec {web}"],
            cwd=project,
            env={**env, "PORT": str(port)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            lint = subprocess.run(
                [str(BIN / "ruff"), "check", "--no-cache", "."],
                cwd=project,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert lint.returncode == 0, lint.stdout[-4000:]
            status = health(port, server, deadline=time.monotonic() + 60)
            assert status == 200, log_path.read_text(errors="replace")[-3000:] or "no answer"
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)
    files = sum(1 for path in project.rglob("*") if path.is_file() and "__pycache__" not in path.parts)
    return f"{files} files, {' + '.join(install)} installed, {passed.group(1)} tests passed, ruff clean, {web} → 200"


@dataclass
class Runs:
    """Each generated project's run, in a pool of two threads (subprocesses only, no database there): a
    project installs, tests and starts while the next one is generated, and both cores stay busy."""

    pool: ThreadPoolExecutor
    folders: pytest.TempPathFactory
    started: dict[str, Future[str]] = field(default_factory=dict)

    def start(self, document: Path, **fixtures: object) -> Future[str]:
        key = document_id(document)
        if key not in self.started:  # the generation test ran (or this is the run test, in another order)
            project = generate(document, folder=self.folders.mktemp(f"doc-{key}"), **fixtures)
            self.started[key] = self.pool.submit(run_project, project)
        return self.started[key]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="blueprint-run")
    yield Runs(pool, tmp_path_factory)
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("document", DOCUMENTS, ids=document_id)
def test_document_generates_through_the_api(document, runs, cast, api, run_jobs):
    runs.start(document, cast=cast, api=api, run_jobs=run_jobs)


@pytest.mark.parametrize("document", DOCUMENTS, ids=document_id)
def test_generated_project_installs_passes_its_tests_and_answers_health(document, runs, cast, api, run_jobs):
    account = runs.start(document, cast=cast, api=api, run_jobs=run_jobs).result(timeout=900)
    print(f"{document_id(document)}: {account}")
