"""Kill test: SIGKILL a real Celery worker in the middle of a template update.

A generation of version 1.0.0 is exported to the local GitHub, the team commits on top and
2.0.0 is published. Each round starts the same update (pull request mode) on a real worker
process (PostgreSQL + Redis), kills the pool child or the whole worker while the update is
running (the forge holds pushes and pull request calls a little, so the kill lands between
steps), starts a replacement when needed, runs the reaper as beat would, and checks the
update ends completed exactly once: one branch with ONE commit on top of main, ONE pull
request, the same commit in every round — or failed with a clear code after the delivery
limit — and never stays pending or running.

CI runs KILN_UPDATE_KILL_ROUNDS=1 per scenario; `KILN_UPDATE_KILL_ROUNDS=10 scripts/test.sh
tests/reliability/test_update_kills.py` is the long run.
"""

from __future__ import annotations

import os
import random
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import Worker

pytestmark = [pytest.mark.integration]

ROUNDS = int(os.environ.get("KILN_UPDATE_KILL_ROUNDS", "1"))
TERMINAL = {"completed", "failed", "cancelled"}


@pytest.fixture
def worker_factory(services: None, transactional_db: Any, tmp_path: Path) -> Iterator[Callable[[], Worker]]:
    from core.celery import app

    queue = f"kiln-update-kill-{uuid.uuid4().hex[:8]}"
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


def wait_for(fetch: Callable[[], Any], until: Callable[[Any], bool], timeout: float = 120.0, reap: bool = False) -> Any:
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


@pytest.mark.parametrize("whole", [False, True], ids=["pool-child", "whole-worker"])
def test_update_survives_kills(
    worker_factory: Callable[[], Worker], github_forge: Any, settings: Any, whole: bool
) -> None:
    from apps.projects.models import ProjectMembership, Role  # noqa: F401 - app registry loaded
    from apps.projects.services.connections import connection_create
    from apps.projects.services.projects import project_create
    from apps.projects.tests.factories import UserFactory
    from apps.updates.models import TemplateUpdate
    from apps.updates.services.updates import update_start
    from apps.updates.tests.conftest import USER_COMMIT, V1, V2, export_to, generate, publish
    from tests.forge.fixtures import ALICE_TOKEN
    from tests.forge.model import run_git

    slug = f"kill-{uuid.uuid4().hex[:6]}"
    user = UserFactory(username=f"updater-{uuid.uuid4().hex[:6]}")
    project = project_create(owner=user, name=f"Update kill {uuid.uuid4().hex[:6]}")
    publish(settings, slug, "1.0.0", V1)
    generated = generate(project, user, slug)
    connection = connection_create(
        owner=user, provider="github", name="forge", base_url=github_forge.api_url, token=ALICE_TOKEN
    )
    export = export_to(
        generated, user, {"provider": "github", "connection": connection.pk, "repository": {"name": slug}}
    )
    full_name = export.remote_full_name
    github_forge.seed_commit(full_name, files=USER_COMMIT, message="our changes")
    publish(settings, slug, "2.0.0", V2)
    branch = f"kiln/update/{slug}-2.0.0"
    github_forge.delay("POST", r"git-receive-pack$", 0.6, times=None)
    github_forge.delay("POST", r"/pulls$", 0.6, times=None)
    github_forge.delay("GET", r"/pulls$", 0.3, times=None)

    worker = worker_factory()
    outcomes = []
    for _ in range(ROUNDS):
        update, _created = update_start(generated=generated, data={"mode": "pull_request"}, actor=user)
        wait_for(lambda u=update: TemplateUpdate.objects.get(pk=u.pk), lambda u: u.status == "running", timeout=60)
        time.sleep(random.uniform(0.2, 1.4))
        if whole:
            worker.kill(signal.SIGKILL)
            worker = worker_factory()
        else:
            children = worker.children()
            assert children, "the worker has no pool child"
            for pid in children:
                os.kill(pid, signal.SIGKILL)
        final = wait_for(
            lambda u=update: TemplateUpdate.objects.get(pk=u.pk), lambda u: u.status in TERMINAL, reap=True
        )
        outcomes.append((final.status, final.delivery_count, final.outcome))
        if final.status == "failed":
            assert final.error["code"] in {"worker_lost_repeatedly", "lease_expired"}, final.error
            continue
        assert final.status == "completed", final.error
        assert final.outcome == "proposed" and final.pull_request["number"] == 1
    print(f"update kill rounds ({'whole worker' if whole else 'pool child'}):", outcomes)
    assert any(status == "completed" for status, _, _ in outcomes)
    completed = TemplateUpdate.objects.filter(export=export, status="completed")
    assert len({u.commit_sha for u in completed}) == 1
    assert len(github_forge.changes(full_name)) == 1  # one pull request
    bare = github_forge.repo_path(full_name)
    count = run_git(["rev-list", "--count", f"main..{branch}"], home=github_forge.home, git_dir=bare).stdout
    assert count.strip() == b"1"  # one commit on the update branch
    assert github_forge.refs(full_name)[f"refs/heads/{branch}"] == completed.first().commit_sha
    assert not TemplateUpdate.objects.filter(status__in=["pending", "running"]).exists()
