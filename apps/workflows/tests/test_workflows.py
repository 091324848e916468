"""Workflows end to end on the database (tasks eager): validation, expressions, if, cancel, retry."""

from __future__ import annotations

import pytest

from apps.workflows.models import StepRun, WorkflowRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def template(make_template):
    return make_template(
        {"README.md": "# {{ name }}\n", "src/{{ name }}.py": "X = 1\n"},
        slug="wf-tpl",
        parameters={"type": "object", "properties": {"name": {"type": "string", "default": "demo"}}},
    )


def chain_steps(extra_if=None):
    steps = [
        {
            "id": "create",
            "type": "api_call",
            "input": {"operation": "projects_create", "body": {"name": "${{ inputs.project_name }}"}},
        },
        {
            "id": "generate",
            "type": "file_generation",
            "input": {
                "project": "${{ steps.create.output.body.id }}",
                "template": "wf-tpl",
                "parameters": {"name": "${{ inputs.module }}"},
            },
        },
        {
            "id": "archive",
            "type": "repo_creation",
            "input": {"generated": "${{ steps.generate.output.generated_id }}", "provider": "zip"},
        },
    ]
    if extra_if is not None:
        steps[2]["if"] = extra_if
    return steps


SCHEMA = {
    "type": "object",
    "properties": {"project_name": {"type": "string"}, "module": {"type": "string", "default": "core"}},
    "required": ["project_name"],
}


def create_workflow(api, user, steps, **extra):
    body = {"name": "Bootstrap", "inputs_schema": SCHEMA, "steps": steps, **extra}
    return api(user).post("/api/v1/workflows/", body, format="json")


def test_run_flows_outputs_between_steps(api, cast, template, run_jobs):
    workflow = create_workflow(api, cast.alice, chain_steps())
    assert workflow.status_code == 201, workflow.content
    with run_jobs():
        run = api(cast.alice).post(
            f"/api/v1/workflows/{workflow.json()['id']}/runs/", {"inputs": {"project_name": "Wf Made"}}, format="json"
        )
    assert run.status_code == 202, run.content
    detail = api(cast.alice).get(f"/api/v1/runs/{run.json()['id']}/").json()
    assert detail["status"] == "completed", detail
    steps = {s["id"]: s for s in detail["steps"]}
    assert [s["status"] for s in detail["steps"]] == ["completed", "completed", "completed"]
    assert all(s["attempt"] == 1 for s in detail["steps"])
    created_project = steps["create"]["output"]["body"]
    assert steps["create"]["output"]["status_code"] == 201
    assert created_project["name"] == "Wf Made"
    assert steps["generate"]["rendered_input"]["project"] == created_project["id"]
    assert steps["generate"]["output"]["file_count"] == 2
    assert steps["archive"]["output"]["archive"]["size"] > 0
    assert detail["outputs"]["archive"]["export_id"] == steps["archive"]["output"]["export_id"]
    logs = api(cast.alice).get(f"/api/v1/runs/{detail['id']}/logs/").json()
    assert any("projects_create answered 201" in line for line in logs["steps"][0]["logs"])


def test_if_false_skips_the_step(api, cast, template, run_jobs):
    workflow = create_workflow(api, cast.alice, chain_steps(extra_if="${{ inputs.module == 'never' }}")).json()
    with run_jobs():
        run = (
            api(cast.alice)
            .post(f"/api/v1/workflows/{workflow['id']}/runs/", {"inputs": {"project_name": "Skip"}}, format="json")
            .json()
        )
    detail = api(cast.alice).get(f"/api/v1/runs/{run['id']}/").json()
    assert detail["status"] == "completed"
    assert [s["status"] for s in detail["steps"]] == ["completed", "completed", "skipped"]


