"""Live job events end to end: uvicorn (Kiln's ASGI application), Redis pub/sub and a real worker.

A client connects while the job waits for the (paused) worker, reads the first event and
leaves; it comes back with Last-Event-ID while the worker runs the job and must receive
every later event once, in order, up to `completed`, when the server ends the stream.
"""

from __future__ import annotations

import os
import signal

import httpx
import pytest

from apps.events.tests import sse

pytestmark = [pytest.mark.integration]


def test_under_uvicorn_a_client_resuming_mid_job_gets_every_event_once(asgi_stack, celery_worker):
    from apps.events.models import JobEvent
    from apps.projects.tests.factories import UserFactory

    UserFactory(username="eve")
    with httpx.Client(base_url=asgi_stack.url, timeout=30) as client:
        token = client.post("/api/v1/auth/token/", json={"username": "eve", "password": "pw-for-tests"}).json()["token"]
        client.headers["Authorization"] = f"Token {token}"
        project = client.post("/api/v1/projects/", json={"name": "Live events"}).json()
        base = f"/api/v1/projects/{project['id']}/generated/"
        os.killpg(celery_worker.process.pid, signal.SIGSTOP)  # the job waits: the client meets it pending
        try:
            created = client.post(base, json={"template": "python-package", "parameters": {"project_name": "live"}})
            assert created.status_code == 202, created.text
            url = f"{base}{created.json()['id']}/events/"
            first = sse.read(client, url, stop=lambda event: event.event == "status")
            assert first.status_code == 200 and [e.data["status"] for e in first.events] == ["pending"]
        finally:
            os.killpg(celery_worker.process.pid, signal.SIGCONT)
        resumed = sse.read(client, url, last_event_id=first.events[-1].id)
        assert resumed.status_code == 200 and resumed.ended_by_server
        outsider = httpx.get(asgi_stack.url + url, headers={"Accept": "text/event-stream"})
        assert outsider.status_code == 401

    stored = list(JobEvent.objects.filter(job_id=created.json()["id"], job_type="projects.generatedproject"))
    assert [int(e.id) for e in first.events + resumed.events] == [e.pk for e in stored]
    statuses = [e.data["status"] for e in resumed.events if e.event == "status"]
    assert statuses == ["running", "completed"], statuses
    progress = [e.data for e in resumed.events if e.event == "progress"]
    assert progress[-1]["done"] == progress[-1]["total"] > 0
