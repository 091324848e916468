"""Every operation of the OpenAPI schema x every kind of caller, against a table of expected statuses.

API.md § Projects and members: "viewer reads; developer also generates; maintainer also
exports and manages workflows; owner also manages members and deletes. A non-member
gets 404 for every object of the project." Agents act with their own identity and only
within their projects.

Each (operation, caller) is its own test case with a fresh database, so destructive calls
cannot affect another case. The operations come from the schema at collection time; an
operation without a row in EXPECTED, or a row without an operation, fails.
"""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.authz import (
    CANARY_TOKEN,
    MINIMAL_BODIES,
    WORKFLOW_STEPS,
    World,
    authenticated,
    db_snapshot,
    error_shape_problems,
    fetch_schema,
    operations_of,
    release,
    schema_operations,
    snapshot_diff,
)

pytestmark = pytest.mark.django_db

CALLERS = (
    "anonymous",
    "outsider",  # charlie, no membership
    "viewer",  # victor
    "developer",  # dave
    "maintainer",  # mia
    "owner",  # alice
    "agent_in_scope",  # an agent of alice's, maintainer in Alpha, with a real token
    "agent_out_of_scope",  # an agent of alice's in no project, with a real token
)


def _row(*codes: int) -> dict[str, int]:
    assert len(codes) == len(CALLERS)
    return dict(zip(CALLERS, codes, strict=True))


# Reads of anything in Alpha: members (and the in-scope agent) 200, non-members 404.
MEMBER_READ = _row(401, 404, 200, 200, 200, 200, 200, 404)
# Not project-scoped: any authenticated caller.
ANY_USER = _row(401, 200, 200, 200, 200, 200, 200, 200)
# alice's own objects (her agent, its tokens, her connection): nobody else sees them.
ALICE_ONLY_READ = _row(401, 404, 404, 404, 404, 200, 404, 404)