def test_an_optional_input_left_out_reads_as_null(api, cast, template, run_jobs):
    schema = {**SCHEMA, "properties": {**SCHEMA["properties"], "archive": {"type": "boolean"}}}
    workflow = create_workflow(
        api, cast.alice, chain_steps(extra_if="${{ inputs.archive }}"), inputs_schema=schema
    ).json()
    with run_jobs():
        run = (
            api(cast.alice)
            .post(f"/api/v1/workflows/{workflow['id']}/runs/", {"inputs": {"project_name": "Opt"}}, format="json")
            .json()
        )
    detail = api(cast.alice).get(f"/api/v1/runs/{run['id']}/").json()
    assert detail["status"] == "completed", detail
    assert [s["status"] for s in detail["steps"]] == ["completed", "completed", "skipped"]


def test_an_expression_on_a_missing_output_field_fails_the_run(api, cast, template, run_jobs):
    steps = chain_steps()
    steps[1]["input"]["project"] = "${{ steps.create.output.body.no_such_field }}"
    workflow = create_workflow(api, cast.alice, steps).json()
    with run_jobs():
        run = (
            api(cast.alice)
            .post(f"/api/v1/workflows/{workflow['id']}/runs/", {"inputs": {"project_name": "Miss"}}, format="json")
            .json()
        )
    detail = api(cast.alice).get(f"/api/v1/runs/{run['id']}/").json()
    assert detail["status"] == "failed", detail
    assert detail["error"]["code"] == "expression_error"
    assert "no_such_field" in detail["error"]["message"]
    assert [s["status"] for s in detail["steps"]][:2] == ["completed", "failed"]


@pytest.mark.parametrize(
    ("steps", "field"),
    [
        ([{"id": "a", "type": "file_generation", "input": {"project": "x", "template": "t"}}], "steps.a.input.project"),
        ([{"id": "a", "type": "nope", "input": {}}], "steps.a.type"),
        ([{"id": "a", "type": "api_call", "input": {}}], "steps.a.input"),
        ([{"id": "a", "type": "api_call", "input": {"operation": "x", "bogus": 1}}], "steps.a.input"),
        (
            [
                {"id": "a", "type": "api_call", "input": {"operation": "${{ steps.later.output.x }}"}},
                {"id": "later", "type": "api_call", "input": {"operation": "x"}},
            ],
            "steps.a",
        ),
        ([{"id": "a", "type": "api_call", "input": {"operation": "${{ inputs.undeclared }}"}}], "steps.a"),
        ([{"id": "a", "type": "api_call", "input": {"operation": "${{ ( }}"}}], "steps.a"),
        (
            [
                {"id": "a", "type": "api_call", "input": {"operation": "x"}},
                {"id": "a", "type": "api_call", "input": {"operation": "x"}},
            ],
            "steps[1].id",
        ),
    ],
)
def test_invalid_workflows_are_400_naming_step_and_field(api, cast, steps, field):
    response = create_workflow(api, cast.alice, steps)
    assert response.status_code == 400, response.content
    fields = response.json()["extra"]["fields"]
    assert any(key.startswith(field) for key in fields), fields


def test_failed_step_then_retry_resumes_there(api, cast, template, run_jobs, settings):
    steps = chain_steps()
    steps[2]["input"] = {
        "generated": "${{ steps.generate.output.generated_id }}",
        "provider": "git",
        "remote_url": "file:///nonexistent/repo.git",
    }
    workflow = create_workflow(api, cast.alice, steps).json()
    with run_jobs():
        run = (
            api(cast.alice)
            .post(f"/api/v1/workflows/{workflow['id']}/runs/", {"inputs": {"project_name": "Retry"}}, format="json")
            .json()
        )
    detail = api(cast.alice).get(f"/api/v1/runs/{run['id']}/").json()
    assert detail["status"] == "failed"
    assert detail["error"]["extra"]["step"] == "archive"
    assert [s["status"] for s in detail["steps"]] == ["completed", "completed", "failed"]
    run_row = WorkflowRun.objects.get(pk=run["id"])
    step = next(s for s in run_row.steps_snapshot if s["id"] == "archive")
    step["input"] = {"generated": "${{ steps.generate.output.generated_id }}", "provider": "zip"}
    run_row.save(update_fields=["steps_snapshot"])
    assert WorkflowRun.objects.get(pk=run["id"]).steps_snapshot[2]["input"]["provider"] == "zip"
    assert StepRun.objects.get(run_id=run["id"], step_id="archive").checkpoints
    with run_jobs():
        retried = api(cast.alice).post(f"/api/v1/runs/{run['id']}/retry/")
    assert retried.status_code == 202
    detail = api(cast.alice).get(f"/api/v1/runs/{run['id']}/").json()
    assert detail["status"] == "completed", (detail["error"], detail["steps"])
    assert [s["attempt"] for s in detail["steps"]] == [1, 1, 2]


