"""Workflow steps with `requires_approval`, and agents' runs that publish: the run waits at the step.

Tasks eager; the plan is the step's rendered input plus what its type shows (the template as the
catalog has it, the files and the target), so a template changed while waiting is a 409.
"""

from __future__ import annotations

import pytest

from apps.approvals.models import Approval
from apps.workflows.models import StepRun
from tests.forge.fixtures import ALICE_TOKEN

pytestmark = pytest.mark.django_db

FILES = {"README.md": "# {{ name }}\n"}
PARAMETERS = {"type": "object", "properties": {"name": {"type": "string", "default": "svc"}}}


def gated_steps(project_id):
    return [
        {
            "id": "generate",
            "type": "file_generation",
            "requires_approval": True,
            "input": {"project": project_id, "template": "gate-tpl", "parameters": {"name": "${{ inputs.name }}"}},
        }
    ]


def start_run(api, user, steps, run_jobs, *, project=None, inputs=None, agent=None):
    body = {
        "name": "Gated",
        "steps": steps,
        "inputs_schema": {"type": "object", "properties": {"name": {"type": "string"}}},
    }
    if project is not None:
        body["project"] = project
    workflow = api(user).post("/api/v1/workflows/", body, format="json")
    assert workflow.status_code == 201, workflow.content
    with run_jobs():
        if agent is not None:
            run = api(user).post(
                f"/api/v1/agents/{agent.pk}/runs/",
                {"workflow": workflow.json()["id"], "inputs": inputs or {}},
                format="json",
            )
        else:
            run = api(user).post(
                f"/api/v1/workflows/{workflow.json()['id']}/runs/", {"inputs": inputs or {}}, format="json"
            )
    assert run.status_code == 202, run.content
    return api(user).get(f"/api/v1/runs/{run.json()['id']}/").json()


def test_a_step_that_requires_approval_waits_with_its_rendered_input(api, cast, make_template, run_jobs):
    first = make_template(FILES, slug="gate-tpl", parameters=PARAMETERS)
    run = start_run(
        api, cast.alice, gated_steps(cast.project.pk), run_jobs, project=cast.project.pk, inputs={"name": "api"}
    )
    assert run["status"] == "awaiting_approval"
    assert run["steps"][0]["status"] == "awaiting_approval"
    plan = run["approval"]["plan"]
    assert run["approval"]["reason"] == "requires_approval" and run["approval"]["step"] == "generate"
    assert plan["input"] == {"project": cast.project.pk, "template": "gate-tpl", "parameters": {"name": "api"}}
    assert plan["template"] == {"slug": "gate-tpl", "version": "1.0.0", "checksum": first.checksum}
    assert not cast.project.generated_projects.exists()  # nothing ran
    shown = run["approval"]["plan_sha256"]

    # the template changes while the run waits: the plan the approver saw is stale
    make_template({"README.md": "# {{ name }} v2\n"}, slug="gate-tpl", parameters=PARAMETERS, version="2.0.0")
    url = f"/api/v1/runs/{run['id']}/"
    with run_jobs():
        stale = api(cast.mia).post(f"{url}approve/", {"plan_sha256": shown}, format="json")
    assert stale.status_code == 409 and stale.json()["code"] == "plan_changed"
    assert stale.json()["extra"]["plan"]["template"]["checksum"] != first.checksum
    assert api(cast.alice).get(url).json()["status"] == "awaiting_approval"
    assert not cast.project.generated_projects.exists()

    with run_jobs():
        approved = api(cast.mia).post(
            f"{url}approve/", {"plan_sha256": stale.json()["extra"]["plan_sha256"]}, format="json"
        )
    assert approved.status_code == 202, approved.content
    done = api(cast.alice).get(url).json()
    assert done["status"] == "completed", done["error"]
    generated = cast.project.generated_projects.get()
    assert generated.parameters == {"name": "api"}
    assert (generated.files.get(path="README.md").size, done["approval"]["status"]) == (len("# api v2\n"), "approved")