#                                    anon  out  view  dev  maint owner a_in a_out
EXPECTED: dict[str, dict[str, int]] = {
    # auth (public)
    "auth_token_create": _row(200, 200, 200, 200, 200, 200, 200, 200),
    # agents: a person's own; agents cannot create agents
    "agents_list": ANY_USER,
    "agents_create": _row(401, 201, 201, 201, 201, 201, 403, 403),
    "agents_retrieve": ALICE_ONLY_READ,
    "agents_partial_update": ALICE_ONLY_READ,
    "agents_destroy": _row(401, 404, 404, 404, 404, 204, 404, 404),
    "agent_runs_create": _row(401, 404, 404, 404, 404, 202, 404, 404),
    "agent_tokens_list": ALICE_ONLY_READ,
    "agent_tokens_create": _row(401, 404, 404, 404, 404, 201, 404, 404),
    "agent_tokens_destroy": _row(401, 404, 404, 404, 404, 204, 404, 404),
    "discovery_operations": ANY_USER,
    "discovery_tools": ANY_USER,
    "discovery_docs": ANY_USER,
    # connections: per user. verify of a plain git connection is 400 verify_unsupported (git
    # tokens are checked on the first push), the only non-permission 4xx of the table.
    "connections_list": ANY_USER,
    "connections_create": _row(401, 201, 201, 201, 201, 201, 201, 201),
    "connections_retrieve": ALICE_ONLY_READ,
    "connections_destroy": _row(401, 404, 404, 404, 404, 204, 404, 404),
    "connections_verify": _row(401, 404, 404, 404, 404, 400, 404, 404),
    # templates: a global catalog
    "templates_list": ANY_USER,
    "templates_retrieve": ANY_USER,
    "templates_versions_list": ANY_USER,
    "templates_versions_retrieve": ANY_USER,
    # trusting a version's code: staff only (no caller of the matrix is staff)
    "templates_versions_trust": _row(401, 403, 403, 403, 403, 403, 403, 403),
    "templates_create": _row(401, 201, 201, 201, 201, 201, 201, 201),
    # the matrix's template was not uploaded by any caller: only its uploader or staff may delete it
    "templates_destroy": _row(401, 403, 403, 403, 403, 403, 403, 403),
    # a git template (alice's) records its new tags at its owner's request (or staff's); agents act as themselves
    "templates_sync": _row(401, 403, 403, 403, 403, 200, 403, 403),
    "templates_versions_destroy": _row(401, 403, 403, 403, 403, 403, 403, 403),
    # blueprints: a preview stores nothing and is not project-scoped
    "blueprints_preview": ANY_USER,
    # projects and members
    "projects_list": ANY_USER,
    "projects_create": _row(401, 201, 201, 201, 201, 201, 201, 201),
    "projects_retrieve": MEMBER_READ,
    "projects_partial_update": _row(401, 404, 403, 403, 200, 200, 200, 404),
    "projects_destroy": _row(401, 404, 403, 403, 403, 204, 403, 404),
    "members_list": MEMBER_READ,
    "members_create": _row(401, 404, 403, 403, 403, 201, 403, 404),
    "members_destroy": _row(401, 404, 403, 403, 403, 204, 403, 404),
    "audit_list": MEMBER_READ,
    # generations (the fixture's generation is completed: cancel/retry are 409 when allowed)
    "generated_list": MEMBER_READ,
    "generated_retrieve": MEMBER_READ,
    "generated_create": _row(401, 404, 403, 202, 202, 202, 202, 404),
    "generated_cancel": _row(401, 404, 403, 409, 409, 409, 409, 404),
    "generated_retry": _row(401, 404, 403, 409, 409, 409, 409, 404),
    "generated_destroy": _row(401, 404, 403, 403, 204, 204, 204, 404),
    "generated_events": MEMBER_READ,
    "generated_logs": MEMBER_READ,
    "files_list": MEMBER_READ,
    "files_retrieve": MEMBER_READ,
    "files_content": MEMBER_READ,
    # exports (the fixture's zip export is completed: retry is 409 when allowed)
    "exports_list": MEMBER_READ,
    "exports_retrieve": MEMBER_READ,
    "exports_download": MEMBER_READ,
    "exports_create": _row(401, 404, 403, 403, 202, 202, 202, 404),
    "exports_events": MEMBER_READ,
    "exports_logs": MEMBER_READ,
    "exports_retry": _row(401, 404, 403, 403, 409, 409, 409, 404),
    # workflows of Alpha. Creating one in a project you cannot see is a 400 naming `project`
    # ("Unknown project", the same answer as for an id that does not exist), not a 404:
    # the project is a body field, not the URL's object.
    "workflows_list": ANY_USER,
    "workflows_retrieve": MEMBER_READ,
    "workflows_create": _row(401, 400, 403, 403, 201, 201, 201, 400),
    "workflows_partial_update": _row(401, 404, 403, 403, 200, 200, 200, 404),
    "workflows_destroy": _row(401, 404, 403, 403, 204, 204, 204, 404),
    "workflow_runs_create": _row(401, 404, 403, 403, 202, 202, 202, 404),
    # runs of Alpha's workflow (the fixture's run is completed: cancel/retry are 409 when allowed)
    "runs_list": ANY_USER,
    "runs_retrieve": MEMBER_READ,
    "runs_logs": MEMBER_READ,
    "runs_events": MEMBER_READ,
    # a run acts as whoever started it (alice); a maintainer or an agent may not act on it, the owner may
    "runs_cancel": _row(401, 404, 403, 403, 403, 409, 403, 404),
    "runs_retry": _row(401, 404, 403, 403, 403, 409, 403, 404),
    # template updates of Alpha's generation: a preview needs a developer (branch / pull request a maintainer)
    "updates_list": MEMBER_READ,
    "updates_retrieve": MEMBER_READ,
    "updates_diff": MEMBER_READ,
    "updates_events": MEMBER_READ,
    "updates_logs": MEMBER_READ,
    "updates_create": _row(401, 404, 403, 202, 202, 202, 202, 404),
    # rollouts and drift of a template: every user, each seeing only the projects they are in
    "rollouts_create": _row(401, 202, 202, 202, 202, 202, 202, 202),
    "rollouts_list": ANY_USER,
    "rollouts_retrieve": MEMBER_READ,
    "rollouts_events": MEMBER_READ,
    "templates_drift": ANY_USER,
    # adopting a repository records an export target: a maintainer, as exports
    "adoptions_list": MEMBER_READ,
    "adoptions_retrieve": MEMBER_READ,
    "adoptions_create": _row(401, 404, 403, 403, 202, 202, 202, 404),
    # approvals: a person with the maintainer/owner role decides; never an agent (the in-scope
    # agent requested the export approval: self_approval 403). The jobs wait for a decision.
    "exports_approve": _row(401, 404, 403, 403, 202, 202, 403, 404),
    "exports_reject": _row(401, 404, 403, 403, 200, 200, 403, 404),
    "runs_approve": _row(401, 404, 403, 403, 202, 202, 403, 404),
    "runs_reject": _row(401, 404, 403, 403, 200, 200, 403, 404),
    "approvals_list": ANY_USER,
    "approvals_retrieve": _row(401, 404, 404, 404, 200, 200, 404, 404),
    "approvals_approve": _row(401, 404, 404, 404, 202, 202, 404, 404),
    "approvals_reject": _row(401, 404, 404, 404, 200, 200, 404, 404),
}

