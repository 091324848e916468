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
    MINIMAL_BODIES,
    World,
    authenticated,
    error_shape_problems,
    operations_of,
    schema_operations,
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
    "templates_create": _row(401, 201, 201, 201, 201, 201, 201, 201),
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
    "files_list": MEMBER_READ,
    "files_retrieve": MEMBER_READ,
    "files_content": MEMBER_READ,
    # exports (the fixture's zip export is completed: retry is 409 when allowed)
    "exports_list": MEMBER_READ,
    "exports_retrieve": MEMBER_READ,
    "exports_download": MEMBER_READ,
    "exports_create": _row(401, 404, 403, 403, 202, 202, 202, 404),
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
    "runs_cancel": _row(401, 404, 403, 403, 409, 409, 409, 404),
    "runs_retry": _row(401, 404, 403, 403, 409, 409, 409, 404),
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

    client = client_for(world, caller)
    url = world.url(op.path)
    kwargs = MINIMAL_BODIES[operation_id](world, caller) if op.has_body else {}
    response = getattr(client, op.method)(url, **kwargs)
    try:
        expected = EXPECTED[operation_id][caller]
        body = b"<streamed>" if getattr(response, "streaming", False) else response.content[:600]
        assert response.status_code == expected, (
            f"{op.method.upper()} {url} as {caller}: expected {expected}, got {response.status_code}: {body!r}"
        )
        assert not error_shape_problems(response), error_shape_problems(response)
    finally:
        response.close()


def test_expected_table_matches_the_schema(client: Any) -> None:
    """Fetched now, through the test client: every operation has a row and every row an operation."""
    from tests.authz import fetch_schema

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
