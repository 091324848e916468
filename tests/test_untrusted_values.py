"""JSON and YAML that people send: lone surrogates, deep nesting, values jsonb cannot store
(issue 21 items 5 and 11), refused at reading by the parsers and again by the services, so
callers other than the API (CLI, MCP, workflow steps) get the same coded 400."""

from __future__ import annotations

import json
import time

import pytest

from core.values import (
    MAX_JSON_DEPTH,
    UntrustedValueError,
    load_untrusted_json,
    load_untrusted_yaml,
    unstorable_reason,
)

# --- core.values ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"a": "\ud800x"}, "surrogate"),
        ({"\udc00": 1}, "surrogate"),  # keys too
        ([1, [2, {"k": ["é\udfff"]}]], "surrogate"),
        ({"a": "x\x00"}, "nul"),
        ({"\x00": 1}, "nul"),
        ({"a": float("nan")}, "non_finite"),
        ([float("-inf")], "non_finite"),
        ({"ok": "é ü 😀", "n": 1.5, "t": True, "z": None}, None),
    ],
)
def test_unstorable_reason(value, reason):
    assert unstorable_reason(value) == reason


def test_depth_is_bounded_iteratively():
    value: object = "leaf"
    for _ in range(MAX_JSON_DEPTH):
        value = [value]
    assert unstorable_reason(value) is None
    assert unstorable_reason([value]) == "depth"
    for _ in range(100_000):  # far beyond the recursion limit: still just "depth"
        value = {"k": value}
    assert unstorable_reason(value) == "depth"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"a": "\\ud800x"}', "surrogate"),
        ('{"\\udbff\\udbff": 1}', "surrogate"),
        ("[" * 5000 + "]" * 5000, "depth"),
        ("[" * 100 + "]" * 100, "depth"),
        ("1e400", "non_finite"),
        ("{", "invalid"),
    ],
)
def test_load_untrusted_json(text, reason):
    with pytest.raises(UntrustedValueError) as caught:
        load_untrusted_json(text)
    assert caught.value.reason == reason
    assert load_untrusted_json('{"pair": "\\ud83d\\ude00"}') == {"pair": "😀"}  # a real pair is fine


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a: " + "[" * 5000 + "]" * 5000, "depth"),
        ("a: " + "{not: " * 800 + "{}" + "}" * 800, "depth"),
        ("- " * 2000 + "x", "depth"),  # block style nests too
        ("a: &x [1]\nb: *x", "alias"),
        ("day: 2024-01-01", "not_json"),
        ("blob: !!binary aGk=", "not_json"),
        ("s: !!set {a, b}", "not_json"),
        ("1: one", "not_json"),
        ("n: .nan", "non_finite"),
        ("n: -.inf", "non_finite"),
    ],
)
def test_load_untrusted_yaml_refuses_quickly(text, reason):
    started = time.monotonic()
    with pytest.raises(UntrustedValueError) as caught:
        load_untrusted_yaml(text)
    assert caught.value.reason == reason
    assert time.monotonic() - started < 1.0


def test_load_untrusted_yaml_reads_json_values():
    assert load_untrusted_yaml("a: [1, {b: c}]\nd: '2024-01-01'\ne: null\n") == {
        "a": [1, {"b": "c"}],
        "d": "2024-01-01",
        "e": None,
    }


# --- the API: every JSON body -----------------------------------------------------------------------


def _post_raw(client, path, text, method="post"):
    return getattr(client, method)(f"/api/v1{path}", text, content_type="application/json")


@pytest.fixture
def template(make_template):
    return make_template(
        {"README.md": "# {{ name }}\n"},
        slug="values",
        parameters={"type": "object", "properties": {"name": {"type": "string", "default": "demo"}}},
    )


@pytest.fixture
def workflow(cast):
    from apps.workflows.services.workflow_executor import workflow_create

    steps = [{"id": "peek", "type": "api_call", "input": {"operation": "projects_list"}}]
    return workflow_create(actor=cast.alice, name="Values", steps=steps, project=cast.project.pk)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("gen", '{"template": "values", "parameters": {"name": "\\ud800x"}}'),
        ("gen", '{"template": "values", "parameters": {"\\ud800": "x"}}'),
        ("gen", '{"template": "values", "dry_run": true, "parameters": {"name": "\\udfff"}}'),
        (
            "/workflows/",
            '{"name": "w", "steps": [{"id": "a", "type": "api_call", "input": {"operation": "x\\ud800"}}]}',
        ),
        (
            "/workflows/",
            '{"name": "w", "inputs_schema": {"type": "object", "properties": {"a": {"default": "\\ud800"}}},'
            ' "steps": [{"id": "a", "type": "api_call", "input": {"operation": "projects_list"}}]}',
        ),
        ("runs", '{"inputs": {"a": "\\udc80"}}'),
        ("runs", '{"inputs": {"\\udc80": 1}}'),
    ],
)
def test_every_json_body_refuses_lone_surrogates(api, cast, template, workflow, path, body):
    from apps.projects.models import GeneratedProject
    from apps.workflows.models import Workflow, WorkflowRun

    if path == "gen":
        path = f"/projects/{cast.project.pk}/generated/"
    elif path == "runs":
        path = f"/workflows/{workflow.pk}/runs/"
    counts = (GeneratedProject.objects.count(), Workflow.objects.count(), WorkflowRun.objects.count())
    response = _post_raw(api(cast.alice), path, body)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "parse_error"
    assert "surrogate" in response.json()["message"]
    assert (GeneratedProject.objects.count(), Workflow.objects.count(), WorkflowRun.objects.count()) == counts