# Cells where Kiln contradicts API.md or is clearly wrong: the expected value above stays
# correct and the case is a strict xfail, so fixing the bug turns it into a failure to notice.
KNOWN_BUGS: dict[tuple[str, str], str] = {}


# --- callers -----------------------------------------------------------------------------------


def _agent_client(world: World, *, in_scope: bool) -> APIClient:
    """An agent of alice's, created and given a token through the API, calling with that token."""
    alice = authenticated(world.cast.alice)
    body = {"name": "Caller in scope", "projects": [world.project.pk], "role": "maintainer"}
    if not in_scope:
        body = {"name": "Caller out of scope", "projects": []}
    created = alice.post("/api/v1/agents/", body, format="json")
    assert created.status_code == 201, created.content
    issued = alice.post(f"/api/v1/agents/{created.json()['id']}/tokens/", {"name": "matrix"}, format="json")
    assert issued.status_code == 201, issued.content
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {issued.json()['token']}")
    return client


def client_for(world: World, caller: str) -> APIClient:
    cast = world.cast
    people = {
        "outsider": cast.charlie,
        "viewer": cast.victor,
        "developer": cast.dave,
        "maintainer": cast.mia,
        "owner": cast.alice,
    }
    if caller == "anonymous":
        return APIClient()
    if caller in people:
        return authenticated(people[caller])
    if caller in ("agent_in_scope", "agent_out_of_scope"):
        return _agent_client(world, in_scope=caller == "agent_in_scope")
    raise AssertionError(f"unknown caller {caller}")


# --- the matrix ----------------------------------------------------------------------------------


def _cases() -> list[Any]:
    """(operation, caller) for the schema's operations and EXPECTED's rows (a mismatch fails)."""
    operation_ids = sorted(set(schema_operations()) | set(EXPECTED))
    return [
        pytest.param(
            operation_id,
            caller,
            id=f"{operation_id}-{caller}",
            marks=(
                [pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[(operation_id, caller)])]
                if (operation_id, caller) in KNOWN_BUGS
                else []
            ),
        )
        for operation_id in operation_ids
        for caller in CALLERS
    ]


@pytest.fixture
def world(cast: Any, make_template: Any, run_jobs: Any) -> World:
    return World(cast, make_template, run_jobs)


