"""Live job events: what is recorded, the SSE streams (WSGI and ASGI), resuming, time bounds, permissions."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from apps.events.models import JobEvent
from apps.events.tests import sse
from apps.projects.models import GeneratedProject, RepositoryExport
from apps.projects.services.exports import repository_export_execute, repository_export_start
from apps.projects.services.generation import generated_project_execute, generated_project_start
from apps.workflows.models import WorkflowRun
from apps.workflows.services.workflow_executor import workflow_create, workflow_run_start
from core.jobs import JobStatus, claim, job_log

FILES = {"README.md": "# {{ name }}\n", "src/{{ name }}.py": "X = 1\n", "docs/a.txt": "a\n"}
PARAMS = {"type": "object", "properties": {"name": {"type": "string", "default": "demo"}}}


def events_url(generated, suffix="events/"):
    return f"/api/v1/projects/{generated.project_id}/generated/{generated.pk}/{suffix}"


def kinds(job):
    rows = JobEvent.objects.filter(job_type=job._meta.label_lower, job_id=job.pk).order_by("id")
    return [(e.kind, e.data.get("status") if e.kind == "status" else None) for e in rows]


@pytest.fixture
def template(make_template):
    return make_template(FILES, slug="evt", parameters=PARAMS)


@pytest.fixture
def pending(cast, template):
    """A recorded generation that no worker has taken yet (the tests play the worker)."""
    return generated_project_start(
        project=cast.project, template_slug="evt", parameters={}, actor=cast.dave, enqueue=False
    )


def test_a_generation_records_status_progress_and_log_events_in_order(cast, api, template, run_jobs):
    with run_jobs():
        created = api(cast.dave).post(
            f"/api/v1/projects/{cast.project.pk}/generated/", {"template": "evt"}, format="json"
        )
    generated = GeneratedProject.objects.get(pk=created.json()["id"])
    assert generated.status == "completed"
    recorded = kinds(generated)
    statuses = [status for kind, status in recorded if kind == "status"]
    assert statuses == ["pending", "running", "completed"]
    assert recorded[-1] == ("status", "completed")
    assert ("progress", None) in recorded and ("log", None) in recorded
    last_progress = JobEvent.objects.filter(job_id=generated.pk, kind="progress").last()
    assert last_progress.data == {"done": 3, "total": 3}

    logs = api(cast.victor).get(events_url(generated, "logs/"))
    assert logs.status_code == 200
    body = logs.json()
    assert body["id"] == generated.pk and body["status"] == "completed"
    assert body["logs"][0] == "INFO rendering template evt 1.0.0 (3 template files)"
    assert body["logs"][-1].startswith(f"INFO wrote 3 files, {generated.total_bytes} bytes, sha256 ")


def test_logs_lines_are_one_line_and_redacted(cast, pending):
    job_log(GeneratedProject, pending.pk, "ERROR push to https://kiln:ghp_" + "a" * 30 + "@example.test failed\nforged")
    line = JobEvent.objects.filter(job_id=pending.pk, kind="log").last().data["line"]
    assert "ghp_" not in line and "\n" not in line and line.endswith("failed\\nforged")


@pytest.mark.parametrize("wakeup", ["redis", "polling"])
def test_resuming_with_last_event_id_mid_job_gets_every_event_once(
    wakeup, cast, pending, http_for, settings, transactional_db
):
    """Two connections with a gap between them: together they carry every event, in order, each once."""
    if wakeup == "polling":
        settings.KILN_EVENTS_REDIS_URL = ""
        settings.KILN_EVENTS_POLL_SECONDS = 0.1
    else:
        assert settings.KILN_EVENTS_REDIS_URL.startswith("redis://"), "CELERY_BROKER_URL names no Redis"
    lease = claim(GeneratedProject, pending.pk, owner="test:1:a").lease
    lease.heartbeat(done=1, total=3)
    job_log(GeneratedProject, pending.pk, "INFO first file")
    client = http_for(cast.victor)  # a viewer may follow the project's jobs
    url = events_url(pending)

    first = sse.read(client, url, stop=lambda e: e.event == "log")
    assert first.status_code == 200 and first.retry == 1000
    assert [e.event for e in first.events] == ["status", "status", "progress", "log"]

    lease.heartbeat(done=2, total=3)  # while nobody listens
    job_log(GeneratedProject, pending.pk, "INFO second file")

    second: dict[str, sse.Connection] = {}
    reader = threading.Thread(
        target=lambda: second.setdefault("c", sse.read(client, url, last_event_id=first.events[-1].id))
    )
    reader.start()
    time.sleep(0.5)  # the second client is connected and waiting
    lease.heartbeat(done=3, total=3)
    job_log(GeneratedProject, pending.pk, "INFO third file")
    with transaction_atomic():
        lease.finish(JobStatus.COMPLETED, content_sha256="0" * 64, file_count=3)
    reader.join(timeout=20)
    assert not reader.is_alive()
    resumed = second["c"]
    assert resumed.ended_by_server, "the stream must end after the job's final status"

    stored = list(JobEvent.objects.filter(job_id=pending.pk, job_type="projects.generatedproject").order_by("id"))
    seen = [int(e.id) for e in first.events + resumed.events]
    assert seen == [e.pk for e in stored], "every event once, in order"
    assert [e.data for e in resumed.events if e.event == "progress"] == [
        {"done": 2, "total": 3},
        {"done": 3, "total": 3},
    ]
    assert resumed.events[-1].event == "status" and resumed.events[-1].data == {"status": "completed", "error": None}

    # resuming a finished job with nothing left: 204, which stops EventSource's reconnecting
    done = sse.read(client, url, last_event_id=resumed.events[-1].id)
    assert done.status_code == 204


def transaction_atomic():
    from django.db import transaction

    return transaction.atomic()


def test_a_connection_is_closed_at_its_time_bound(cast, pending, http_for, settings, transactional_db):
    settings.KILN_EVENTS_MAX_SECONDS = 1.0
    settings.KILN_EVENTS_POLL_SECONDS = 0.2
    connection = sse.read(http_for(cast.dave), events_url(pending))
    assert connection.status_code == 200
    assert connection.ended_by_server
    assert 1.0 <= connection.seconds < 4.0, connection.seconds
    assert [(e.event, e.data["status"]) for e in connection.events] == [("status", "pending")]


def test_a_finished_job_without_events_still_ends_with_its_status(cast, pending, api):
    """Rows finished before events existed (or by a writer that announced nothing)."""
    JobEvent.objects.all().delete()
    GeneratedProject.objects.filter(pk=pending.pk).update(status="failed", error={"code": "x", "message": "m"})
    response = api(cast.victor).get(events_url(pending), HTTP_ACCEPT="text/event-stream")
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    assert body == 'retry: 1000\n\nevent: status\ndata: {"status":"failed","error":{"code":"x","message":"m"}}\n\n'


@pytest.fixture
def three_jobs(cast, template, run_jobs):
    """A generation, an export of it and a workflow run, all finished."""
    generated = generated_project_execute(
        generated_id=generated_project_start(
            project=cast.project, template_slug="evt", parameters={}, actor=cast.dave, enqueue=False
        ).pk,
        owner="t:1:g",
    ).generated
    export = repository_export_start(generated=generated, data={"provider": "zip"}, actor=cast.mia, enqueue=False)
    export, _ = repository_export_execute(export_id=export.pk, owner="t:1:e")
    steps = [{"id": "gen", "type": "file_generation", "input": {"project": cast.project.pk, "template": "evt"}}]
    workflow = workflow_create(actor=cast.mia, name="w", project=cast.project.pk, steps=steps)
    with run_jobs():
        run = workflow_run_start(workflow=workflow, inputs={}, actor=cast.mia)
    return {
        "generated": events_url(generated),
        "export": f"/api/v1/projects/{cast.project.pk}/generated/{generated.pk}/exports/{export.pk}/events/",
        "run": f"/api/v1/runs/{run.pk}/events/",
    }


@pytest.mark.parametrize("job", ["generated", "export", "run"])
def test_streams_follow_the_api_permissions(job, cast, api, three_jobs):
    url = three_jobs[job]
    outsider = api(cast.charlie).get(url, HTTP_ACCEPT="text/event-stream")
    assert outsider.status_code == 404
    assert outsider["Content-Type"] == "application/json"
    assert outsider.json()["code"] == "not_found"
    assert api().get(url, HTTP_ACCEPT="text/event-stream").status_code == 401
    member = cast.victor if job != "run" else cast.mia
    response = api(member).get(url, HTTP_ACCEPT="text/event-stream")
    assert response.status_code == 200, getattr(response, "content", b"")
    assert response["Content-Type"] == "text/event-stream; charset=utf-8"
    body = b"".join(response.streaming_content).decode()
    assert '"status":"completed"' in body


def test_export_logs_endpoint(cast, api, three_jobs):
    export = RepositoryExport.objects.get()
    body = api(cast.victor).get(three_jobs["export"].replace("events/", "logs/")).json()
    assert body["status"] == "completed" and body["logs"], body
    run = WorkflowRun.objects.get()
    assert any(
        "[gen] INFO file_generation started" in e.data.get("line", "") for e in JobEvent.objects.filter(kind="log")
    )
    statuses = [s for kind, s in kinds(run) if kind == "status"]
    assert statuses == ["pending", "running", "completed"], kinds(run)
    assert kinds(export)[-1] == ("status", "completed")


def test_deleting_a_job_deletes_its_events(cast, pending):
    assert JobEvent.objects.filter(job_id=pending.pk).exists()
    GeneratedProject.objects.filter(pk=pending.pk).delete()
    assert not JobEvent.objects.filter(job_type="projects.generatedproject", job_id=pending.pk).exists()


def test_under_asgi_the_stream_is_asynchronous_and_resumes(cast, pending, settings, transactional_db):
    """Django's ASGI handler: an async generator serves the stream (no thread waits with it)."""
    from django.test import AsyncClient

    settings.KILN_EVENTS_MAX_SECONDS = 1.0
    settings.KILN_EVENTS_POLL_SECONDS = 0.1
    first_id = JobEvent.objects.filter(job_id=pending.pk, job_type="projects.generatedproject").first().pk
    claim(GeneratedProject, pending.pk, owner="test:1:b")

    async def stream() -> tuple[int, bool, str, float]:
        client = AsyncClient()
        await client.aforce_login(cast.dave)
        started = time.monotonic()
        response = await client.get(events_url(pending), headers={"Last-Event-ID": str(first_id)})
        chunks = [chunk async for chunk in response.streaming_content]
        await sync_to_async(connections.close_all)()  # the polls' connection, in the thread they ran in
        return response.status_code, response.is_async, b"".join(chunks).decode(), time.monotonic() - started

    status, is_async, body, seconds = asyncio.run(stream())
    assert status == 200 and is_async
    assert seconds >= 1.0  # open until the time bound: the job is still running
    assert '"status":"pending"' not in body  # read before (Last-Event-ID)
    assert body.startswith("retry: 1000\n\nid: ") and '"status":"running"' in body
