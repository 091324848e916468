"""Discovery documents and agents acting with their own identity through the real API."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from apps.agents.services.api_discovery import registry
from apps.agents.services.tools import tools as agent_tools

pytestmark = pytest.mark.django_db


def test_discovery_lists_every_schema_operation(api, cast, client):
    schema = client.get("/api/schema/?format=json").json()
    ids = {
        op["operationId"]
        for item in schema["paths"].values()
        for m, op in item.items()
        if m in {"get", "post", "put", "patch", "delete"}
    }
    body = api(cast.alice).get("/api/v1/agents/discovery/").json()
    listed = {op["operation_id"] for op in body["operations"]}
    assert listed == ids - {"auth_token_create"}
    for op in body["operations"]:
        assert op["method"] in {"GET", "POST", "PATCH", "DELETE", "PUT"}
        assert op["path"].startswith("/api/v1/")
        assert op["summary"]
        for param in op["parameters"]:
            Draft202012Validator.check_schema(param["schema"])
        if op["request_schema"] is not None:
            Draft202012Validator.check_schema(op["request_schema"])
        if op["response_schema"] is not None:
            Draft202012Validator.check_schema(op["response_schema"])
    generate = next(op for op in body["operations"] if op["operation_id"] == "generated_create")
    assert {p["name"] for p in generate["parameters"]} == {"project_id"}
    assert "template" in generate["request_schema"]["properties"]


def test_tools_are_valid_json_schema(api, cast):
    tools = api(cast.alice).get("/api/v1/agents/discovery/tools/").json()
    assert len(tools) == len(agent_tools()) + len(registry())
    assert [tool["function"]["name"] for tool in tools[: len(agent_tools())]] == list(agent_tools())
    for tool in tools:
        assert tool["type"] == "function"
        assert tool["function"]["name"] and tool["function"]["description"]
        Draft202012Validator.check_schema(tool["function"]["parameters"])


def test_markdown_docs(api, cast):
    response = api(cast.alice).get("/api/v1/agents/discovery/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    assert "`generated_create`" in response.content.decode()


def test_agent_tokens_shown_once_hashed_revocable_and_scoped(api, cast, client, make_template):
    created = api(cast.alice).post(
        "/api/v1/agents/", {"name": "Bot", "projects": [cast.project.pk], "role": "maintainer"}, format="json"
    )
    assert created.status_code == 201, created.content
    agent = created.json()
    assert agent["projects"] == [cast.project.pk]
    token_response = api(cast.alice).post(f"/api/v1/agents/{agent['id']}/tokens/", {"name": "ci"}, format="json")
    assert token_response.status_code == 201
    token = token_response.json()["token"]
    assert token.startswith("kiln_a_")
    listing = api(cast.alice).get(f"/api/v1/agents/{agent['id']}/tokens/").content.decode()
    assert token not in listing
    from apps.agents.models import AgentToken

    assert not AgentToken.objects.filter(key_hash=token).exists()
    auth = {"HTTP_AUTHORIZATION": f"Token {token}"}
    assert [p["id"] for p in client.get("/api/v1/projects/", **auth).json()["results"]] == [cast.project.pk]
    other = api(cast.charlie).post("/api/v1/projects/", {"name": "Not the agent's"}, format="json").json()
    assert client.get(f"/api/v1/projects/{other['id']}/", **auth).status_code == 404
    assert client.get(f"/api/v1/projects/{other['id']}/generated/", **auth).status_code == 404
    # the agent creates its own project and owns it
    mine = client.post("/api/v1/projects/", {"name": "Agent made"}, content_type="application/json", **auth)
    assert mine.status_code == 201
    assert api(cast.alice).get(f"/api/v1/projects/{mine.json()['id']}/").status_code == 404
    # others cannot see or use someone else's agent
    assert api(cast.dave).get(f"/api/v1/agents/{agent['id']}/").status_code == 404
    assert api(cast.dave).post(f"/api/v1/agents/{agent['id']}/tokens/", {}, format="json").status_code == 404
    # revoke
    assert (
        api(cast.alice).delete(f"/api/v1/agents/{agent['id']}/tokens/{token_response.json()['id']}/").status_code == 204
    )
    assert client.get("/api/v1/projects/", **auth).status_code == 401


def test_agent_role_cannot_exceed_the_creators(api, cast):
    response = api(cast.mia).post(
        "/api/v1/agents/", {"name": "Up", "projects": [cast.project.pk], "role": "owner"}, format="json"
    )
    assert response.status_code == 403
    response = api(cast.dave).post("/api/v1/agents/", {"name": "Dev", "projects": [cast.project.pk]}, format="json")
    assert response.status_code == 403
    response = api(cast.charlie).post("/api/v1/agents/", {"name": "Out", "projects": [cast.project.pk]}, format="json")
    assert response.status_code == 400


def test_run_as_agent_out_of_scope_fails_with_the_apis_404(api, cast, run_jobs):
    agent = api(cast.alice).post("/api/v1/agents/", {"name": "Scoped", "projects": []}, format="json").json()
    steps = [
        {
            "id": "peek",
            "type": "api_call",
            "input": {"operation": "projects_retrieve", "path_params": {"id": cast.project.pk}},
        }
    ]
    workflow = api(cast.alice).post("/api/v1/workflows/", {"name": "Peek", "steps": steps}, format="json").json()
    with run_jobs():
        run = api(cast.alice).post(f"/api/v1/agents/{agent['id']}/runs/", {"workflow": workflow["id"]}, format="json")
    assert run.status_code == 202, run.content
    detail = api(cast.alice).get(f"/api/v1/runs/{run.json()['id']}/").json()
    assert detail["status"] == "failed"
    assert detail["steps"][0]["status"] == "failed"
    assert detail["steps"][0]["error"]["code"] == "not_found"
    assert detail["agent"] == agent["id"]
    # the same workflow run as alice herself succeeds
    with run_jobs():
        mine = api(cast.alice).post(f"/api/v1/workflows/{workflow['id']}/runs/", {}, format="json").json()
    assert api(cast.alice).get(f"/api/v1/runs/{mine['id']}/").json()["status"] == "completed"