@pytest.mark.parametrize(("operation_id", "caller"), _cases())
def test_permission_matrix(world: World, operation_id: str, caller: str) -> None:
    operations = schema_operations()
    if operation_id not in EXPECTED:
        pytest.fail(f"the schema has operation {operation_id!r} but EXPECTED has no row for it")
    if operation_id not in operations:
        pytest.fail(f"EXPECTED has a row for {operation_id!r} but the schema no longer has that operation")
    op = operations[operation_id]
    if op.has_body and operation_id not in MINIMAL_BODIES:
        pytest.fail(f"{operation_id} takes a request body; add a minimal valid one to tests.authz.MINIMAL_BODIES")

    expected = EXPECTED[operation_id][caller]
    client = client_for(world, caller)
    url = world.url(op.path)
    kwargs = MINIMAL_BODIES[operation_id](world, caller) if op.has_body else {}
    denied_write = op.method != "get" and expected >= 400
    before = db_snapshot() if denied_write else {}
    response = getattr(client, op.method)(url, **kwargs)
    changes = snapshot_diff(before, db_snapshot()) if denied_write else []
    try:
        body = b"<streamed>" if getattr(response, "streaming", False) else response.content[:600]
        assert response.status_code == expected, (
            f"{op.method.upper()} {url} as {caller}: expected {expected}, got {response.status_code}: {body!r}"
        )
        assert not error_shape_problems(response), error_shape_problems(response)
        if not getattr(response, "streaming", False):
            assert CANARY_TOKEN.encode() not in response.content, "a connection token was returned"
        assert not changes, f"a refused {op.method.upper()} changed the database: {changes}"
    finally:
        release(response)


def test_expected_table_matches_the_schema(client: Any) -> None:
    """Fetched now, through the test client: every operation has a row and every row an operation."""
    operations = operations_of(fetch_schema(client))
    missing = sorted(set(operations) - set(EXPECTED))
    stale = sorted(set(EXPECTED) - set(operations))
    assert not missing, f"operations without an EXPECTED row (a new endpoint needs one): {missing}"
    assert not stale, f"EXPECTED rows for operations the schema no longer has: {stale}"
    for operation_id, row in EXPECTED.items():
        assert set(row) == set(CALLERS), f"{operation_id}: the row must name exactly {CALLERS}"
    for operation_id, caller in KNOWN_BUGS:
        assert operation_id in EXPECTED and caller in CALLERS


def test_matrix_size() -> None:
    operations = schema_operations()
    size = len(operations) * len(CALLERS)
    print(f"permission matrix: {len(operations)} operations x {len(CALLERS)} callers = {size} cases")
    assert size == len(EXPECTED) * len(CALLERS)


# --- lists never show foreign objects ------------------------------------------------------------


def _ids(client: APIClient, url: str, key: str = "id") -> set[Any]:
    """Every `key` of a paginated list, following `next`."""
    found: set[Any] = set()
    page: str | None = f"{url}{'&' if '?' in url else '?'}page_size=100"
    while page:
        response = client.get(page)
        assert response.status_code == 200, (page, response.content)
        body = response.json()
        found |= {item[key] for item in body["results"]}
        page = body["next"]
    return found


class Charlie:
    """charlie's own project, generation (with an export), connection, workflow, run and agent."""

    def __init__(self, world: World) -> None:
        from apps.agents.services.agents import agent_create
        from apps.projects.services.connections import connection_create
        from apps.projects.services.exports import repository_export_execute, repository_export_start
        from apps.projects.services.generation import generated_project_execute, generated_project_start
        from apps.projects.services.projects import project_create
        from apps.workflows.services.workflow_executor import workflow_create, workflow_run_start

        charlie = world.cast.charlie
        self.project = project_create(owner=charlie, name="Charlie's")
        row = generated_project_start(
            project=self.project, template_slug=world.template.slug, parameters={}, actor=charlie, enqueue=False
        )
        self.generated = generated_project_execute(generated_id=row.pk, owner="authz:2:x").generated
        self.file = self.generated.files.order_by("path").first()
        export = repository_export_start(
            generated=self.generated, data={"provider": "zip"}, actor=charlie, enqueue=False
        )
        self.export, _ = repository_export_execute(export_id=export.pk, owner="authz:2:x")
        self.membership = self.project.memberships.get(user=charlie)
        self.connection = connection_create(
            owner=charlie, provider="git", name="mine", token="CANARY-matrix-token-0002"
        )
        self.workflow = workflow_create(actor=charlie, name="Charlie's", project=self.project.pk, steps=WORKFLOW_STEPS)
        self.personal_workflow = workflow_create(actor=charlie, name="Charlie's own", steps=WORKFLOW_STEPS)
        self.run = workflow_run_start(workflow=self.workflow, inputs={}, actor=charlie)
        self.agent = agent_create(owner=charlie, name="Charlie's bot", projects=[self.project.pk], role="maintainer")


