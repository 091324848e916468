"""A rollout over 20 exported repositories in 3 projects, and the drift of the fleet.

alice owns project One and is a maintainer of Two: their repositories are updated (bounded
concurrency, one pull request each). She only views Three (bob's): its repositories stay
untouched and the rollout says so. Running the rollout again opens no second pull request.
Tasks run eagerly after each commit (`run_jobs`), the same code path a worker runs.
"""

from __future__ import annotations

from typing import Any

import pytest

from apps.projects.models import ProjectMembership, Role
from apps.projects.services.connections import connection_create
from apps.projects.services.projects import project_create
from apps.updates.models import RolloutItem, TemplateUpdate
from apps.updates.tests.conftest import V1, V2, export_to, generate, publish
from tests.forge.fixtures import ALICE_TOKEN

pytestmark = pytest.mark.django_db

SIZES = {"one": 8, "two": 7, "three": 5}
BRANCH = "kiln/update/fleet-2.0.0"


@pytest.fixture
def make_fleet(cast: Any, settings: Any, github_forge: Any) -> Any:
    """`make_fleet(sizes)`: repositories exported from version 1.0.0 in projects one/two/three, then 2.0.0."""
    return lambda sizes=SIZES: _fleet(cast, settings, github_forge, sizes)


@pytest.fixture
def fleet(make_fleet: Any) -> dict[str, Any]:
    return make_fleet()


def _fleet(cast: Any, settings: Any, github_forge: Any, sizes: dict[str, int]) -> dict[str, Any]:
    settings.KILN_ROLLOUT_CONCURRENCY = 3
    settings.KILN_MAX_ACTIVE_JOBS_PER_PROJECT = 50
    alice, bob = cast.alice, cast.charlie  # charlie plays the owner of the third project
    publish(settings, "fleet", "1.0.0", V1)
    one = cast.project
    two = project_create(owner=bob, name="Two")
    ProjectMembership.objects.create(project=two, user=alice, role=Role.MAINTAINER)
    three = project_create(owner=bob, name="Three")
    ProjectMembership.objects.create(project=three, user=alice, role=Role.VIEWER)
    connections = {
        person.pk: connection_create(
            owner=person, provider="github", name="forge", base_url=github_forge.api_url, token=ALICE_TOKEN
        )
        for person in (alice, bob)
    }
    repos: dict[str, list[str]] = {}
    for key, project in (("one", one), ("two", two), ("three", three)):
        owner = alice if key == "one" else bob
        generated = generate(project, owner, "fleet")
        repos[key] = []
        for index in range(sizes[key]):
            name = f"{key}-{index}"
            export_to(
                generated,
                owner,
                {"provider": "github", "connection": connections[owner.pk].pk, "repository": {"name": name}},
            )
            repos[key].append(f"alice/{name}")
    for full_name in repos["one"][:3]:
        github_forge.seed_commit(full_name, files={"NOTES.md": "team notes\n"}, message="ours")
    publish(settings, "fleet", "2.0.0", V2)
    return {"projects": {"one": one, "two": two, "three": three}, "repos": repos}


def test_rollout_updates_maintained_projects_only_and_is_idempotent(
    api: Any, cast: Any, fleet: dict[str, Any], github_forge: Any, run_jobs: Any
) -> None:
    client = api(cast.alice)
    with run_jobs():
        started = client.post("/api/v1/templates/fleet/rollouts/", {"mode": "pull_request"}, format="json")
    assert started.status_code == 202, started.content
    rollout_id = started.json()["id"]
    detail = client.get(f"/api/v1/rollouts/{rollout_id}/").json()
    assert detail["status"] == "completed", detail
    assert detail["progress"] == {"done": 15, "total": 15}
    assert detail["to_version"] == "2.0.0" and detail["template"] == "fleet"
    assert len(detail["items"]) == 15
    assert {item["status"] for item in detail["items"]} == {"completed"}
    assert all(item["pull_request"] and item["pull_request"]["number"] == 1 for item in detail["items"])
    three = fleet["projects"]["three"].pk
    assert detail["skipped"] == [{"project": three, "reason": "your role is viewer; maintainer or above is needed"}]

    for key in ("one", "two"):
        for full_name in fleet["repos"][key]:
            assert f"refs/heads/{BRANCH}" in github_forge.refs(full_name), full_name
            assert len(github_forge.changes(full_name)) == 1
    for full_name in fleet["repos"]["three"]:  # the project alice only views: untouched
        assert set(github_forge.refs(full_name)) == {"refs/heads/main"}
        assert github_forge.changes(full_name) == []
    assert not TemplateUpdate.objects.filter(project_id=three).exists()

    drift = client.get("/api/v1/templates/fleet/drift/").json()
    assert drift["count"] == 20
    rows = drift["results"]
    assert all(row["version"] == "1.0.0" and row["latest_version"] == "2.0.0" and row["behind"] for row in rows)
    assert all(row["open_update"] is None for row in rows if row["project"] == three)
    awaiting = [row for row in rows if row["project"] != three]
    assert all(row["open_update"]["pull_request"]["number"] == 1 for row in awaiting)

    # a reviewer merges one pull request; running the rollout again sees it (nothing to do there)
    # and brings every other repository to the same branch and the same open pull request
    merged_repo = fleet["repos"]["one"][0]
    github_forge.merge_change(merged_repo, 1)
    with run_jobs():
        again = client.post("/api/v1/templates/fleet/rollouts/", {"mode": "pull_request"}, format="json")
    second = client.get(f"/api/v1/rollouts/{again.json()['id']}/").json()
    assert second["id"] != rollout_id and second["status"] == "completed"
    outcomes = [item["outcome"] for item in second["items"]]
    assert outcomes.count("nothing_to_update") == 1 and outcomes.count("proposed") == 14
    first_pulls = {item["export"]: item["pull_request"] for item in detail["items"]}
    for item in second["items"]:
        if item["outcome"] == "proposed":
            assert item["pull_request"] == first_pulls[item["export"]]
    for key in ("one", "two"):
        for full_name in fleet["repos"][key]:
            assert len(github_forge.changes(full_name)) == 1  # never a second pull request
    rows = {
        row["remote_url"].rsplit("/", 2)[-1]: row
        for row in client.get("/api/v1/templates/fleet/drift/").json()["results"]
    }
    merged_row = rows[merged_repo.split("/")[1]]
    assert merged_row["version"] == "2.0.0" and not merged_row["behind"] and merged_row["open_update"] is None


