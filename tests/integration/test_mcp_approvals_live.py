"""Approval gates and compensation over real HTTP: uvicorn (core.asgi), a real worker, the local forge.

An agent's GitHub export through MCP waits; a stale hash is a 409, the agent approving itself a
403, the right hash pushes exactly once, a rejection ends the other export. A workflow run whose
last step fails deletes the repository it created and keeps the one it adopted.
"""

from __future__ import annotations

import httpx
import pytest

from tests.forge.fixtures import ALICE_TOKEN
from tests.integration.harness import poll
from tests.integration.mcp_client import mcp_session

pytestmark = [pytest.mark.integration]

TERMINAL = {"completed", "failed", "cancelled"}


@pytest.fixture
def kiln(asgi_stack, make_template):
    from apps.projects.tests.factories import UserFactory

    UserFactory(username="alice")
    make_template(
        {"README.md": "# {{ name }}\n", "src/main.py": "print('{{ name }}')\n"},
        slug="gate-demo",
        parameters={"type": "object", "properties": {"name": {"type": "string", "default": "app"}}},
    )
    http = httpx.Client(base_url=asgi_stack.url, timeout=30)
    token = http.post("/api/v1/auth/token/", json={"username": "alice", "password": "pw-for-tests"}).json()["token"]
    yield asgi_stack, http, {"Authorization": f"Token {token}"}
    http.close()
    assert "Traceback" not in asgi_stack.log.read_text(), asgi_stack.log.read_text()[-3000:]


def test_an_agents_github_export_through_mcp_waits_for_a_person(kiln, github_forge):
    server, http, alice = kiln
    project = http.post("/api/v1/projects/", json={"name": "Gated"}, headers=alice).json()
    agent = http.post(
        "/api/v1/agents/", json={"name": "shipper", "projects": [project["id"]], "role": "maintainer"}, headers=alice
    ).json()
    token = http.post(f"/api/v1/agents/{agent['id']}/tokens/", json={"name": "mcp"}, headers=alice).json()["token"]
    as_agent = {"Authorization": f"Bearer {token}"}
    connection = http.post(
        "/api/v1/connections/",
        json={"provider": "github", "name": "gh", "base_url": github_forge.api_url, "token": ALICE_TOKEN},
        headers=as_agent,
    ).json()["id"]

    with mcp_session(server.url, token) as mcp:
        generations = []
        for name in ("one", "two"):  # the second is the agent trying again with other parameters
            started = mcp.ok(
                "generate_project", {"project": project["id"], "template": "gate-demo", "parameters": {"name": name}}
            )
            where = {"project": project["id"], "generated": started["id"]}
            done = poll(lambda w=where: mcp.ok("get_generation", w), lambda d: d["status"] in TERMINAL)
            assert done["status"] == "completed", done
            generations.append(where)
        exports = [
            mcp.ok(
                "export_generation",
                {**where, "provider": "github", "connection": connection, "repository": {"name": f"shipped-{i}"}},
            )
            for i, where in enumerate(generations)
        ]
        for export in exports:
            assert export["status"] == "awaiting_approval"
            assert export["approval"]["status"] == "pending" and export["approval"]["reason"] == "agent_export"
        first, second = exports
        assert first["approval"]["plan_sha256"] != second["approval"]["plan_sha256"]
        assert first["approval"]["plan"]["generated"]["parameters"] == {"name": "one"}
        assert github_forge.find_requests("POST") == []

        url = f"/api/v1/projects/{project['id']}/generated/{generations[0]['generated']}/exports/{first['id']}/"
        # the hash of the plan the approver reviewed for the other export (other parameters): 409, nothing runs
        stale = http.post(f"{url}approve/", json={"plan_sha256": second["approval"]["plan_sha256"]}, headers=alice)
        assert stale.status_code == 409 and stale.json()["code"] == "plan_changed"
        assert stale.json()["extra"]["plan_sha256"] == first["approval"]["plan_sha256"]
        # the agent cannot approve its own export
        itself = http.post(f"{url}approve/", json={"plan_sha256": first["approval"]["plan_sha256"]}, headers=as_agent)
        assert itself.status_code == 403 and itself.json()["code"] == "self_approval"
        assert mcp.ok("get_export", {**generations[0], "export": first["id"]})["status"] == "awaiting_approval"
        assert github_forge.find_requests("POST") == []

        listed = http.get("/api/v1/approvals/", headers=alice).json()["results"]
        assert {a["export"] for a in listed} == {first["id"], second["id"]}
        approved = http.post(f"{url}approve/", json={"plan_sha256": first["approval"]["plan_sha256"]}, headers=alice)
        assert approved.status_code == 202, approved.text
        pushed = poll(
            lambda: mcp.ok("get_export", {**generations[0], "export": first["id"]}),
            lambda d: d["status"] in TERMINAL,
            timeout=90,
        )
        assert pushed["status"] == "completed", pushed
        assert pushed["approval"]["status"] == "approved" and pushed["approval"]["decided_by"] == "alice"
        assert github_forge.refs("alice/shipped-0")["refs/heads/main"] == pushed["commit_sha"]
        assert len(github_forge.find_requests("POST", r"/user/repos$")) == 1  # pushed exactly once

        other = f"/api/v1/projects/{project['id']}/generated/{generations[1]['generated']}/exports/{second['id']}/"
        rejected = http.post(f"{other}reject/", json={"comment": "one is enough"}, headers=alice)
        assert rejected.status_code == 200, rejected.text
        ended = mcp.ok("get_export", {**generations[1], "export": second["id"]})
        assert ended["status"] == "cancelled" and ended["error"]["code"] == "rejected"
    assert "alice/shipped-1" not in github_forge.repos
    assert len(github_forge.find_requests("POST", r"/user/repos$")) == 1
    audit = http.get(f"/api/v1/projects/{project['id']}/audit/?page_size=100", headers=alice).json()["results"]
    actions = [event["action"] for event in audit]
    assert actions.count("approval.requested") == 2
    assert "approval.approved" in actions and "approval.rejected" in actions