def _lists(project_id: int, generated_id: int) -> dict[str, str]:
    return {
        "projects": "/api/v1/projects/",
        "generated": f"/api/v1/projects/{project_id}/generated/",
        "files": f"/api/v1/projects/{project_id}/generated/{generated_id}/files/",
        "exports": f"/api/v1/projects/{project_id}/generated/{generated_id}/exports/",
        "members": f"/api/v1/projects/{project_id}/members/",
        "audit": f"/api/v1/projects/{project_id}/audit/",
        "connections": "/api/v1/connections/",
        "workflows": "/api/v1/workflows/",
        "runs": "/api/v1/runs/",
        "agents": "/api/v1/agents/",
    }


def test_lists_never_include_foreign_objects(world: World) -> None:
    charlie_side = Charlie(world)
    alice_side = {
        "projects": {world.project.pk},
        "generated": {world.generated.pk},
        "files": {world.project_file.pk},
        "exports": {world.export.pk},
        "members": {world.membership.pk},
        "connections": {world.connection.pk},
        "workflows": {world.workflow.pk},
        "runs": {world.run.pk},
        "agents": {world.agent.pk},
    }
    charlies = {
        "projects": {charlie_side.project.pk},
        "generated": {charlie_side.generated.pk},
        "files": {charlie_side.file.pk},
        "exports": {charlie_side.export.pk},
        "members": {charlie_side.membership.pk},
        "connections": {charlie_side.connection.pk},
        "workflows": {charlie_side.workflow.pk, charlie_side.personal_workflow.pk},
        "runs": {charlie_side.run.pk},
        "agents": {charlie_side.agent.pk},
    }
    from apps.projects.models import AuditEvent

    alice_audit = set(AuditEvent.objects.filter(project=world.project).values_list("pk", flat=True))
    charlie_audit = set(AuditEvent.objects.filter(project=charlie_side.project).values_list("pk", flat=True))
    assert alice_audit and charlie_audit
    alice_side["audit"], charlies["audit"] = alice_audit, charlie_audit

    # alice's side, every caller who can read Alpha: never one of charlie's objects
    for caller in ("viewer", "developer", "maintainer", "owner", "agent_in_scope"):
        client = client_for(world, caller)
        for kind, url in _lists(world.project.pk, world.generated.pk).items():
            seen = _ids(client, url)
            assert not seen & charlies[kind], f"{caller} sees charlie's {kind} {seen & charlies[kind]} in {url}"
        assert _ids(client, "/api/v1/projects/") == {world.project.pk}
    # alice sees her own objects where lists are per user
    owner = client_for(world, "owner")
    for kind, url in _lists(world.project.pk, world.generated.pk).items():
        assert alice_side[kind] <= _ids(owner, url), f"alice does not see her own {kind} in {url}"
    # charlie's side: never one of alice's objects
    charlie = client_for(world, "outsider")
    for kind, url in _lists(charlie_side.project.pk, charlie_side.generated.pk).items():
        seen = _ids(charlie, url)
        assert not seen & alice_side[kind], f"charlie sees alice's {kind} {seen & alice_side[kind]} in {url}"
        assert charlies[kind] <= seen or kind == "audit", f"charlie does not see his own {kind} in {url}"
    # an agent in no project sees no project, workflow or run of anyone
    stranger = client_for(world, "agent_out_of_scope")
    for url in ("/api/v1/projects/", "/api/v1/workflows/", "/api/v1/runs/", "/api/v1/connections/"):
        assert _ids(stranger, url) == set(), url