def test_a_viewer_of_every_project_starts_an_empty_rollout(api: Any, cast: Any, make_fleet: Any) -> None:
    make_fleet({"one": 1, "two": 1, "three": 1})
    started = api(cast.victor).post("/api/v1/templates/fleet/rollouts/", {"mode": "branch"}, format="json")
    assert started.status_code == 202
    detail = api(cast.victor).get(f"/api/v1/rollouts/{started.json()['id']}/").json()
    assert detail["items"] == [] and detail["progress"]["total"] == 0
    assert api(cast.charlie).get(f"/api/v1/rollouts/{started.json()['id']}/").status_code == 404


def test_rollout_bad_input(api: Any, cast: Any, make_fleet: Any) -> None:
    make_fleet({"one": 0, "two": 0, "three": 0})
    client = api(cast.alice)
    assert client.post("/api/v1/templates/fleet/rollouts/", {}, format="json").status_code == 400
    missing = client.post("/api/v1/templates/nope/rollouts/", {"mode": "branch"}, format="json")
    assert missing.status_code == 404
    version = client.post("/api/v1/templates/fleet/rollouts/", {"mode": "branch", "to_version": "7"}, format="json")
    assert version.status_code == 404 and version.json()["code"] == "version_not_found"
    assert version.json()["extra"]["available"] == ["2.0.0", "1.0.0"]
    older = client.post("/api/v1/templates/fleet/rollouts/", {"mode": "preview", "to_version": "1.0.0"}, format="json")
    assert older.status_code == 202 and older.json()["to_version"] == "1.0.0"  # any recorded version
    projects = client.post("/api/v1/templates/fleet/rollouts/", {"mode": "branch", "projects": ["x"]}, format="json")
    assert projects.status_code == 400
    # a list sent as more repeated form fields than Django's parser takes is the client's error, not a 500
    many = client.post(
        "/api/v1/templates/fleet/rollouts/", {"mode": "branch", "projects": ["1"] * 1200}, format="multipart"
    )
    assert many.status_code == 400 and many.json()["code"] == "too_many_fields"


def test_rollout_keeps_at_most_the_configured_number_of_updates_running(cast: Any, make_fleet: Any) -> None:
    make_fleet({"one": 3, "two": 2, "three": 1})
    from django.utils import timezone

    from apps.updates.services.rollouts import rollout_advance, rollout_start

    rollout, _ = rollout_start(template_slug="fleet", data={"mode": "branch"}, actor=cast.alice, enqueue=False)
    assert rollout.items.count() == 5

    def running() -> int:
        return RolloutItem.objects.filter(rollout=rollout, status="running").count()

    rollout = rollout_advance(rollout_id=rollout.pk, owner="test:1:a")
    assert running() == 3 and rollout.status == "running" and rollout.lease_owner == ""
    rollout_advance(rollout_id=rollout.pk, owner="test:1:b")
    assert running() == 3  # nothing finished: nothing more starts
    first = RolloutItem.objects.filter(rollout=rollout, status="running").order_by("id").first()
    assert first is not None and first.update is not None
    TemplateUpdate.objects.filter(pk=first.update_id).update(
        status="completed", outcome="pushed", finished_at=timezone.now()
    )
    rollout = rollout_advance(rollout_id=rollout.pk, owner="test:1:c")
    assert running() == 3
    assert RolloutItem.objects.filter(rollout=rollout, status="completed").count() == 1
    assert rollout.progress_done == 1 and rollout.progress_total == 5
    assert rollout.delivery_count == 0  # handed back: many advances never poison the job
