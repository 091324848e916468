"""Broker and database faults with real servers: a private Redis, PostgreSQL, a web process
and a worker process, driven over HTTP.

* Redis stopped when a job is enqueued: the request still answers 202 and the row is
  committed; once Redis is back, the reaper enqueues it and it completes.
* Redis restarted while a worker is busy: the job still ends `completed`.
* PostgreSQL connections dropped during a task: the task retries and completes with
  exactly one file set.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection

from tests.integration.harness import ROOT, Worker, poll

pytestmark = [pytest.mark.integration]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.dir = tmp
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("redis did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


def stack_env(redis: RedisServer, queue: str) -> dict[str, str]:
    db = settings.DATABASES["default"]
    return {
        "DATABASE_URL": f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "CELERY_BROKER_URL": redis.url,
        "KILN_CELERY_EAGER": "0",
        "KILN_CELERY_QUEUE": queue,
        "KILN_JOB_LEASE_SECONDS": "6",
        "KILN_PENDING_DEADLINE_SECONDS": "1",
    }


@pytest.fixture
def stack(services, transactional_db, tmp_path):
    """A private Redis, a web process and a worker process sharing the test database."""
    from apps.projects.tests.factories import UserFactory

    redis = RedisServer(tmp_path)
    redis.start()
    queue = f"kiln-faults-{uuid.uuid4().hex[:6]}"
    env = stack_env(redis, queue)
    worker = Worker(queue, tmp_path / "worker.log", concurrency=1, extra_env=env).start()
    port = free_port()
    web_env = {**worker.env(), **env}
    web_log = open(tmp_path / "web.log", "ab")  # noqa: SIM115 - open for the web process's life
    web = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", "--nothreading", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=web_env,
        stdout=web_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code in (200, 503):
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    UserFactory(username="alice")
    client = httpx.Client(base_url=base, timeout=30)
    token = client.post("/api/v1/auth/token/", json={"username": "alice", "password": "pw-for-tests"}).json()["token"]
    client.headers["Authorization"] = f"Token {token}"

    def reap() -> str:
        return subprocess.run(
            [sys.executable, "manage.py", "reap_jobs"],
            cwd=ROOT,
            env=web_env,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout

    yield {"client": client, "redis": redis, "worker": worker, "reap": reap, "env": web_env, "tmp": tmp_path}
    client.close()
    os.killpg(web.pid, signal.SIGKILL)
    web.wait(timeout=10)
    worker.kill()
    redis.stop()


def start_generation(client, template: str) -> tuple[str, int]:
    project = client.post("/api/v1/projects/", json={"name": f"F {uuid.uuid4().hex[:6]}"}).json()
    base = f"/api/v1/projects/{project['id']}/generated/"
    created = client.post(base, json={"template": template})
    assert created.status_code == 202, created.text
    return base, created.json()["id"]


def test_redis_down_at_enqueue_then_reaper_recovers(stack, make_template):
    template = make_template({"a.txt": "{{ 'a' }}\n"}, slug=f"fault-{uuid.uuid4().hex[:6]}")
    client, redis = stack["client"], stack["redis"]
    redis.stop()
    base, gid = start_generation(client, template.slug)
    detail = client.get(f"{base}{gid}/").json()
    assert detail["status"] == "pending"
    health = client.get("/healthz")
    assert health.status_code == 503
    assert health.json()["broker"].startswith("down")
    redis.start()
    time.sleep(1.2)
    detail = poll(
        lambda: (stack["reap"](), client.get(f"{base}{gid}/").json())[1],
        lambda d: d["status"] == "completed",
        timeout=90,
    )
    assert detail["file_count"] == 1


def test_redis_restarted_while_the_worker_is_busy(stack, make_template):
    files = {f"m/{i:04d}.txt": "{% for i in range(2500) %}{{ i * i }},{% endfor %}\n" for i in range(1500)}
    template = make_template(files, slug=f"busy-{uuid.uuid4().hex[:6]}")
    client, redis = stack["client"], stack["redis"]
    base, gid = start_generation(client, template.slug)
    poll(lambda: client.get(f"{base}{gid}/").json(), lambda d: d["status"] == "running", timeout=60)
    redis.stop()
    time.sleep(0.5)
    redis.start()
    detail = poll(
        lambda: (stack["reap"](), client.get(f"{base}{gid}/").json())[1],
        lambda d: d["status"] in {"completed", "failed"},
        timeout=180,
    )
    assert detail["status"] == "completed", detail
    assert detail["file_count"] == 1500


def test_database_connections_dropped_during_a_task(stack, make_template):
    from apps.projects.models import ProjectFile

    files = {f"m/{i:04d}.txt": "{% for i in range(2500) %}{{ i * i }},{% endfor %}\n" for i in range(1500)}
    template = make_template(files, slug=f"dbdrop-{uuid.uuid4().hex[:6]}")
    client = stack["client"]
    base, gid = start_generation(client, template.slug)
    poll(
        lambda: client.get(f"{base}{gid}/").json(),
        lambda d: d["status"] == "running" and d["progress"]["done"] > 0,
        timeout=60,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        terminated = cursor.fetchone()[0]
    assert terminated >= 1
    detail = poll(
        lambda: (stack["reap"](), client.get(f"{base}{gid}/").json())[1],
        lambda d: d["status"] in {"completed", "failed"},
        timeout=180,
    )
    assert detail["status"] == "completed", detail
    assert ProjectFile.objects.filter(generated_id=gid).count() == 1500