def test_reject_cancels_the_run_and_cancel_withdraws_the_approval(api, cast, make_template, run_jobs):
    make_template(FILES, slug="gate-tpl", parameters=PARAMETERS)
    run = start_run(
        api, cast.alice, gated_steps(cast.project.pk), run_jobs, project=cast.project.pk, inputs={"name": "x"}
    )
    with run_jobs():
        rejected = api(cast.mia).post(f"/api/v1/runs/{run['id']}/reject/", {"comment": "not now"}, format="json")
    assert rejected.status_code == 200, rejected.content
    body = rejected.json()
    assert body["status"] == "cancelled" and body["error"]["code"] == "rejected"
    assert body["steps"][0]["status"] == "cancelled"
    assert not cast.project.generated_projects.exists()

    other = start_run(
        api, cast.alice, gated_steps(cast.project.pk), run_jobs, project=cast.project.pk, inputs={"name": "y"}
    )
    cancelled = api(cast.alice).post(f"/api/v1/runs/{other['id']}/cancel/", format="json")
    assert cancelled.json()["status"] == "cancelled"
    assert Approval.objects.get(run_id=other["id"]).status == "withdrawn"
    assert api(cast.alice).get("/api/v1/approvals/").json()["count"] == 0


def test_requires_approval_must_be_a_boolean(api, cast):
    steps = [{"id": "a", "type": "api_call", "requires_approval": "yes", "input": {"operation": "projects_list"}}]
    response = api(cast.alice).post("/api/v1/workflows/", {"name": "W", "steps": steps}, format="json")
    assert response.status_code == 400
    assert "steps.a.requires_approval" in response.json()["extra"]["fields"]


def test_an_agents_run_that_publishes_to_github_waits(api, cast, make_template, run_jobs, github_forge):
    from apps.agents.services.agents import agent_create

    make_template(FILES, slug="gate-tpl", parameters=PARAMETERS)
    agent = agent_create(owner=cast.alice, name="Runner", projects=[cast.project.pk], role="maintainer")
    connection = (
        api(agent.user)
        .post(
            "/api/v1/connections/",
            {"provider": "github", "name": "gh", "base_url": github_forge.api_url, "token": ALICE_TOKEN},
            format="json",
        )
        .json()["id"]
    )
    steps = [
        {"id": "generate", "type": "file_generation", "input": {"project": cast.project.pk, "template": "gate-tpl"}},
        {
            "id": "publish",
            "type": "repo_creation",
            "input": {
                "generated": "${{ steps.generate.output.generated_id }}",
                "provider": "github",
                "connection": connection,
                "repository": {"name": "agent-run"},
            },
        },
    ]
    run = start_run(api, cast.alice, steps, run_jobs, project=cast.project.pk, agent=agent)
    assert run["status"] == "awaiting_approval", run
    assert [s["status"] for s in run["steps"]] == ["completed", "awaiting_approval"]
    assert run["approval"]["reason"] == "agent_export"
    plan = run["approval"]["plan"]
    assert plan["target"]["name"] == "agent-run" and plan["provider"] == "github"
    assert plan["files_manifest_sha256"] == run["steps"][0]["output"]["content_sha256"]
    assert "alice/agent-run" not in github_forge.repos
    with run_jobs():
        approved = api(cast.alice).post(
            f"/api/v1/runs/{run['id']}/approve/", {"plan_sha256": run["approval"]["plan_sha256"]}, format="json"
        )
    assert approved.status_code == 202
    done = api(cast.alice).get(f"/api/v1/runs/{run['id']}/").json()
    assert done["status"] == "completed", done["error"]
    assert github_forge.refs("alice/agent-run")["refs/heads/main"] == done["outputs"]["publish"]["commit_sha"]
    assert StepRun.objects.get(run_id=run["id"], step_id="publish").attempt == 1