def test_cancel_before_start_and_at_step_boundary(api, cast, template, run_jobs):
    workflow = create_workflow(api, cast.alice, chain_steps()).json()
    run = (
        api(cast.alice)
        .post(f"/api/v1/workflows/{workflow['id']}/runs/", {"inputs": {"project_name": "C"}}, format="json")
        .json()
    )
    cancelled = api(cast.alice).post(f"/api/v1/runs/{run['id']}/cancel/")
    assert cancelled.json()["status"] == "cancelled"
    assert set(StepRun.objects.filter(run_id=run["id"]).values_list("status", flat=True)) == {"cancelled"}

    from apps.workflows.services.workflow_executor import workflow_run_advance

    run2 = (
        api(cast.alice)
        .post(f"/api/v1/workflows/{workflow['id']}/runs/", {"inputs": {"project_name": "C2"}}, format="json")
        .json()
    )
    assert workflow_run_advance(run_id=run2["id"], owner="t:1:a") is True  # first step done
    WorkflowRun.objects.filter(pk=run2["id"]).update(cancel_requested=True)
    assert workflow_run_advance(run_id=run2["id"], owner="t:1:b") is False
    statuses = list(StepRun.objects.filter(run_id=run2["id"]).order_by("index").values_list("status", flat=True))
    assert statuses == ["completed", "cancelled", "cancelled"]
    assert WorkflowRun.objects.get(pk=run2["id"]).status == "cancelled"


def test_redelivered_step_is_not_run_again(api, cast, template):
    from apps.workflows.services.workflow_executor import workflow_run_advance

    workflow = create_workflow(api, cast.alice, chain_steps()).json()
    run = (
        api(cast.alice)
        .post(f"/api/v1/workflows/{workflow['id']}/runs/", {"inputs": {"project_name": "Once"}}, format="json")
        .json()
    )
    assert workflow_run_advance(run_id=run["id"], owner="t:1:a") is True
    # a redelivered copy of the same step's task: the step is completed, so the next one runs
    assert workflow_run_advance(run_id=run["id"], owner="t:1:a") is True
    from apps.projects.models import Project

    assert Project.objects.filter(name="Once").count() == 1
    attempts = dict(StepRun.objects.filter(run_id=run["id"]).values_list("step_id", "attempt"))
    assert attempts == {"create": 1, "generate": 1, "archive": 0}


def test_viewer_cannot_create_project_workflows_and_outsider_sees_none(api, cast):
    steps = [{"id": "a", "type": "api_call", "input": {"operation": "projects_list"}}]
    assert create_workflow(api, cast.victor, steps, project=cast.project.pk).status_code == 403
    created = create_workflow(api, cast.mia, steps, project=cast.project.pk)
    assert created.status_code == 201
    assert api(cast.charlie).get(f"/api/v1/workflows/{created.json()['id']}/").status_code == 404
    assert api(cast.victor).get(f"/api/v1/workflows/{created.json()['id']}/").status_code == 200


@pytest.mark.parametrize(
    ("value", "status"),
    [("1", 200), ("9223372036854775807", 200), ("2.71809557322773e+166", 400), ("1.5", 400), ("0", 400),
     ("9223372036854775808", 400), ("abc", 400)],
)  # fmt: skip
def test_the_runs_workflow_filter_takes_ids_as_the_schema_says(api, cast, value, status):
    response = api(cast.alice).get("/api/v1/runs/", {"workflow": value})
    assert response.status_code == status, response.content
    if status == 400:
        body = response.json()
        assert body["code"] == "validation_error" and "workflow" in body["extra"]["fields"]
    else:
        assert response.json()["results"] == []