@pytest.mark.django_db
def test_deep_json_bodies_are_a_quick_parse_error(api, cast, template):
    deep_not = '{"type": "object", "properties": {"a": ' + '{"not": ' * 800 + "{}" + "}" * 800 + "}}"
    started = time.monotonic()
    for path, body in (
        (f"/projects/{cast.project.pk}/generated/", "[" * 5000 + "]" * 5000),
        ("/workflows/", '{"name": "w", "steps": [], "inputs_schema": ' + deep_not + "}"),
    ):
        response = _post_raw(api(cast.alice), path, body)
        assert response.status_code == 400, response.content
        assert response.json()["code"] == "parse_error"
        assert "nested" in response.json()["message"]
    assert time.monotonic() - started < 3.0


# --- the services: callers other than the API's parsers -----------------------------------------------


@pytest.mark.django_db
def test_generation_parameters_are_checked_by_the_service(cast, template):
    from apps.projects.services.generation import generated_project_start
    from core.exceptions import ValidationFailed

    for parameters in ({"name": "\ud800"}, {"\udfff": 1}, {"name": float("nan")}, {"name": "a\x00"}):
        with pytest.raises(ValidationFailed) as caught:
            generated_project_start(
                project=cast.project, template_slug=template.slug, parameters=parameters, actor=cast.alice
            )
        assert caught.value.code == "parse_error"


@pytest.mark.django_db
def test_workflow_services_check_schema_steps_and_run_inputs(cast, workflow):
    from apps.workflows.services.workflow_executor import workflow_create, workflow_run_start
    from core.exceptions import ValidationFailed

    ok_steps = [{"id": "a", "type": "api_call", "input": {"operation": "projects_list"}}]
    with pytest.raises(ValidationFailed) as caught:
        workflow_create(actor=cast.alice, name="w", steps=ok_steps, inputs_schema={"default": "\ud800"})
    assert caught.value.code == "parse_error"
    with pytest.raises(ValidationFailed):
        workflow_create(actor=cast.alice, name="w", steps=[{**ok_steps[0], "input": {"operation": "\udc00"}}])
    with pytest.raises(ValidationFailed) as caught:
        workflow_run_start(workflow=workflow, inputs={"x": "\ud800"}, actor=cast.alice)
    assert caught.value.code == "parse_error"


@pytest.mark.django_db
def test_a_step_input_that_renders_a_surrogate_fails_the_run_cleanly(api, cast, run_jobs):
    """`${{ '\\ud800' }}` is a Jinja string literal that decodes to a lone surrogate; jsonb refused
    it when the rendered input was saved (the step task crashed)."""
    steps = [
        {"id": "a", "type": "api_call", "input": {"operation": "projects_list", "query": {"x": "${{ '\\ud800' }}"}}}
    ]
    client = api(cast.alice)
    created = client.post("/api/v1/workflows/", {"name": "w", "steps": steps}, format="json")
    assert created.status_code == 201, created.content
    with run_jobs():
        started = client.post(f"/api/v1/workflows/{created.json()['id']}/runs/", {"inputs": {}}, format="json")
    assert started.status_code == 202, started.content
    detail = client.get(f"/api/v1/runs/{started.json()['id']}/").json()
    assert detail["status"] == "failed", detail
    assert detail["error"]["code"] == "expression_error"
    assert "surrogate" in detail["error"]["message"]
    json.dumps(detail)  # the stored error is plain text


@pytest.mark.django_db
def test_manifest_yaml_bombs_are_template_invalid_quickly(cast):
    import io
    import zipfile

    from apps.templates.services.catalog import TemplateInvalid, template_upload

    head = "slug: deep\nname: Deep\nversion: 1.0.0\n"
    for body in (
        "parameters: " + "[" * 5000 + "]" * 5000,
        "parameters:\n  type: object\n  properties:\n    a: " + "{not: " * 800 + "{}" + "}" * 800,
    ):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("template.yaml", head + body + "\n")
        started = time.monotonic()
        with pytest.raises(TemplateInvalid) as caught:
            template_upload(archive=io.BytesIO(buffer.getvalue()), size=len(buffer.getvalue()), user=cast.alice)
        assert caught.value.extra["reason"] == "depth"
        assert time.monotonic() - started < 1.0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "arguments",
    [{"name": "a\ud800b"}, {"name": "ok", "description": "\udfff"}, {"\udc00": 1}, {"name": float("nan")}],
)
def test_mcp_tool_arguments_are_refused_like_json_bodies(cast, arguments):
    """MCP's JSON arrives through the SDK, not Kiln's parsers: the tool door applies the same check."""
    from apps.agents.services.tools.registry import call_tool, tools
    from apps.projects.models import Project

    before = Project.objects.count()
    outcome = call_tool(tools()["create_project"], actor=cast.alice, arguments=arguments)
    assert outcome.is_error
    assert outcome.structured["code"] == "parse_error"
    assert Project.objects.count() == before
