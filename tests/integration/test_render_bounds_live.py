"""Issue 21 items 2 and 3 on a real Celery worker (PostgreSQL + Redis).

Item 3: a template of two nested `range(100000)` loops rendered longer than the job lease;
the reaper found the lease expired and requeued the job while the first copy still ran
(two copies at once, each for the whole render limit, ending `lease_expired`). The lease
keeper renews every held lease from a thread, so the reaper, run here as beat would run
it, finds nothing to recover: one delivery, one copy, ending `render_time_limit`.

Item 2: a render that allocates past the render memory limit fails `limit_exceeded`
naming the file, and the worker (the pool child that ran the job included) survives and
runs the next job.

The worker runs with a 2 s lease (renewed every 0.5 s), a 6 s render time limit and a
256 MiB render memory limit.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import Worker

pytestmark = [pytest.mark.integration]

TERMINAL = {"completed", "failed", "cancelled"}
LEASE_SECONDS = 2
RENDER_SECONDS = 6
MEMORY_LIMIT = 256 * 1024 * 1024


@pytest.fixture(scope="module")
def bounded_worker(services: None, django_db_setup: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """One worker for the module (its start-up is most of these tests' time)."""
    env = {
        "KILN_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
        "KILN_RENDER_TIME_LIMIT": str(RENDER_SECONDS),
        "KILN_RENDER_MEMORY_LIMIT": str(MEMORY_LIMIT),
    }
    queue = f"kiln-bounds-{uuid.uuid4().hex[:8]}"
    log = tmp_path_factory.mktemp("bounds") / "worker.log"
    worker = Worker(queue, log, concurrency=2, extra_env=env).start()
    yield worker
    worker.stop()


@pytest.fixture
def on_worker(bounded_worker: Worker, transactional_db: Any, settings: Any) -> Iterator[Worker]:
    """Tasks of the test go to the module's worker; the reaper here uses the worker's lease."""
    from core.celery import app

    previous = (app.conf.task_always_eager, app.conf.task_default_queue)
    app.conf.task_always_eager = False
    app.conf.task_default_queue = bounded_worker.queue
    settings.KILN_JOB_LEASE_SECONDS = LEASE_SECONDS
    yield bounded_worker
    app.conf.task_always_eager, app.conf.task_default_queue = previous


def _run(generated: Any, *, reap: bool, timeout: float = 60.0) -> Any:
    """Wait for the job to end, running the reaper every 0.3 s the way beat would."""
    from apps.projects.models import GeneratedProject
    from core.jobs import reap_jobs

    deadline = time.monotonic() + timeout
    reaped: list[dict[str, int]] = []
    while time.monotonic() < deadline:
        row = GeneratedProject.objects.get(pk=generated.pk)
        if row.status in TERMINAL:
            row.reaped = reaped
            return row
        if reap:
            report = reap_jobs().as_dict()
            if any(report.values()):
                reaped.append(report)
        time.sleep(0.3)
    raise AssertionError(f"job {generated.pk} not finished after {timeout}s")


def _received(worker: Worker, task: str) -> int:
    """How many messages of `task` the worker received (each redelivery is one more)."""
    lines = worker.log.read_text(errors="replace").splitlines()
    return sum(1 for line in lines if f"Task {task}[" in line and line.rstrip().endswith("received"))


def test_a_render_longer_than_the_lease_runs_once_and_ends_render_time_limit(on_worker, make_template):
    from apps.projects.models import GeneratedProject
    from apps.projects.services.generation import generated_project_start
    from apps.projects.services.projects import project_create
    from apps.projects.tests.factories import UserFactory

    slow = make_template(
        {"slow.txt": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"},
        slug=f"slow-{uuid.uuid4().hex[:6]}",
    )
    user = UserFactory(username=f"slow-{uuid.uuid4().hex[:6]}")
    project = project_create(owner=user, name=f"Slow {uuid.uuid4().hex[:6]}")
    started = time.monotonic()
    generated = generated_project_start(project=project, template_slug=slow.slug, parameters={}, actor=user)
    final = _run(generated, reap=True)
    elapsed = time.monotonic() - started
    received = _received(on_worker, "projects.start_project_generation")
    print(
        f"long render: {final.status} {final.error and final.error['code']} in {elapsed:.1f}s, "
        f"deliveries {final.delivery_count}, reaper actions {final.reaped}, task messages received {received}"
    )
    assert final.status == "failed", final.error
    assert final.error["code"] == "render_time_limit", final.error
    assert final.error["extra"]["file"] == "slow.txt"
    assert final.delivery_count == 1, "the job was delivered (run) more than once"
    assert final.reaped == [], "the reaper recovered a job that was still running"
    assert received == 1, on_worker.log.read_text(errors="replace")[-3000:]
    assert RENDER_SECONDS <= elapsed < RENDER_SECONDS + 20
    assert not GeneratedProject.objects.filter(status__in=["pending", "running"]).exists()


ISSUE_TEMPLATE = "{% set a='a'*10000000 %}\n" + "{% set a=a~a %}\n" * 5 + "{{ a }}\n"
BEYOND_THE_CHECKS = (
    "{% set a = 'a' * 9000000 %}{% set l = [" + ", ".join(f"a ~ {i}" for i in range(60)) + "] %}{{ l|length }}\n"
)


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_renders_over_the_limits_fail_coded_and_the_worker_survives(on_worker, make_template):
    from apps.projects.services.generation import generated_project_start
    from apps.projects.services.projects import project_create
    from apps.projects.tests.factories import UserFactory

    user = UserFactory(username=f"hog-{uuid.uuid4().hex[:6]}")
    project = project_create(owner=user, name=f"Hog {uuid.uuid4().hex[:6]}")
    pool = set(on_worker.children())
    assert pool, "the worker has no pool process"

    def generate(files: dict[str, str]) -> Any:
        template = make_template(files, slug=f"t-{uuid.uuid4().hex[:6]}")
        row = generated_project_start(project=project, template_slug=template.slug, parameters={}, actor=user)
        return _run(row, reap=False)

    started = time.monotonic()
    bomb = generate({"ok.txt": "fine\n", "bomb.txt": ISSUE_TEMPLATE})
    bomb_seconds = time.monotonic() - started
    started = time.monotonic()
    hog = generate({"ok.txt": "fine\n", "hog.txt": BEYOND_THE_CHECKS})
    hog_seconds = time.monotonic() - started
    after = generate({"ok.txt": "fine {{ 1 + 1 }}\n"})
    peaks = {pid: _peak_rss_mb(pid) for pid in on_worker.children()}
    print(
        f"issue template: {bomb.status} {bomb.error['code']} in {bomb_seconds:.2f}s; "
        f"beyond the checks: {hog.status} {hog.error['code']} in {hog_seconds:.2f}s; "
        f"pool processes' peak RSS (MB): {peaks}"
    )
    assert bomb.status == "failed" and bomb.error["code"] == "output_limit_exceeded", bomb.error
    assert bomb.error["extra"] == {"file": "bomb.txt", "line": 2}
    assert hog.status == "failed" and hog.error["code"] == "limit_exceeded", hog.error
    assert hog.error["extra"]["file"] == "hog.txt"
    assert after.status == "completed", after.error
    assert set(peaks) == pool, "a pool process was lost and replaced"
    assert max(peaks.values()) < MEMORY_LIMIT / (1024 * 1024), peaks  # the 540 MB never lived in the worker