def test_nested_objects_under_a_foreign_parent_are_404(world: World) -> None:
    """Ids are checked against the URL's parents: someone else's id under your own parent is a 404."""
    from apps.agents.services.agents import agent_create, agent_token_issue
    from apps.projects.models import ProjectMembership

    c = Charlie(world)
    a_project, a_gen, a_file, a_export = world.project.pk, world.generated.pk, world.project_file.pk, world.export.pk
    a_member = world.membership.pk
    c_project, c_gen, c_file, c_export, c_member = c.project.pk, c.generated.pk, c.file.pk, c.export.pk, c.membership.pk
    other_agent = agent_create(owner=world.cast.alice, name="Other", projects=[])
    other_token, _ = agent_token_issue(agent=other_agent)
    requests = [
        # charlie, in his own project, naming alice's objects
        ("outsider", "get", f"/api/v1/projects/{c_project}/generated/{a_gen}/"),
        ("outsider", "post", f"/api/v1/projects/{c_project}/generated/{a_gen}/cancel/"),
        ("outsider", "post", f"/api/v1/projects/{c_project}/generated/{a_gen}/retry/"),
        ("outsider", "get", f"/api/v1/projects/{c_project}/generated/{a_gen}/files/"),
        ("outsider", "get", f"/api/v1/projects/{c_project}/generated/{c_gen}/files/{a_file}/"),
        ("outsider", "get", f"/api/v1/projects/{c_project}/generated/{c_gen}/files/{a_file}/content/"),
        ("outsider", "get", f"/api/v1/projects/{c_project}/generated/{a_gen}/files/{a_file}/content/"),
        ("outsider", "get", f"/api/v1/projects/{c_project}/generated/{a_gen}/exports/"),
        ("outsider", "get", f"/api/v1/projects/{c_project}/generated/{c_gen}/exports/{a_export}/"),
        ("outsider", "get", f"/api/v1/projects/{c_project}/generated/{c_gen}/exports/{a_export}/download/"),
        ("outsider", "post", f"/api/v1/projects/{c_project}/generated/{c_gen}/exports/{a_export}/retry/"),
        ("outsider", "post", f"/api/v1/projects/{c_project}/generated/{a_gen}/exports/"),
        ("outsider", "delete", f"/api/v1/projects/{c_project}/members/{a_member}/"),
        # alice, in Alpha, naming charlie's objects
        ("owner", "get", f"/api/v1/projects/{a_project}/generated/{c_gen}/"),
        ("owner", "get", f"/api/v1/projects/{a_project}/generated/{a_gen}/files/{c_file}/"),
        ("owner", "get", f"/api/v1/projects/{a_project}/generated/{a_gen}/files/{c_file}/content/"),
        ("owner", "get", f"/api/v1/projects/{a_project}/generated/{a_gen}/exports/{c_export}/download/"),
        ("owner", "delete", f"/api/v1/projects/{a_project}/members/{c_member}/"),
        ("owner", "get", f"/api/v1/runs/{c.run.pk}/"),
        ("owner", "get", f"/api/v1/workflows/{c.personal_workflow.pk}/"),
        ("owner", "post", f"/api/v1/workflows/{c.personal_workflow.pk}/runs/"),
        ("owner", "get", f"/api/v1/connections/{c.connection.pk}/"),
        ("owner", "get", f"/api/v1/agents/{c.agent.pk}/tokens/"),
        # alice's token of one agent under another of her agents
        ("owner", "delete", f"/api/v1/agents/{world.agent.pk}/tokens/{other_token.pk}/"),
    ]
    failures = []
    for caller, method, url in requests:
        kwargs = (
            {"data": {"provider": "zip"}, "format": "json"} if url.endswith("/exports/") and method == "post" else {}
        )
        response = getattr(client_for(world, caller), method)(url, **kwargs)
        if response.status_code != 404 or error_shape_problems(response):
            failures.append(f"{method.upper()} {url} as {caller}: {response.status_code} {response.content[:200]!r}")
        release(response)
    assert not failures, "\n".join(failures)
    assert ProjectMembership.objects.filter(pk__in=[a_member, c_member]).count() == 2
    other_token.refresh_from_db()
    assert other_token.revoked_at is None


