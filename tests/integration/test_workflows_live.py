"""A workflow run as an agent through the live server and a real worker (api_call over HTTP)."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.harness import poll

pytestmark = [pytest.mark.integration]


def test_agent_workflow_create_generate_export(live_stack, make_template, tmp_path):
    from apps.projects.tests.factories import UserFactory

    UserFactory(username="alice")
    UserFactory(username="charlie")
    make_template(
        {"README.md": "# {{ name }}\n", "app.py": "print('hi')\n"},
        slug="live-wf",
        parameters={"type": "object", "properties": {"name": {"type": "string", "default": "svc"}}},
    )
    remote = tmp_path / "remote.git"
    import subprocess

    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    with httpx.Client(base_url=live_stack.url, timeout=30) as client:
        token = client.post("/api/v1/auth/token/", json={"username": "alice", "password": "pw-for-tests"}).json()[
            "token"
        ]
        client.headers["Authorization"] = f"Token {token}"
        agent = client.post("/api/v1/agents/", json={"name": "Builder"}).json()
        steps = [
            {
                "id": "create",
                "type": "api_call",
                "input": {"operation": "projects_create", "body": {"name": "${{ inputs.name }}"}},
            },
            {
                "id": "generate",
                "type": "file_generation",
                "input": {
                    "project": "${{ steps.create.output.body.id }}",
                    "template": "live-wf",
                    "parameters": {"name": "${{ inputs.module }}"},
                },
            },
            {
                "id": "archive",
                "type": "repo_creation",
                "input": {"generated": "${{ steps.generate.output.generated_id }}", "provider": "zip"},
            },
            {
                "id": "push",
                "type": "repo_creation",
                "input": {
                    "generated": "${{ steps.generate.output.generated_id }}",
                    "provider": "git",
                    "remote_url": f"file://{remote}",
                },
            },
            {
                "id": "skipped",
                "type": "api_call",
                "if": "${{ inputs.module == 'nope' }}",
                "input": {"operation": "projects_list"},
            },
        ]
        schema = {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string"}, "module": {"type": "string", "default": "core"}},
        }
        workflow = client.post(
            "/api/v1/workflows/", json={"name": "bootstrap", "inputs_schema": schema, "steps": steps}
        )
        assert workflow.status_code == 201, workflow.text
        run = client.post(
            f"/api/v1/agents/{agent['id']}/runs/",
            json={"workflow": workflow.json()["id"], "inputs": {"name": "Agent Project"}},
        )
        assert run.status_code == 202, run.text
        detail = poll(
            lambda: client.get(f"/api/v1/runs/{run.json()['id']}/").json(),
            lambda d: d["status"] in {"completed", "failed", "cancelled"},
            timeout=120,
        )
        print(
            "workflow run record:",
            {k: detail[k] for k in ("id", "status", "outputs")},
            [(s["id"], s["status"], s["attempt"]) for s in detail["steps"]],
        )
        assert detail["status"] == "completed", detail
        statuses = {s["id"]: (s["status"], s["attempt"]) for s in detail["steps"]}
        assert statuses == {
            "create": ("completed", 1),
            "generate": ("completed", 1),
            "archive": ("completed", 1),
            "push": ("completed", 1),
            "skipped": ("skipped", 0),
        }
        project_id = detail["steps"][0]["output"]["body"]["id"]
        assert detail["steps"][1]["rendered_input"]["project"] == project_id
        push = detail["outputs"]["push"]
        head = subprocess.run(
            ["git", "--git-dir", str(remote), "rev-parse", "refs/heads/main"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert push["commit_sha"] == head
        logs = client.get(f"/api/v1/runs/{detail['id']}/logs/").json()
        assert any("projects_create answered 201" in line for line in logs["steps"][0]["logs"])
        # the agent owns the project it created; alice (a person) does not see it
        assert client.get(f"/api/v1/projects/{project_id}/").status_code == 404

        # out of scope: a project of charlie's, read by an api_call step as the agent → the API's 404
        other_token = client.post(
            "/api/v1/auth/token/", json={"username": "charlie", "password": "pw-for-tests"}
        ).json()["token"]
        foreign = client.post(
            "/api/v1/projects/", json={"name": "Charlie's"}, headers={"Authorization": f"Token {other_token}"}
        ).json()
        peek = client.post(
            "/api/v1/workflows/",
            json={
                "name": "peek",
                "steps": [
                    {
                        "id": "peek",
                        "type": "api_call",
                        "input": {"operation": "projects_retrieve", "path_params": {"id": foreign["id"]}},
                    }
                ],
            },
        ).json()
        run = client.post(f"/api/v1/agents/{agent['id']}/runs/", json={"workflow": peek["id"]}).json()
        failed = poll(
            lambda: client.get(f"/api/v1/runs/{run['id']}/").json(),
            lambda d: d["status"] in {"completed", "failed"},
            timeout=60,
        )
        assert failed["status"] == "failed"
        assert failed["steps"][0]["error"]["code"] == "not_found"