def test_a_failed_run_deletes_the_repository_it_created_and_keeps_the_adopted_one(kiln, github_forge):
    _, http, alice = kiln
    project = http.post("/api/v1/projects/", json={"name": "Compensated"}, headers=alice).json()
    base = f"/api/v1/projects/{project['id']}/generated/"
    created = http.post(base, json={"template": "gate-demo"}, headers=alice).json()
    generated = poll(
        lambda: http.get(f"{base}{created['id']}/", headers=alice).json(), lambda d: d["status"] in TERMINAL
    )
    assert generated["status"] == "completed", generated
    connection = http.post(
        "/api/v1/connections/",
        json={"provider": "github", "name": "gh", "base_url": github_forge.api_url, "token": ALICE_TOKEN},
        headers=alice,
    ).json()["id"]
    target = {"provider": "github", "connection": connection}
    # an earlier export made alice/shared; the run's second step adopts it
    earlier = http.post(
        f"{base}{generated['id']}/exports/", json={**target, "repository": {"name": "shared"}}, headers=alice
    ).json()
    poll(
        lambda: http.get(f"{base}{generated['id']}/exports/{earlier['id']}/", headers=alice).json(),
        lambda d: d["status"] == "completed",
        timeout=90,
    )
    github_forge.create_repo_directly("alice/bystander", "alice", seed=True)
    undo = {"generated": generated["id"], "on_failure": "delete_created_repository", **target}
    steps = [
        {"id": "fresh", "type": "repo_creation", "input": {**undo, "repository": {"name": "made-by-run"}}},
        {"id": "adopted", "type": "repo_creation", "input": {**undo, "repository": {"name": "shared"}}},
        {"id": "check", "type": "api_call", "input": {"operation": "projects_retrieve", "path_params": {"id": 99999}}},
    ]
    workflow = http.post(
        "/api/v1/workflows/", json={"name": "ship", "project": project["id"], "steps": steps}, headers=alice
    ).json()
    run = http.post(f"/api/v1/workflows/{workflow['id']}/runs/", json={}, headers=alice).json()
    detail = poll(
        lambda: http.get(f"/api/v1/runs/{run['id']}/", headers=alice).json(),
        lambda d: d["status"] in TERMINAL,
        timeout=120,
    )
    assert detail["status"] == "failed" and detail["error"]["code"] == "not_found"
    by_id = {s["id"]: s for s in detail["steps"]}
    assert (by_id["fresh"]["status"], by_id["fresh"]["compensation"]["outcome"]) == ("compensated", "deleted")
    assert (by_id["adopted"]["status"], by_id["adopted"]["compensation"]["outcome"]) == ("completed", "kept")
    assert "alice/made-by-run" not in github_forge.repos
    assert {"alice/shared", "alice/bystander"} <= set(github_forge.repos)
    assert [r.path for r in github_forge.find_requests("DELETE")] == ["/api/v3/repos/alice/made-by-run"]
    assert [(c["step"], c["outcome"]) for c in detail["error"]["extra"]["compensation"]] == [
        ("adopted", "kept"),
        ("fresh", "deleted"),
    ]
