"""Kill tests: SIGKILL a worker (whole, or only its pool child) in the middle of a job.

Each round starts a job on real Celery worker processes (PostgreSQL + Redis), kills at a
varying point, starts a replacement when the whole worker died, runs the reaper the way
beat would, and checks that the job ends `completed` exactly once (one file set, one
remote repository, the same commit) — or `failed` with a clear code after the delivery
limit — and never stays pending or running.

CI runs KILN_KILL_ROUNDS=2 per scenario; the full run is
`KILN_KILL_ROUNDS=10 scripts/test.sh tests/reliability -m integration` on PostgreSQL + Redis.
"""

from __future__ import annotations

import os
import random
import signal
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from tests.integration.harness import Worker

pytestmark = [pytest.mark.integration]

ROUNDS = int(os.environ.get("KILN_KILL_ROUNDS", "2"))
TERMINAL = {"completed", "failed", "cancelled"}


@pytest.fixture
def kill_queue(services, transactional_db, tmp_path):
    from core.celery import app

    queue = f"kiln-kill-{uuid.uuid4().hex[:8]}"
    previous = (app.conf.task_always_eager, app.conf.task_default_queue)
    app.conf.task_always_eager = False
    app.conf.task_default_queue = queue
    workers: list[Worker] = []

    def start() -> Worker:
        worker = Worker(queue, tmp_path / "worker.log", concurrency=1).start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.kill()
    app.conf.task_always_eager, app.conf.task_default_queue = previous


def wait_for(fetch, until, timeout=90.0, reap=False):
    from core.jobs import reap_jobs

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fetch()
        if until(last):
            return last
        if reap:
            reap_jobs()
        time.sleep(0.2)
    raise AssertionError(f"timed out; last state: {last}")


def kill(worker: Worker, whole: bool) -> None:
    if whole:
        worker.kill(signal.SIGKILL)
        return
    children = worker.children()
    assert children, "the worker has no pool child"
    for pid in children:
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def heavy_template(make_template):
    files = {f"pkg/m{i:04d}.txt": "{% for i in range(2500) %}{{ i * i }},{% endfor %}\n" for i in range(1500)}
    return make_template(files, slug=f"heavy-{uuid.uuid4().hex[:6]}")


@pytest.mark.parametrize("whole", [False, True], ids=["pool-child", "whole-worker"])
def test_generation_survives_kills(kill_queue, heavy_template, whole):
    from apps.projects.models import GeneratedProject, ProjectFile
    from apps.projects.services.generation import (
        generated_project_dry_run,
        generated_project_start,
    )
    from apps.projects.services.projects import project_create
    from apps.projects.tests.factories import UserFactory
    from tests.trees import materialised

    user = UserFactory(username=f"killer-{uuid.uuid4().hex[:6]}")
    project = project_create(owner=user, name=f"Kill {uuid.uuid4().hex[:6]}")
    reference = generated_project_dry_run(project=project, template_slug=heavy_template.slug, parameters={}, actor=user)
    worker = kill_queue()
    outcomes = []
    for _ in range(ROUNDS):
        generated = generated_project_start(
            project=project, template_slug=heavy_template.slug, parameters={}, actor=user
        )
        wait_for(
            lambda g=generated: GeneratedProject.objects.get(pk=g.pk),
            lambda g: g.status == "running" and g.progress_done > 0,
            timeout=60,
        )
        time.sleep(random.uniform(0.0, 0.6))
        kill(worker, whole)
        if whole:
            worker = kill_queue()
        final = wait_for(
            lambda g=generated: GeneratedProject.objects.get(pk=g.pk), lambda g: g.status in TERMINAL, reap=True
        )
        outcomes.append((final.status, final.delivery_count))
        if final.status == "failed":
            assert final.error["code"] in {"worker_lost_repeatedly", "lease_expired"}, final.error
            continue
        assert final.status == "completed", final.error
        assert final.content_sha256 == reference.content_sha256
        assert ProjectFile.objects.filter(generated=final).count() == reference.file_count
        folder = materialised(final)  # every recorded file is stored and reads back verified
        assert sum(1 for p in folder.rglob("*") if p.is_file()) == reference.file_count
    print(f"kill rounds ({'whole worker' if whole else 'pool child'}):", outcomes)
    assert any(status == "completed" for status, _ in outcomes)
    assert not GeneratedProject.objects.filter(status__in=["pending", "running"]).exists()


@pytest.mark.parametrize("whole", [False, True], ids=["pool-child", "whole-worker"])
def test_export_survives_kills(kill_queue, make_template, github_forge, whole):
    from apps.projects.models import RepositoryExport
    from apps.projects.services.connections import connection_create
    from apps.projects.services.exports import repository_export_start
    from apps.projects.services.generation import generated_project_start
    from apps.projects.services.projects import project_create
    from apps.projects.tests.factories import UserFactory
    from tests.forge.fixtures import ALICE_TOKEN

    template = make_template({"README.md": "# kill\n", "a/b.txt": "b\n"}, slug=f"small-{uuid.uuid4().hex[:6]}")
    user = UserFactory(username=f"exporter-{uuid.uuid4().hex[:6]}")
    project = project_create(owner=user, name=f"Export kill {uuid.uuid4().hex[:6]}")
    connection = connection_create(
        owner=user, provider="github", name="forge", base_url=github_forge.api_url, token=ALICE_TOKEN
    )
    worker = kill_queue()
    generated = generated_project_start(project=project, template_slug=template.slug, parameters={}, actor=user)
    from apps.projects.models import GeneratedProject

    generated = wait_for(lambda: GeneratedProject.objects.get(pk=generated.pk), lambda g: g.status in TERMINAL)
    assert generated.status == "completed"
    github_forge.delay("POST", r"/user/repos$", 0.6, times=None)
    github_forge.delay("POST", r"git-receive-pack$", 0.6, times=None)
    outcomes = []
    for round_no in range(ROUNDS):
        name = f"kill-{round_no}-{uuid.uuid4().hex[:4]}"
        export = repository_export_start(
            generated=generated,
            data={"provider": "github", "connection": connection.pk, "repository": {"name": name}},
            actor=user,
        )
        wait_for(lambda e=export: RepositoryExport.objects.get(pk=e.pk), lambda e: e.status == "running", timeout=60)
        time.sleep(random.uniform(0.1, 1.2))
        kill(worker, whole)
        if whole:
            worker = kill_queue()
        final = wait_for(
            lambda e=export: RepositoryExport.objects.get(pk=e.pk), lambda e: e.status in TERMINAL, reap=True
        )
        outcomes.append((final.status, final.delivery_count))
        if final.status == "failed":
            assert final.error["code"] in {"worker_lost_repeatedly", "lease_expired"}, final.error
            continue
        assert final.status == "completed", final.error
        assert [r for r in github_forge.repos if r.endswith(f"/{name}")] == [f"alice/{name}"]
        assert github_forge.refs(f"alice/{name}") == {"refs/heads/main": final.commit_sha}
    print(f"export kill rounds ({'whole worker' if whole else 'pool child'}):", outcomes)
    assert any(status == "completed" for status, _ in outcomes)
    assert len({e.commit_sha for e in RepositoryExport.objects.filter(status="completed")}) == 1
    assert not RepositoryExport.objects.filter(status__in=["pending", "running"]).exists()
    assert Path(settings.GENERATED_PROJECTS_DIR).exists()
