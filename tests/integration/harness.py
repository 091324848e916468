"""Real services for integration tests: PostgreSQL, Redis, a live server and Celery workers.

Tests marked `integration` run when the services answer. With KILN_REQUIRE_SERVICES=1
(set by `.ci/run`) a missing service fails the run instead of skipping it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
REQUIRE = os.environ.get("KILN_REQUIRE_SERVICES") == "1"


def _missing_services() -> list[str]:
    missing = []
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        missing.append("PostgreSQL (set DATABASE_URL=postgres://...)")
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not broker.startswith("redis://"):
        missing.append("Redis (set CELERY_BROKER_URL=redis://...)")
    else:
        import redis

        try:
            redis.Redis.from_url(broker, socket_connect_timeout=2).ping()
        except redis.RedisError as exc:
            missing.append(f"Redis at {broker} ({exc})")
    return missing


@pytest.fixture(scope="session")
def services() -> None:
    missing = _missing_services()
    if missing:
        message = "integration services missing: " + "; ".join(missing)
        if REQUIRE:
            pytest.fail(message)
        pytest.skip(message)


class Worker:
    """A `celery -A core worker` subprocess on its own queue, reading the test database."""

    def __init__(self, queue: str, log: Path, concurrency: int = 2, extra_env: dict[str, str] | None = None) -> None:
        self.queue = queue
        self.log = log
        self.concurrency = concurrency
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        db = settings.DATABASES["default"]
        url = f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "core.settings.test",
            "DATABASE_URL": url,
            "KILN_CELERY_QUEUE": self.queue,
            "KILN_TEST_SCRATCH": str(Path(settings.GENERATED_PROJECTS_DIR).parent),
            "PYTHONUNBUFFERED": "1",
        }
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 60) -> Worker:
        handle = open(self.log, "ab")  # noqa: SIM115 - the worker writes to it for its whole life
        offset = self.log.stat().st_size
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "core",
                "worker",
                "-Q",
                self.queue,
                "-c",
                str(self.concurrency),
                "-P",
                "prefork",
                "-n",
                f"{self.queue}-{uuid.uuid4().hex[:6]}@%h",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "INFO",
            ],
            cwd=ROOT,
            env=self.env(),
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_bytes()[offset:].decode(errors="replace")
            if " ready." in text:
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{text[-3000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready after {timeout}s:\n{self.log.read_text()[-3000:]}")

    def children(self) -> list[int]:
        assert self.process is not None
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True)
        return [int(pid) for pid in out.stdout.split()]

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def worker_queue() -> str:
    return f"kiln-it-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def celery_worker(
    services: None,
    django_db_setup: Any,
    django_db_blocker: Any,
    worker_queue: str,
    live_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Worker]:
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    # api_call steps inside the worker call the live server over real HTTP
    worker = Worker(worker_queue, log, extra_env={"KILN_INTERNAL_API_BASE": live_server.url}).start()
    yield worker
    worker.stop()


@pytest.fixture
def live_stack(celery_worker: Worker, live_server: Any, worker_queue: str, transactional_db: Any) -> Iterator[Any]:
    """A live HTTP server whose requests enqueue to Redis for the real worker."""
    from core.celery import app

    previous = (app.conf.task_always_eager, app.conf.task_default_queue)
    app.conf.task_always_eager = False
    app.conf.task_default_queue = worker_queue
    from apps.templates.services.catalog import template_sync_builtin

    template_sync_builtin()
    yield live_server
    app.conf.task_always_eager, app.conf.task_default_queue = previous


class AsgiServer:
    """Kiln's ASGI application (`core.asgi`: Django + /mcp) in `uvicorn`, as the web process runs it.

    The test binds the socket (port 0) and hands it to uvicorn (`--fd`), so no port is guessed.
    It shares the test database, the scratch folders and the worker's queue (Worker.env).
    """

    def __init__(self, log: Path, env: dict[str, str]) -> None:
        self.log = log
        self.env = env
        self.sock: socket.socket | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout: float = 60) -> AsgiServer:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        handle = open(self.log, "ab")  # noqa: SIM115 - the server writes to it for its whole life
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "core.asgi:application",
                "--fd",
                str(self.sock.fileno()),
                "--lifespan",
                "on",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env={**self.env, "KILN_PUBLIC_URL": self.url},
            stdout=handle,
            stderr=subprocess.STDOUT,
            pass_fds=(self.sock.fileno(),),
            start_new_session=True,
        )
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the ASGI server exited early:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the ASGI server did not answer after {timeout}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self.sock is not None:
            self.sock.close()


@pytest.fixture(scope="session")
def asgi_server(celery_worker: Worker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsgiServer]:
    """`uvicorn core.asgi:application` enqueueing to the session's real worker."""
    log = tmp_path_factory.mktemp("asgi") / "asgi.log"
    server = AsgiServer(log, {**celery_worker.env(), "KILN_CELERY_EAGER": "0"}).start()
    yield server
    server.stop()


@pytest.fixture
def asgi_stack(asgi_server: AsgiServer, live_stack: Any) -> AsgiServer:
    """The ASGI server, the real worker and the built-in templates, on a transactional database."""
    return asgi_server


def poll(
    fetch: Callable[[], dict[str, Any]], until: Callable[[dict[str, Any]], bool], timeout: float = 60
) -> dict[str, Any]:
    """Call `fetch` until `until(result)`; fail with the last result after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = fetch()
        if until(last):
            return last
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    raise AssertionError(f"condition not met after {timeout}s; last: {last}")
