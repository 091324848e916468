"""Issue 21 items 9 and 20: membership changes under concurrency.

Item 9: two owners removing each other at the same moment both got 204 and left a
project without an owner. The removal now locks the project row, so the second removal
sees the first one's result and gets 409 `last_owner`.

Item 20: a member removed while a request of theirs was between the project scoping
and the role check got 403 "Your role 'None' cannot do this"; a non-member (former or
never) gets 404.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from django.db import connection, connections, transaction

from apps.projects.models import Project, ProjectMembership, Role
from apps.projects.services.projects import project_create

ROUNDS = int(os.environ.get("KILN_OWNER_RACE_ROUNDS", "20"))
MEMBERS = "/api/v1/projects/{project}/members/{member}/"


def _require_postgres() -> None:
    if connection.vendor != "postgresql":
        if os.environ.get("KILN_REQUIRE_SERVICES") == "1":
            pytest.fail("the owner race needs PostgreSQL (set DATABASE_URL)")
        pytest.skip("the owner race needs PostgreSQL row locks (set DATABASE_URL)")


def _waiting_on_locks() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # the view is a per-transaction snapshot otherwise
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return int(cursor.fetchone()[0])


def _remove(api, user, project: Project, membership: ProjectMembership, results: dict, barrier) -> None:
    try:
        barrier.wait(timeout=10)
        response = api(user).delete(MEMBERS.format(project=project.pk, member=membership.pk))
        body = response.json() if response.content else {}
        results[user.username] = (response.status_code, body.get("code"))
    finally:
        connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_two_owners_removing_each_other_leave_exactly_one_owner(api):
    """ROUNDS rounds: both DELETEs pass their permission checks, then queue on the project lock
    (held by the test until both wait); exactly one wins, the other gets 409 last_owner."""
    from apps.projects.tests.factories import UserFactory

    _require_postgres()
    outcomes = []
    for round_ in range(ROUNDS):
        anna = UserFactory(username=f"anna{round_}")
        bert = UserFactory(username=f"bert{round_}")
        project = project_create(owner=anna, name=f"Race {round_}")
        anna_m = ProjectMembership.objects.get(project=project, user=anna)
        bert_m = ProjectMembership.objects.create(project=project, user=bert, role=Role.OWNER)
        results: dict[str, tuple[int, str | None]] = {}
        barrier = threading.Barrier(2)
        threads = [
            threading.Thread(target=_remove, args=(api, anna, project, bert_m, results, barrier)),
            threading.Thread(target=_remove, args=(api, bert, project, anna_m, results, barrier)),
        ]
        with transaction.atomic():
            Project.objects.select_for_update().get(pk=project.pk)  # both removals must queue behind this
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 3
            while _waiting_on_locks() < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            queued = _waiting_on_locks()
        for thread in threads:
            thread.join(timeout=30)
        owners = ProjectMembership.objects.filter(project=project, role=Role.OWNER).count()
        outcomes.append((queued, sorted(results.values()), owners))
    ownerless = [o for o in outcomes if o[2] == 0]
    assert ownerless == [], f"{len(ownerless)} of {ROUNDS} rounds left a project without an owner: {outcomes}"
    for queued, statuses, owners in outcomes:
        assert queued == 2, f"both removals should have waited for the project lock: {outcomes}"
        assert statuses == [(204, None), (409, "last_owner")], outcomes
        assert owners == 1


@pytest.mark.django_db
def test_removing_the_last_owner_and_their_agents_is_refused(api, cast):
    """The owners left are counted after the member's agents leave too (they go with them)."""
    from apps.agents.services.agents import agent_create

    project = cast.project
    agent = agent_create(owner=cast.mia, name="helper")
    ProjectMembership.objects.create(project=project, user=agent.user, role=Role.OWNER)
    alice_m = ProjectMembership.objects.get(project=project, user=cast.alice)
    alice_m.role = Role.MAINTAINER
    alice_m.save()
    mia_m = ProjectMembership.objects.get(project=project, user=cast.mia)
    response = api(agent.user).delete(MEMBERS.format(project=project.pk, member=mia_m.pk))
    assert response.status_code == 409, response.content
    assert response.json()["code"] == "last_owner"
    assert ProjectMembership.objects.filter(project=project, role=Role.OWNER).count() == 1


@pytest.mark.django_db
def test_a_member_removed_mid_request_gets_404_not_403(api, cast, make_template, monkeypatch):
    """The membership disappears right after the project was scoped to the caller (what a
    concurrent removal does): a write answers the non-member 404 (a read may still be served
    from the scoping snapshot), never a 403 naming no role."""
    from apps.projects import views

    template = make_template({"a.txt": "x"})
    ProjectMembership.objects.filter(project=cast.project, user=cast.mia).update(role=Role.OWNER)
    original = views.ProjectScopedViewSet.get_project

    def scoped_then_removed(self):
        project = original(self)
        ProjectMembership.objects.filter(project=project, user=self.request.user).delete()
        return project

    monkeypatch.setattr(views.ProjectScopedViewSet, "get_project", scoped_then_removed)
    base = f"/api/v1/projects/{cast.project.pk}"
    calls = [
        ("post", f"{base}/generated/", {"template": template.slug}),
        ("get", f"{base}/generated/", None),
        ("get", f"{base}/members/", None),
        ("post", f"{base}/members/", {"username": "charlie", "role": "viewer"}),
        ("get", f"{base}/audit/", None),
    ]
    for method, url, body in calls:
        ProjectMembership.objects.get_or_create(project=cast.project, user=cast.mia, defaults={"role": Role.OWNER})
        response = getattr(api(cast.mia), method)(url, body, format="json")
        allowed = (404,) if method == "post" else (200, 404)
        assert response.status_code in allowed, (method, url, response.status_code, response.content)
        assert "None" not in response.content.decode()


@pytest.mark.django_db
def test_a_former_member_gets_404_everywhere_in_the_project(api, cast, generated):
    membership = ProjectMembership.objects.get(project=cast.project, user=cast.mia)
    assert api(cast.alice).delete(MEMBERS.format(project=cast.project.pk, member=membership.pk)).status_code == 204
    base = f"/api/v1/projects/{cast.project.pk}"
    for method, url in [
        ("get", f"{base}/"),
        ("patch", f"{base}/"),
        ("get", f"{base}/members/"),
        ("post", f"{base}/generated/{generated.pk}/retry/"),
        ("get", f"{base}/generated/{generated.pk}/files/"),
        ("post", f"{base}/generated/{generated.pk}/exports/"),
    ]:
        response = getattr(api(cast.mia), method)(url, {}, format="json")
        assert response.status_code == 404, (method, url, response.content)


@pytest.mark.django_db
def test_a_service_call_by_a_non_member_is_404(cast, generated):
    from apps.projects.services.generation import generated_project_retry
    from core.exceptions import NotFound

    ProjectMembership.objects.filter(project=cast.project, user=cast.mia).delete()
    with pytest.raises(NotFound):
        generated_project_retry(generated=generated, actor=cast.mia)
