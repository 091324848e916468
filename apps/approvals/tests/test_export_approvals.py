"""Exports an agent starts to GitHub wait for a person's approval of their exact plan.

Against the local forge (real PyGithub and git push), tasks eager. The agent is a maintainer of
alice's project "Alpha" and has its own GitHub connection.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from apps.approvals.models import Approval
from apps.projects.models import AuditEvent, ProjectFile, RepositoryExport
from tests.forge.fixtures import ALICE_TOKEN

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent(api, cast):
    from apps.agents.services.agents import agent_create

    return agent_create(owner=cast.alice, name="Publisher", projects=[cast.project.pk], role="maintainer")


def connect(api, user, forge):
    body = {"provider": "github", "name": f"gh-{user.pk}", "base_url": forge.api_url, "token": ALICE_TOKEN}
    response = api(user).post("/api/v1/connections/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def exports_url(cast, generated):
    return f"/api/v1/projects/{cast.project.pk}/generated/{generated.pk}/exports/"


def start(api, user, cast, generated, forge, run_jobs, name="from-agent"):
    body = {"provider": "github", "connection": connect(api, user, forge), "repository": {"name": name}}
    with run_jobs():
        response = api(user).post(exports_url(cast, generated), body, format="json")
    assert response.status_code == 202, response.content
    return api(user).get(f"{exports_url(cast, generated)}{response.json()['id']}/").json()


def creates(forge):
    return forge.find_requests("POST", r"/user/repos$")


def test_an_agents_github_export_waits_with_its_plan(api, cast, agent, generated, github_forge, run_jobs):
    export = start(api, agent.user, cast, generated, github_forge, run_jobs)
    assert export["status"] == "awaiting_approval"
    approval = export["approval"]
    assert approval["status"] == "pending" and approval["reason"] == "agent_export"
    plan = approval["plan"]
    assert plan["kind"] == "export" and plan["provider"] == "github"
    assert plan["target"]["name"] == "from-agent" and plan["branch"] == "main"
    assert plan["files_manifest_sha256"] == generated.content_sha256  # the files, by their manifest hash
    assert plan["requested_by"] == "agent:Publisher"
    canonical = json.dumps(plan, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert approval["plan_sha256"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert creates(github_forge) == [] and "from-agent" not in str(github_forge.repos)
    # people who may decide see it; a developer, an outsider and the agent do not
    listed = api(cast.alice).get("/api/v1/approvals/").json()["results"]
    assert [(a["export"], a["status"], a["requested_by"]) for a in listed] == [
        (export["id"], "pending", "agent:Publisher")
    ]
    assert api(cast.mia).get("/api/v1/approvals/").json()["count"] == 1
    for outsider in (cast.dave, cast.charlie, agent.user):
        assert api(outsider).get("/api/v1/approvals/").json()["count"] == 0
    assert AuditEvent.objects.filter(action="approval.requested", project=cast.project).count() == 1


def test_only_a_person_with_the_right_hash_releases_it_once(api, cast, agent, generated, github_forge, run_jobs):
    export = start(api, agent.user, cast, generated, github_forge, run_jobs)
    url = f"{exports_url(cast, generated)}{export['id']}/"
    good = export["approval"]["plan_sha256"]

    refused = api(agent.user).post(f"{url}approve/", {"plan_sha256": good}, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "self_approval"
    assert api(cast.dave).post(f"{url}approve/", {"plan_sha256": good}, format="json").status_code == 403
    missing = api(cast.mia).post(f"{url}approve/", {}, format="json")
    assert missing.status_code == 400 and "plan_sha256" in missing.json()["extra"]["fields"]

    stale = api(cast.mia).post(f"{url}approve/", {"plan_sha256": "0" * 64}, format="json")
    assert stale.status_code == 409 and stale.json()["code"] == "plan_changed"
    assert stale.json()["extra"]["plan_sha256"] == good
    assert api(cast.alice).get(url).json()["status"] == "awaiting_approval"
    assert creates(github_forge) == []

    with run_jobs():
        approved = api(cast.alice).post(f"{url}approve/", {"plan_sha256": good}, format="json")
    assert approved.status_code == 202, approved.content
    done = api(cast.alice).get(url).json()
    assert done["status"] == "completed", done["error"]
    assert done["approval"]["status"] == "approved" and done["approval"]["decided_by"] == "alice"
    assert len(creates(github_forge)) == 1
    assert github_forge.refs("alice/from-agent")["refs/heads/main"] == done["commit_sha"]
    again = api(cast.alice).post(f"{url}approve/", {"plan_sha256": good}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "approval_not_pending"
    assert len(creates(github_forge)) == 1
    actions = set(AuditEvent.objects.filter(project=cast.project).values_list("action", flat=True))
    assert {"approval.requested", "approval.approved"} <= actions


def test_a_changed_plan_is_409_and_shows_the_new_one(api, cast, agent, generated, github_forge, run_jobs):
    export = start(api, agent.user, cast, generated, github_forge, run_jobs)
    url = f"{exports_url(cast, generated)}{export['id']}/"
    shown = export["approval"]["plan_sha256"]
    # what would be pushed changed after the plan was shown: one file's recorded content
    ProjectFile.objects.filter(generated=generated, path="README.md").update(sha256="f" * 64)
    changed = api(cast.alice).post(f"{url}approve/", {"plan_sha256": shown}, format="json")
    assert changed.status_code == 409 and changed.json()["code"] == "plan_changed"
    current = changed.json()["extra"]["plan_sha256"]
    assert current != shown
    assert changed.json()["extra"]["plan"]["files_manifest_sha256"] != generated.content_sha256
    detail = api(cast.alice).get(url).json()
    assert detail["status"] == "awaiting_approval"
    assert detail["approval"]["plan_sha256"] == current  # the approval now shows the plan that would run
    assert creates(github_forge) == []


def test_reject_ends_it_and_an_agents_retry_waits_again(api, cast, agent, generated, github_forge, run_jobs):
    export = start(api, agent.user, cast, generated, github_forge, run_jobs)
    url = f"{exports_url(cast, generated)}{export['id']}/"
    assert api(agent.user).post(f"{url}reject/", {}, format="json").status_code == 403
    rejected = api(cast.mia).post(f"{url}reject/", {"comment": "not under acme"}, format="json")
    assert rejected.status_code == 200, rejected.content
    body = rejected.json()
    assert body["status"] == "cancelled"
    assert body["error"]["code"] == "rejected" and "not under acme" in body["error"]["message"]
    assert body["approval"]["status"] == "rejected"
    assert creates(github_forge) == []
    # the agent cannot get around it by retrying: the new attempt waits for approval again
    with run_jobs():
        retried = api(agent.user).post(f"{url}retry/", format="json")
    assert retried.status_code == 202
    assert retried.json()["status"] == "awaiting_approval"
    assert Approval.objects.filter(export_id=export["id"], status="pending", attempt=2).count() == 1
    assert creates(github_forge) == []


def test_people_zip_files_and_projects_without_the_gate_go_straight_through(
    api, cast, agent, generated, github_forge, run_jobs
):
    mine = start(api, cast.alice, cast, generated, github_forge, run_jobs, name="by-alice")
    assert mine["status"] == "completed" and mine["approval"] is None
    with run_jobs():
        archive = api(agent.user).post(exports_url(cast, generated), {"provider": "zip"}, format="json").json()
    assert archive["approval"] is None and archive["status"] == "pending"  # recorded, and enqueued
    # only a person who owns the project may turn the gate off
    project_url = f"/api/v1/projects/{cast.project.pk}/"
    off = {"agent_exports_require_approval": False}
    assert api(agent.user).patch(project_url, off, format="json").status_code == 403
    assert api(cast.mia).patch(project_url, off, format="json").status_code == 403
    assert api(cast.alice).patch(project_url, off, format="json").json()["agent_exports_require_approval"] is False
    ungated = start(api, agent.user, cast, generated, github_forge, run_jobs, name="ungated")
    assert ungated["status"] == "completed" and ungated["approval"] is None, ungated
    assert RepositoryExport.objects.filter(status="awaiting_approval").count() == 0
