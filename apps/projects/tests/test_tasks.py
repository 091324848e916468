"""The generation task: idempotent redelivery, leases, poison guard, enqueue on commit."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.projects.models import GeneratedProject, ProjectFile
from apps.projects.services.generation import JobBusy, generated_project_execute, generated_project_start
from apps.projects.tasks import start_project_generation
from core.jobs import new_lease_owner

pytestmark = pytest.mark.django_db


@pytest.fixture
def pending(cast, make_template):
    template = make_template({"a.txt": "a", "b/{{ 'c' }}.txt": "c"})
    return generated_project_start(
        project=cast.project, template_slug=template.slug, parameters={}, actor=cast.alice, enqueue=False
    )


def test_enqueued_only_after_commit_with_the_id(cast, make_template, django_capture_on_commit_callbacks, monkeypatch):
    template = make_template({"a.txt": "a"})
    sent = []
    monkeypatch.setattr(start_project_generation, "apply_async", lambda args: sent.append(args))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        generated = generated_project_start(
            project=cast.project, template_slug=template.slug, parameters={}, actor=cast.alice
        )
    enqueues = [c for c in callbacks if "enqueue_on_commit" in c.__qualname__]  # (events add their own)
    assert sent == [] and len(enqueues) == 1
    enqueues[0]()
    assert sent == [[generated.pk]]


def test_broker_down_at_enqueue_keeps_the_row_pending(
    cast, make_template, django_capture_on_commit_callbacks, monkeypatch
):
    template = make_template({"a.txt": "a"})

    def broken(args):
        raise ConnectionError("redis down")

    monkeypatch.setattr(start_project_generation, "apply_async", broken)
    with django_capture_on_commit_callbacks(execute=True):
        generated = generated_project_start(
            project=cast.project, template_slug=template.slug, parameters={}, actor=cast.alice
        )
    generated.refresh_from_db()
    assert generated.status == "pending"


def test_redelivered_task_after_completion_does_nothing(pending):
    start_project_generation.apply(args=[pending.pk])
    pending.refresh_from_db()
    first = (pending.status, pending.content_sha256, pending.finished_at, pending.delivery_count)
    file_ids = sorted(ProjectFile.objects.filter(generated=pending).values_list("id", flat=True))
    start_project_generation.apply(args=[pending.pk])
    pending.refresh_from_db()
    assert (pending.status, pending.content_sha256, pending.finished_at, pending.delivery_count) == first
    assert sorted(ProjectFile.objects.filter(generated=pending).values_list("id", flat=True)) == file_ids
    assert first[0] == "completed"


def test_live_lease_of_another_worker_is_not_stolen(pending):
    GeneratedProject.objects.filter(pk=pending.pk).update(
        status="running",
        lease_owner="otherhost:1:task",
        lease_expires_at=timezone.now() + timedelta(seconds=60),
        delivery_count=1,
    )
    with pytest.raises(JobBusy) as info:
        generated_project_execute(generated_id=pending.pk, owner=new_lease_owner("t2"))
    assert 50 < info.value.retry_in <= 60
    pending.refresh_from_db()
    assert pending.status == "running" and pending.lease_owner == "otherhost:1:task"


def test_lease_of_a_dead_local_process_is_taken_over(pending):
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead_pid = int(proc.stdout)
    owner = new_lease_owner("old").split(":")
    owner[1] = str(dead_pid)
    GeneratedProject.objects.filter(pk=pending.pk).update(
        status="running",
        lease_owner=":".join(owner),
        lease_expires_at=timezone.now() + timedelta(seconds=60),
        delivery_count=1,
    )
    outcome = generated_project_execute(generated_id=pending.pk, owner=new_lease_owner("new"))
    assert outcome.ran and outcome.generated.status == "completed"
    assert outcome.generated.delivery_count == 2


def test_expired_lease_is_taken_over_and_output_replaced(pending, settings):
    from apps.projects.models import ProjectFile as File

    # rows a killed delivery left behind (never committed in practice: rows and status commit together)
    File.objects.create(generated=pending, path="stale.txt", size=1, sha256="0" * 64, mode=0o644)
    GeneratedProject.objects.filter(pk=pending.pk).update(
        status="running",
        lease_owner="otherhost:1:task",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
        delivery_count=1,
    )
    outcome = generated_project_execute(generated_id=pending.pk, owner=new_lease_owner("t3"))
    assert outcome.generated.status == "completed"
    assert sorted(ProjectFile.objects.filter(generated=pending).values_list("path", flat=True)) == ["a.txt", "b/c.txt"]


def test_poison_message_fails_after_the_delivery_limit(pending, settings):
    settings.KILN_JOB_MAX_DELIVERIES = 3
    GeneratedProject.objects.filter(pk=pending.pk).update(
        status="running",
        lease_owner="otherhost:1:task",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
        delivery_count=3,
    )
    start_project_generation.apply(args=[pending.pk])
    pending.refresh_from_db()
    assert pending.status == "failed"
    assert pending.error["code"] == "worker_lost_repeatedly"
    assert ProjectFile.objects.filter(generated=pending).count() == 0


def test_cancel_requested_while_running_stops_the_job(pending):
    GeneratedProject.objects.filter(pk=pending.pk).update(cancel_requested=True)
    start_project_generation.apply(args=[pending.pk])
    pending.refresh_from_db()
    assert pending.status == "cancelled"
    assert ProjectFile.objects.filter(generated=pending).count() == 0


def test_task_arguments_are_ids_only(pending, monkeypatch):
    from core import jobs

    sent = []
    monkeypatch.setattr(start_project_generation, "apply_async", lambda args: sent.append(args))
    jobs.enqueue_on_commit(start_project_generation, pending.pk)
    assert all(isinstance(arg, int) for call in sent for arg in call)