def test_references_to_invisible_objects_answer_like_missing_ones(world: World) -> None:
    """A body naming an object you cannot see gets the same answer as one naming no object."""
    c = Charlie(world)
    missing = 987654
    charlie, alice = client_for(world, "outsider"), client_for(world, "owner")
    export_url = f"/api/v1/projects/{world.project.pk}/generated/{world.generated.pk}/exports/"
    cases = [
        (
            charlie,
            "/api/v1/workflows/",
            lambda ref: {"name": "W", "project": ref, "steps": WORKFLOW_STEPS},
            world.project.pk,
        ),
        (charlie, "/api/v1/agents/", lambda ref: {"name": f"A{ref}", "projects": [ref]}, world.project.pk),
        (alice, f"/api/v1/agents/{world.agent.pk}/runs/", lambda ref: {"workflow": ref}, c.workflow.pk),
        (alice, f"/api/v1/workflows/{world.workflow.pk}/runs/", lambda ref: {"agent": ref}, c.agent.pk),
        (
            alice,
            export_url,
            lambda ref: {"provider": "git", "connection": ref, "remote_url": "https://example.com/r.git"},
            c.connection.pk,
        ),
    ]
    for client, url, body, foreign in cases:
        seen = client.post(url, body(foreign), format="json")
        unseen = client.post(url, body(missing), format="json")
        assert seen.status_code == unseen.status_code and 400 <= seen.status_code < 500, (url, seen.content)
        assert seen.json()["code"] == unseen.json()["code"], (url, seen.content, unseen.content)
        assert seen.json()["extra"] == unseen.json()["extra"], (url, seen.content, unseen.content)


def test_agent_tokens_stop_working_when_the_agent_is_deactivated_or_deleted(world: World) -> None:
    alice = client_for(world, "owner")
    for action in ("deactivate", "delete"):
        agent = alice.post(
            "/api/v1/agents/", {"name": f"Short-{action}", "projects": [world.project.pk]}, format="json"
        )
        token = alice.post(f"/api/v1/agents/{agent.json()['id']}/tokens/", {}, format="json").json()["token"]
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        assert client.get(f"/api/v1/projects/{world.project.pk}/").status_code == 200
        if action == "deactivate":
            changed = alice.patch(f"/api/v1/agents/{agent.json()['id']}/", {"is_active": False}, format="json")
            assert changed.status_code == 200
        else:
            assert alice.delete(f"/api/v1/agents/{agent.json()['id']}/").status_code == 204
        response = client.get(f"/api/v1/projects/{world.project.pk}/")
        assert response.status_code == 401, response.content
        assert response.json()["code"] == "authentication_failed"


# --- malformed ids in paths --------------------------------------------------------------------------


def _malformed_cases() -> list[Any]:
    cases = []
    for operation_id, op in sorted(schema_operations().items()):
        for part in op.path.split("/"):
            if not (part.startswith("{") and part.endswith("}")):
                continue
            name = part[1:-1]
            cases.append(pytest.param(operation_id, name, id=f"{operation_id}-{name}"))
    return cases


@pytest.mark.parametrize(("operation_id", "parameter"), _malformed_cases())
def test_malformed_path_ids_are_404(world: World, operation_id: str, parameter: str) -> None:
    """`abc` where an id belongs: 404 `{message, code, extra}` (for alice, who may do everything), never a 500."""
    op = schema_operations()[operation_id]
    parts = op.path.split("/")
    at = parts.index("{" + parameter + "}")
    override = {parts[at - 1]: "abc"} if parameter == "id" else {parameter: "abc"}
    url = world.url(op.path, **override)
    kwargs = MINIMAL_BODIES[operation_id](world, "owner") if op.has_body else {}
    response = getattr(client_for(world, "owner"), op.method)(url, **kwargs)
    assert response.status_code == 404, f"{op.method.upper()} {url}: {response.status_code} {response.content[:300]!r}"
    assert not error_shape_problems(response), error_shape_problems(response)


# --- bugs found while building the matrix (fixed; kept as regression tests) --------------------------------------------------


