"""Compensation: a run whose later step fails deletes exactly the repository its repo_creation created.

Against the local forge (GitHub and GitLab flavours; their documented DELETE endpoints), tasks eager.
The main case (the created repository deleted, an adopted one and a bystander kept) runs live with a
real worker: tests/integration/test_mcp_approvals_live.py.
"""

from __future__ import annotations

import pytest

from apps.workflows.models import StepRun
from tests.forge.fixtures import ALICE_TOKEN

pytestmark = pytest.mark.django_db

FAIL = {"id": "check", "type": "api_call", "input": {"operation": "projects_retrieve", "path_params": {"id": 99999}}}


@pytest.fixture
def template(make_template):
    return make_template(
        {"README.md": "# {{ name }}\n"},
        slug="comp-tpl",
        parameters={"type": "object", "properties": {"name": {"type": "string", "default": "svc"}}},
    )


def connection(api, user, forge, provider):
    body = {"provider": provider, "name": f"{provider}-c", "base_url": forge.api_url, "token": ALICE_TOKEN}
    response = api(user).post("/api/v1/connections/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def steps(project_id, publish, *, then=FAIL, on_failure="delete_created_repository"):
    publish = {"generated": "${{ steps.generate.output.generated_id }}", **publish}
    if on_failure:
        publish["on_failure"] = on_failure
    listed = [
        {"id": "generate", "type": "file_generation", "input": {"project": project_id, "template": "comp-tpl"}},
        {"id": "publish", "type": "repo_creation", "input": publish},
    ]
    return [*listed, then] if then else listed


def run(api, user, project_id, body_steps, run_jobs):
    workflow = api(user).post(
        "/api/v1/workflows/", {"name": "Publish", "project": project_id, "steps": body_steps}, format="json"
    )
    assert workflow.status_code == 201, workflow.content
    with run_jobs():
        started = api(user).post(f"/api/v1/workflows/{workflow.json()['id']}/runs/", {}, format="json")
    assert started.status_code == 202, started.content
    return api(user).get(f"/api/v1/runs/{started.json()['id']}/").json()


def test_a_failed_deletion_is_reported_once_not_retried(api, cast, template, run_jobs, github_forge):
    from apps.workflows.models import WorkflowRun
    from apps.workflows.services.workflow_executor import _compensate

    github_forge.inject("DELETE", r"/repos/", 403, {"message": "Must have admin rights to Repository."}, times=None)
    conn = connection(api, cast.alice, github_forge, "github")
    detail = run(
        api,
        cast.alice,
        cast.project.pk,
        steps(cast.project.pk, {"provider": "github", "connection": conn, "repository": {"name": "sticky"}}),
        run_jobs,
    )
    publish = next(s for s in detail["steps"] if s["id"] == "publish")
    assert publish["status"] == "completed"
    assert publish["compensation"]["outcome"] == "failed"
    assert publish["compensation"]["error"]["code"] == "permission_denied"
    assert "alice/sticky" in github_forge.repos
    attempts = len(github_forge.find_requests("DELETE"))
    assert attempts == 1  # a 403 is not a transient failure: not retried
    assert _compensate(WorkflowRun.objects.get(pk=detail["id"])) == []  # recorded: never tried again
    assert len(github_forge.find_requests("DELETE")) == attempts


def test_gitlab_deletes_the_created_project_by_its_id(api, cast, template, run_jobs, gitlab_forge):
    conn = connection(api, cast.alice, gitlab_forge, "gitlab")
    publish = {"provider": "gitlab", "connection": conn, "repository": {"namespace": "acme", "name": "gl-made"}}
    detail = run(api, cast.alice, cast.project.pk, steps(cast.project.pk, publish), run_jobs)
    step = next(s for s in detail["steps"] if s["id"] == "publish")
    assert (step["status"], step["compensation"]["outcome"]) == ("compensated", "deleted")
    assert "acme/gl-made" not in gitlab_forge.repos
    deletes = gitlab_forge.find_requests("DELETE")
    assert [r.path for r in deletes] == [f"/api/v4/projects/{step['compensation']['remote_repo_id']}"]


def test_without_on_failure_or_when_it_succeeds_nothing_is_deleted(api, cast, template, run_jobs, github_forge):
    conn = connection(api, cast.alice, github_forge, "github")
    target = {"provider": "github", "connection": conn}
    failed = run(
        api,
        cast.alice,
        cast.project.pk,
        steps(cast.project.pk, {**target, "repository": {"name": "keep-me"}}, on_failure=None),
        run_jobs,
    )
    assert failed["status"] == "failed"
    assert StepRun.objects.get(run_id=failed["id"], step_id="publish").compensation is None
    ok = run(
        api,
        cast.alice,
        cast.project.pk,
        steps(cast.project.pk, {**target, "repository": {"name": "fine"}}, then=None),
        run_jobs,
    )
    assert ok["status"] == "completed"
    assert {"alice/keep-me", "alice/fine"} <= set(github_forge.repos)
    assert github_forge.find_requests("DELETE") == []


def test_a_retried_run_creates_the_deleted_repository_again(api, cast, template, run_jobs, github_forge, settings):
    conn = connection(api, cast.alice, github_forge, "github")
    publish = {"provider": "github", "connection": conn, "repository": {"name": "second-try"}}
    then = {
        "id": "check",
        "type": "api_call",
        "input": {"operation": "projects_retrieve", "path_params": {"id": "${{ inputs.project }}"}},
    }
    workflow = (
        api(cast.alice)
        .post(
            "/api/v1/workflows/",
            {
                "name": "Retry",
                "project": cast.project.pk,
                "steps": steps(cast.project.pk, publish, then=then),
                "inputs_schema": {"type": "object", "properties": {"project": {"type": "integer"}}},
            },
            format="json",
        )
        .json()
    )
    with run_jobs():
        started = (
            api(cast.alice)
            .post(f"/api/v1/workflows/{workflow['id']}/runs/", {"inputs": {"project": 99999}}, format="json")
            .json()
        )
    assert "alice/second-try" not in github_forge.repos
    deleted = StepRun.objects.get(run_id=started["id"], step_id="publish")
    assert deleted.status == "compensated"
    # the cause is fixed (the check now reads an existing project); the retry runs the compensated
    # step again, as a new export that creates the repository again
    from apps.workflows.models import WorkflowRun

    WorkflowRun.objects.filter(pk=started["id"]).update(inputs={"project": cast.project.pk})
    with run_jobs():
        retried = api(cast.alice).post(f"/api/v1/runs/{started['id']}/retry/", format="json")
    assert retried.status_code == 202
    done = api(cast.alice).get(f"/api/v1/runs/{started['id']}/").json()
    assert done["status"] == "completed", done["error"]
    assert "alice/second-try" in github_forge.repos
    assert done["outputs"]["publish"]["export_id"] != deleted.output["export_id"]
