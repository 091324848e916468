"""Load: 50 concurrent generation requests from 5 users against a live server and 2 workers.

Every accepted job completes, the per-project cap answers 429 with Retry-After where it
is exceeded, nothing deadlocks and no job is lost. The throughput is printed.
Full size by default (50 requests); KILN_LOAD_REQUESTS makes it larger or smaller.
"""

from __future__ import annotations

import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.integration.harness import Worker, poll

pytestmark = [pytest.mark.integration]

REQUESTS = int(os.environ.get("KILN_LOAD_REQUESTS", "50"))
USERS = 5


def test_concurrent_generations(live_stack, celery_worker, worker_queue, make_template, settings, tmp_path):
    from apps.projects.models import GeneratedProject
    from apps.projects.tests.factories import UserFactory

    settings.KILN_MAX_ACTIVE_JOBS_PER_PROJECT = 6
    second = Worker(worker_queue, tmp_path / "worker2.log", concurrency=2).start()
    try:
        files = {f"src/m{i:03d}.py": "VALUE = {{ n }}\n" for i in range(100)}
        template = make_template(
            files,
            slug=f"load-{uuid.uuid4().hex[:6]}",
            parameters={"type": "object", "properties": {"n": {"type": "integer", "default": 1}}},
        )
        clients = []
        for index in range(USERS):
            name = f"load{index}-{uuid.uuid4().hex[:4]}"
            UserFactory(username=name)
            client = httpx.Client(base_url=live_stack.url, timeout=60)
            token = client.post("/api/v1/auth/token/", json={"username": name, "password": "pw-for-tests"}).json()[
                "token"
            ]
            client.headers["Authorization"] = f"Token {token}"
            project = client.post("/api/v1/projects/", json={"name": f"Load {index}"}).json()
            clients.append((client, f"/api/v1/projects/{project['id']}/generated/"))

        def fire(n: int) -> tuple[int, dict, dict]:
            client, base = clients[n % USERS]
            response = client.post(base, json={"template": template.slug, "parameters": {"n": n}})
            return response.status_code, response.json(), dict(response.headers)

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
            results = list(pool.map(fire, range(REQUESTS)))
        accepted = [body for status, body, _ in results if status == 202]
        limited = [(body, headers) for status, body, headers in results if status == 429]
        assert len(accepted) + len(limited) == REQUESTS, [s for s, _, _ in results]
        assert all(body["code"] == "too_many_active_jobs" and "retry-after" in headers for body, headers in limited)
        ids = [body["id"] for body in accepted]
        poll(
            lambda: {"open": GeneratedProject.objects.filter(pk__in=ids).exclude(status="completed").count()},
            lambda d: d["open"] == 0,
            timeout=240,
        )
        elapsed = time.monotonic() - started
        statuses = set(GeneratedProject.objects.filter(pk__in=ids).values_list("status", flat=True))
        assert statuses == {"completed"}
        print(
            f"load: {REQUESTS} requests from {USERS} users, {len(accepted)} accepted (202), {len(limited)} capped (429); "
            f"all accepted completed in {elapsed:.1f}s = {len(accepted) / elapsed:.1f} generations/s, "
            f"{len(accepted) * 100 / elapsed:.0f} files/s with 2 workers"
        )
        for client, _ in clients:
            client.close()
    finally:
        second.stop()
