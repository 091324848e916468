"""An agent-style script that knows only the tool definitions drives a whole job over HTTP.

It reads `GET /api/v1/agents/discovery/tools/`, and from then on calls tools by name with
arguments shaped by each tool's JSON Schema (`path_params`, `query`, `body`); the HTTP
method and path come from the tool's description. Create project → generate → export zip →
read the export, against the live server and a real worker.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

pytestmark = [pytest.mark.integration]

ROUTE = re.compile(r"\((GET|POST|PATCH|PUT|DELETE) (/[^)\s]*)\)$")


class ToolClient:
    """Everything this client knows about Kiln comes from the tools document."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self.tools = {
            tool["function"]["name"]: tool["function"] for tool in http.get("/api/v1/agents/discovery/tools/").json()
        }

    def call(self, name: str, **arguments: Any) -> httpx.Response:
        tool = self.tools[name]
        Draft202012Validator(tool["parameters"]).validate(arguments)
        method, path = ROUTE.search(tool["description"]).groups()
        for key, value in arguments.get("path_params", {}).items():
            path = path.replace("{" + key + "}", str(value))
        return self.http.request(method, path, params=arguments.get("query"), json=arguments.get("body"))

    def wait(self, name: str, path_params: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.call(name, path_params=path_params).json()
            if body["status"] in {"completed", "failed", "cancelled"}:
                return body
            time.sleep(0.2)
        raise AssertionError(f"{name} {path_params} did not finish")


def test_tools_only_script(live_stack, make_template):
    from apps.projects.tests.factories import UserFactory

    UserFactory(username="toolbot")
    make_template(
        {"README.md": "# {{ title }}\n", "main.py": "print('{{ title }}')\n"},
        slug="tools-demo",
        parameters={"type": "object", "properties": {"title": {"type": "string", "default": "demo"}}},
    )
    with httpx.Client(base_url=live_stack.url, timeout=30) as http:
        token = http.post("/api/v1/auth/token/", json={"username": "toolbot", "password": "pw-for-tests"}).json()[
            "token"
        ]
        http.headers["Authorization"] = f"Token {token}"
        tools = ToolClient(http)
        project = tools.call("projects_create", body={"name": "Made with tools"})
        assert project.status_code == 201, project.text
        pid = project.json()["id"]
        generated = tools.call(
            "generated_create",
            path_params={"project_id": pid},
            body={"template": "tools-demo", "parameters": {"title": "hello"}},
        )
        assert generated.status_code == 202, generated.text
        gid = generated.json()["id"]
        assert tools.wait("generated_retrieve", {"project_id": pid, "id": gid})["status"] == "completed"
        export = tools.call(
            "exports_create", path_params={"project_id": pid, "generated_id": gid}, body={"provider": "zip"}
        )
        assert export.status_code == 202, export.text
        eid = export.json()["id"]
        done = tools.wait("exports_retrieve", {"project_id": pid, "generated_id": gid, "id": eid})
        assert done["status"] == "completed", done
        download = tools.call("exports_download", path_params={"project_id": pid, "generated_id": gid, "id": eid})
        assert download.status_code == 200
        assert len(download.content) == done["archive"]["size"]
        import hashlib
        import io
        import zipfile

        assert hashlib.sha256(download.content).hexdigest() == done["archive"]["sha256"]
        with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
            assert archive.read("tools-demo/README.md") == b"# hello\n"  # one top folder: the project (template) name
