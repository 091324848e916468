"""Audit events written by signals, listed per project; counters kept."""

from __future__ import annotations

import pytest

from apps.projects.models import AuditEvent, Project

pytestmark = pytest.mark.django_db


def test_generation_and_export_leave_an_audit_trail(api, cast, make_template, run_jobs):
    make_template({"a.txt": "{{ 'x' }}"}, slug="audited")
    client = api(cast.mia)
    with run_jobs():
        generated = client.post(
            f"/api/v1/projects/{cast.project.pk}/generated/", {"template": "audited"}, format="json"
        ).json()
    with run_jobs():
        client.post(
            f"/api/v1/projects/{cast.project.pk}/generated/{generated['id']}/exports/",
            {"provider": "zip"},
            format="json",
        )
    events = api(cast.victor).get(f"/api/v1/projects/{cast.project.pk}/audit/?page_size=100").json()["results"]
    actions = [e["action"] for e in events]
    for expected in (
        "project.created",
        "member.added",
        "generation.requested",
        "generation.completed",
        "export.requested",
        "export.completed",
    ):
        assert expected in actions, actions
    requested = next(e for e in events if e["action"] == "generation.requested")
    assert requested["actor_label"] == "mia"
    assert requested["detail"]["template"] == "audited"
    project = Project.objects.get(pk=cast.project.pk)
    assert project.generations_completed == 1
    assert project.generated_bytes == 1
    assert project.exports_completed == 1
    assert api(cast.charlie).get(f"/api/v1/projects/{cast.project.pk}/audit/").status_code == 404


def test_connection_audit_never_holds_the_token(api, cast):
    api(cast.alice).post(
        "/api/v1/connections/", {"provider": "github", "name": "gh", "token": "CANARY-audit-token-0000"}, format="json"
    )
    event = AuditEvent.objects.get(action="connection.created")
    assert "CANARY" not in str(event.detail)
    assert event.actor_label == "alice"