@pytest.mark.parametrize(
    ("step_type", "state"),
    [
        ("file_generation", "completed"),
        ("file_generation", "pending"),
        ("repo_creation", "completed"),
        ("repo_creation", "pending"),
    ],
)
def test_workflow_steps_cannot_reach_another_projects_jobs(
    world: World, run_jobs: Any, step_type: str, state: str
) -> None:
    from apps.projects.services.exports import repository_export_start
    from apps.projects.services.generation import generated_project_start

    alice = world.cast.alice
    if step_type == "file_generation":
        job = (
            world.generated
            if state == "completed"
            else generated_project_start(
                project=world.project, template_slug=world.template.slug, parameters={}, actor=alice, enqueue=False
            )
        )
        step = {"id": "peek", "type": step_type, "input": {"generated": job.pk}}
    else:
        job = (
            world.export
            if state == "completed"
            else repository_export_start(
                generated=world.generated, data={"provider": "zip"}, actor=alice, enqueue=False
            )
        )
        step = {"id": "peek", "type": step_type, "input": {"export": job.pk}}
    charlie = client_for(world, "outsider")
    workflow = charlie.post("/api/v1/workflows/", {"name": "Peek", "steps": [step]}, format="json")
    assert workflow.status_code == 201, workflow.content
    with run_jobs():
        started = charlie.post(f"/api/v1/workflows/{workflow.json()['id']}/runs/", {}, format="json")
    assert started.status_code == 202, started.content
    run = charlie.get(f"/api/v1/runs/{started.json()['id']}/").json()
    job.refresh_from_db()
    assert job.status == state, f"charlie's run changed alice's {step_type} job from {state} to {job.status}"
    assert run["status"] == "failed", f"charlie's run read alice's job: {run['steps'][0]['output']}"
    assert run["steps"][0]["error"]["code"] == "not_found"


def test_deleting_an_agent_leaves_its_projects_with_its_owner(world: World) -> None:
    alice = client_for(world, "owner")
    agent = alice.post("/api/v1/agents/", {"name": "Maker"}, format="json").json()
    token = alice.post(f"/api/v1/agents/{agent['id']}/tokens/", {}, format="json").json()["token"]
    bot = APIClient()
    bot.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    made = bot.post("/api/v1/projects/", {"name": "Made by the agent"}, format="json")
    assert made.status_code == 201
    assert alice.delete(f"/api/v1/agents/{agent['id']}/").status_code == 204
    response = alice.get(f"/api/v1/projects/{made.json()['id']}/")
    assert response.status_code == 200, "the agent's project now belongs to alice (Project.owner) yet she cannot see it"
    assert response.json()["owner"] == "alice"


def test_a_removed_member_loses_access_through_their_agent(world: World) -> None:
    from apps.projects.models import ProjectMembership

    mia = client_for(world, "maintainer")
    body = {"name": "Mia's bot", "projects": [world.project.pk], "role": "maintainer"}
    agent = mia.post("/api/v1/agents/", body, format="json").json()
    token = mia.post(f"/api/v1/agents/{agent['id']}/tokens/", {}, format="json").json()["token"]
    membership = ProjectMembership.objects.get(project=world.project, user=world.cast.mia)
    removed = client_for(world, "owner").delete(f"/api/v1/projects/{world.project.pk}/members/{membership.pk}/")
    assert removed.status_code == 204
    assert mia.get(f"/api/v1/projects/{world.project.pk}/").status_code == 404
    bot = APIClient()
    bot.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    changed = bot.patch(f"/api/v1/projects/{world.project.pk}/", {"description": "mia was here"}, format="json")
    assert changed.status_code in (403, 404), (
        f"mia, removed, still edits Alpha through her agent: {changed.status_code}"
    )


def test_run_filter_does_not_reveal_foreign_workflow_ids(world: World) -> None:
    charlie = client_for(world, "outsider")
    foreign = charlie.get(f"/api/v1/runs/?workflow={world.workflow.pk}")
    missing = charlie.get("/api/v1/runs/?workflow=987654")
    assert foreign.status_code == missing.status_code, (foreign.content, missing.content)
