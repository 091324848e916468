"""/mcp over real HTTP: the ASGI application in uvicorn, a real Celery worker, the official `mcp` client.

A person's session goes create project → preview → generate → poll → list files → read file →
export zip; an agent token sees only its project; a revoked token is a 401 with the SDK's
metadata; malformed arguments are tool errors naming the field, never a 500.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import subprocess
import sys
import zipfile

import httpx
import pytest
from jsonschema import Draft202012Validator
from mcp.shared.exceptions import MCPError

from tests.integration.harness import ROOT, poll
from tests.integration.mcp_client import mcp_session

pytestmark = [pytest.mark.integration]

TERMINAL = {"completed", "failed", "cancelled"}
BINARY = bytes(range(256)) * 4
TOOLS = {
    "list_templates",
    "get_template",
    "list_projects",
    "create_project",
    "preview_generation",
    "generate_project",
    "get_generation",
    "list_files",
    "read_file",
    "export_generation",
    "get_export",
    "preview_update",
    "propose_update",
    "get_update",
}


@pytest.fixture
def kiln(asgi_stack, make_template):
    from apps.projects.tests.factories import UserFactory

    UserFactory(username="alice")
    make_template(
        {
            "README.md": "# {{ name }}\n\nMade by Kiln. ✓\n",
            "src/{{ name }}/__init__.py": "VERSION = '1'\n",
            "assets/logo.bin": BINARY,
        },
        slug="mcp-demo",
        parameters={
            "type": "object",
            "properties": {"name": {"type": "string", "pattern": "^[a-z]+$", "default": "pkg"}},
        },
    )
    http = httpx.Client(base_url=asgi_stack.url, timeout=30)
    yield asgi_stack, http
    http.close()
    assert "Traceback" not in asgi_stack.log.read_text(), asgi_stack.log.read_text()[-3000:]


def leaves(exc):
    """The exceptions inside (nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from leaves(inner)
    else:
        yield exc


def login(http, username="alice"):
    token = http.post("/api/v1/auth/token/", json={"username": username, "password": "pw-for-tests"}).json()["token"]
    return token, {"Authorization": f"Token {token}"}


def wait(mcp, tool, arguments, timeout=60):
    return poll(lambda: mcp.ok(tool, arguments), lambda d: d["status"] in TERMINAL, timeout=timeout)


def test_a_session_from_template_to_zip(kiln):
    server, http = kiln
    token, _ = login(http)
    with mcp_session(server.url, token) as mcp:
        tools = mcp.tools()
        assert set(tools) == TOOLS
        for tool in tools.values():
            assert tool.description and tool.input_schema["type"] == "object" and tool.output_schema
            Draft202012Validator.check_schema(tool.output_schema)
        assert tools["read_file"].annotations.read_only_hint is True
        assert tools["generate_project"].annotations.read_only_hint is False

        catalog = mcp.ok("list_templates", {"page_size": 100})
        assert "mcp-demo" in {t["slug"] for t in catalog["results"]}
        template = mcp.ok("get_template", {"template": "mcp-demo"})
        assert template["parameters"]["properties"]["name"]["default"] == "pkg"
        assert template["versions"] == [template["latest_version"]]  # labels, newest first

        project = mcp.ok("create_project", {"name": "Made over MCP"})
        assert project["owner"] == "alice"
        assert [p["id"] for p in mcp.ok("list_projects")["results"]] == [project["id"]]

        arguments = {"project": project["id"], "template": "mcp-demo", "parameters": {"name": "widget"}}
        preview = mcp.ok("preview_generation", arguments)
        assert {f["path"] for f in preview["files"]} == {"README.md", "src/widget/__init__.py", "assets/logo.bin"}

        started = mcp.ok("generate_project", arguments)  # returns the job at once
        assert started["status"] in {"pending", "running", "completed"}
        done = wait(mcp, "get_generation", {"project": project["id"], "generated": started["id"]})
        assert done["status"] == "completed", done
        assert done["content_sha256"] == preview["content_sha256"]  # the dry run predicted the job

        where = {"project": project["id"], "generated": done["id"]}
        files = {f["path"]: f for f in mcp.ok("list_files", where)["results"]}
        assert files.keys() == {f["path"] for f in preview["files"]}
        readme = mcp.ok("read_file", {**where, "path": "README.md"})
        assert readme["encoding"] == "utf-8" and readme["truncated"] is False
        assert readme["content"] == "# widget\n\nMade by Kiln. ✓\n"
        assert hashlib.sha256(readme["content"].encode()).hexdigest() == files["README.md"]["sha256"]
        logo = mcp.ok("read_file", {**where, "path": "assets/logo.bin"})
        assert logo["encoding"] == "base64" and base64.b64decode(logo["content"]) == BINARY
        resource = mcp.read_resource(logo["uri"])
        assert base64.b64decode(resource.contents[0].blob) == BINARY
        text = mcp.read_resource(readme["uri"])
        assert text.contents[0].text == readme["content"]
        missing = mcp.error("read_file", {**where, "path": "nope.txt"})
        assert missing["code"] == "not_found"

        export = mcp.ok("export_generation", {**where, "provider": "zip"})
        finished = wait(mcp, "get_export", {**where, "export": export["id"]})
        assert finished["status"] == "completed", finished
        archive = http.get(
            f"/api/v1/projects/{project['id']}/generated/{done['id']}/exports/{export['id']}/download/",
            headers={"Authorization": f"Token {token}"},
        ).content
        assert finished["archive"] == {"size": len(archive), "sha256": hashlib.sha256(archive).hexdigest()}
        with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
            assert {name: hashlib.sha256(zipped.read(name)).hexdigest() for name in zipped.namelist()} == {
                f"widget/{path}": f["sha256"]
                for path, f in files.items()  # one top folder: the project's name
            }

        # a client that asks for progress gets notifications, and the call follows the job
        followed = mcp.ok("generate_project", {**arguments, "parameters": {"name": "gadget"}}, with_progress=True)
        assert followed["status"] == "completed", followed
        assert mcp.progress and mcp.progress[-1][0] == followed["file_count"]


def test_an_agent_token_stays_in_its_project(kiln):
    server, http = kiln
    from apps.projects.tests.factories import UserFactory

    _, alice = login(http)
    own = http.post("/api/v1/projects/", json={"name": "Agent's"}, headers=alice).json()
    other = http.post("/api/v1/projects/", json={"name": "Not the agent's"}, headers=alice).json()
    generated = http.post(
        f"/api/v1/projects/{other['id']}/generated/", json={"template": "mcp-demo"}, headers=alice
    ).json()
    poll(
        lambda: http.get(f"/api/v1/projects/{other['id']}/generated/{generated['id']}/", headers=alice).json(),
        lambda d: d["status"] in TERMINAL,
    )
    agent = http.post(
        "/api/v1/agents/", json={"name": "scoped", "projects": [own["id"]], "role": "maintainer"}, headers=alice
    ).json()
    token = http.post(f"/api/v1/agents/{agent['id']}/tokens/", json={"name": "mcp"}, headers=alice).json()["token"]
    UserFactory(username="bob")
    with mcp_session(server.url, token) as mcp:
        assert [p["id"] for p in mcp.ok("list_projects")["results"]] == [own["id"]]
        theirs = {"project": other["id"], "generated": generated["id"]}
        for tool, arguments in [
            ("get_generation", theirs),
            ("list_files", theirs),
            ("read_file", {**theirs, "path": "README.md"}),
            ("generate_project", {"project": other["id"], "template": "mcp-demo"}),
            ("preview_generation", {"project": other["id"], "template": "mcp-demo"}),
            ("export_generation", {**theirs, "provider": "zip"}),
            ("get_export", {**theirs, "export": 1}),
        ]:
            error = mcp.error(tool, arguments)
            assert error["code"] == "not_found", (tool, error)
        with pytest.raises(Exception, match="Project not found"):
            mcp.read_resource(f"kiln://projects/{other['id']}/generated/{generated['id']}/files/README.md")
        # inside its own project it works
        mine = mcp.ok("generate_project", {"project": own["id"], "template": "mcp-demo"})
        assert mine["created_by"].startswith("agent-")
    # nothing of the other project changed
    listing = http.get(f"/api/v1/projects/{other['id']}/generated/", headers=alice).json()
    assert listing["count"] == 1


def test_tokens_hosts_and_origins_are_checked(kiln):
    server, http = kiln
    _, alice = login(http)
    agent = http.post("/api/v1/agents/", json={"name": "revoked"}, headers=alice).json()
    issued = http.post(f"/api/v1/agents/{agent['id']}/tokens/", json={"name": "t"}, headers=alice).json()
    envelope = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    ping = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": envelope}}
    accept = {
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/list",
    }
    with mcp_session(server.url, issued["token"]) as mcp:
        assert "list_projects" in mcp.tools()
    assert http.delete(f"/api/v1/agents/{agent['id']}/tokens/{issued['id']}/", headers=alice).status_code == 204
    for headers in ({"Authorization": f"Bearer {issued['token']}"}, {}, {"Authorization": "Bearer kiln_u_nonsense"}):
        answer = http.post("/mcp", json=ping, headers={**accept, **headers})
        assert answer.status_code == 401, answer.text
        challenge = answer.headers["www-authenticate"]
        assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge
        assert f'resource_metadata="{server.url}/.well-known/oauth-protected-resource/mcp"' in challenge
    metadata = http.get("/.well-known/oauth-protected-resource/mcp").json()
    assert metadata["resource"] == f"{server.url}/mcp"
    assert metadata["authorization_servers"] == [server.url]
    with pytest.raises(BaseExceptionGroup) as refused, mcp_session(server.url, issued["token"]) as mcp:
        mcp.tools()
    # the SDK client reports the refused request (the 401 above) as an MCP error
    assert any(isinstance(exc, MCPError) for exc in leaves(refused.value)), refused.value
    # DNS rebinding: a foreign Host or Origin is refused before authentication matters
    token, _ = login(http)
    bearer = {**accept, "Authorization": f"Bearer {token}"}
    assert http.post("/mcp", json=ping, headers={**bearer, "Host": "evil.example"}).status_code == 421
    assert http.post("/mcp", json=ping, headers={**bearer, "Origin": "http://evil.example"}).status_code == 403
    allowed = http.post("/mcp", json=ping, headers={**bearer, "Origin": server.url})
    assert allowed.status_code == 200 and "list_projects" in allowed.text


def test_malformed_arguments_are_tool_errors_naming_the_field(kiln):
    server, http = kiln
    token, alice = login(http)
    project = http.post("/api/v1/projects/", json={"name": "Bad input"}, headers=alice).json()
    cases = [
        ("get_generation", {"project": "seven", "generated": 1}, "project"),
        ("get_generation", {"project": project["id"]}, "generated"),
        ("get_generation", {"project": project["id"], "generated": 2**70}, "generated"),
        ("list_projects", {"page_size": 0}, "page_size"),
        ("create_project", {"name": "x" * 101}, "name"),
        ("create_project", {"name": "ok", "owner": "someone"}, "owner"),
        ("create_project", {"name": "line\nbreak"}, "name"),
        ("preview_generation", {"project": project["id"], "template": "mcp-demo", "parameters": []}, "parameters"),
        (
            "preview_generation",
            {"project": project["id"], "template": "mcp-demo", "parameters": {"nme": "a"}},
            "parameters.nme",
        ),
        (
            "preview_generation",
            {"project": project["id"], "template": "mcp-demo", "parameters": {"name": "A1"}},
            "parameters.name",
        ),
        ("export_generation", {"project": project["id"], "generated": 1, "provider": "ftp"}, "provider"),
        (
            "export_generation",
            {"project": project["id"], "generated": 1, "provider": "github", "repository": {"name": 5}},
            "repository.name",
        ),
        ("read_file", {"project": project["id"], "generated": 1, "path": ""}, "path"),
    ]
    with mcp_session(server.url, token) as mcp:
        for tool, arguments, field in cases:
            error = mcp.error(tool, arguments)
            assert error["code"] == "validation_error", (tool, arguments, error)
            assert field in error["extra"]["fields"], (tool, arguments, error)
            assert field in error["message"]
        with pytest.raises(MCPError, match="Unknown tool"):  # a protocol error, as the spec asks
            mcp.call("no_such_tool", {})
    # the transport itself: garbage is a 4xx from the SDK, never a 500
    accept = {"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {token}"}
    for body in (b"{", b"[]", b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": 7}'):
        answer = http.post("/mcp", content=body, headers={**accept, "Content-Type": "application/json"})
        assert answer.status_code == 400, answer.text


def readme_session() -> str:
    """The Python session of the README's Agents section, verbatim."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("A session with the Python `mcp` client") :]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_session_runs(kiln):
    server, http = kiln
    _, alice = login(http)
    project = http.post("/api/v1/projects/", json={"name": "Readme"}, headers=alice).json()
    agent = http.post(
        "/api/v1/agents/", json={"name": "builder", "projects": [project["id"]], "role": "maintainer"}, headers=alice
    ).json()
    token = http.post(f"/api/v1/agents/{agent['id']}/tokens/", json={"name": "mcp"}, headers=alice).json()["token"]
    env = {**os.environ, "KILN_MCP_URL": f"{server.url}/mcp", "KILN_TOKEN": token}
    run = subprocess.run(
        [sys.executable, "-c", readme_session()], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert run.returncode == 0, run.stderr[-3000:]
    print(run.stdout)
    lines = run.stdout.splitlines()
    assert lines[0].startswith("['list_templates', ")
    assert lines[1].startswith("preview: ") and " files " in lines[1]
    assert lines[2].startswith("generation ") and " completed " in lines[2]
    assert lines[3].startswith("# ") and "| kiln://projects/" in lines[3]
    assert lines[4] == "error: True validation_error ['parameters.project_name']"
