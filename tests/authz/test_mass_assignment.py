"""Mass assignment: no writable endpoint lets a client set a field it may not set.

Kiln's input serializers are strict (core.serializers.StrictInputSerializer): an
undeclared field is a 400 `validation_error` naming the field, not silently ignored. For
every POST/PATCH operation of the OpenAPI schema that takes a body, the minimal valid
body plus ONE forbidden field (ids, owners, statuses, timestamps, counters, lease and
storage bookkeeping, secrets, privilege flags) must be rejected that way, and the
database must be exactly as before. Operations that take no body (cancel, retry,
verify) must ignore whatever a client sends. The operations come from the schema; a
writable one not covered here fails.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from tests.authz import (
    MINIMAL_BODIES,
    Operation,
    World,
    authenticated,
    db_snapshot,
    error_shape_problems,
    fetch_schema,
    operations_of,
    schema_operations,
    snapshot_diff,
)

pytestmark = pytest.mark.django_db

WRITE_METHODS = ("post", "put", "patch")
CHARLIE = object()  # replaced by charlie's user id: "make charlie the owner/creator/user"
OTHER = object()  # replaced by the id of a project alice is not in

# Fields a client must never set, with a value that would do harm if it were applied. A
# field that an operation declares as input in the schema (`project` of workflows_create,
# `role` of members_create, `is_active` of agents_partial_update, ...) is skipped for it.
FORBIDDEN: dict[str, Any] = {
    "id": 424242,
    "pk": 424242,
    "owner": CHARLIE,
    "owner_id": CHARLIE,
    "user": CHARLIE,
    "user_id": CHARLIE,
    "created_by": CHARLIE,
    "created_by_id": CHARLIE,
    "uploaded_by": CHARLIE,
    "actor": CHARLIE,
    "agent": 424242,
    "project": OTHER,
    "project_id": OTHER,
    "generated": 424242,
    "workflow": 424242,
    "status": "completed",
    "created_at": "2000-01-01T00:00:00Z",
    "updated_at": "2000-01-01T00:00:00Z",
    "started_at": "2000-01-01T00:00:00Z",
    "finished_at": "2000-01-01T00:00:00Z",
    "enqueued_at": "2000-01-01T00:00:00Z",
    "attempts": 99,
    "delivery_count": 99,
    "lease_owner": "mallory:1:x",
    "lease_expires_at": "2999-01-01T00:00:00Z",
    "cancel_requested": True,
    "progress_done": 99,
    "progress_total": 99,
    "error": {"code": "x", "message": "x"},
    "outputs": {"a": 1},
    "steps_snapshot": [],
    "content_sha256": "0" * 64,
    "file_count": 99,
    "total_bytes": 99,
    "template_version": "9.9.9",
    "template_checksum": "0" * 64,
    "archive_path": "../../../etc/passwd",
    "archive_size": 1,
    "archive_sha256": "0" * 64,
    "remote_repo_id": "1",
    "remote_full_name": "mallory/repo",
    "commit_sha": "0" * 40,
    "web_url": "https://evil.example/",
    "pushed": True,
    "target_key": "github:mallory/repo",
    "token_encrypted": "mallory",
    "token_hint": "0000",
    "verified_at": "2000-01-01T00:00:00Z",
    "account": "mallory",
    "key_hash": "0" * 64,
    "prefix": "kiln_a_x",
    "token": "kiln_a_chosen-by-the-client",
    "revoked_at": None,
    "expires_at": "2999-01-01T00:00:00Z",
    "last_used_at": "2000-01-01T00:00:00Z",
    "is_staff": True,
    "is_superuser": True,
    "is_active": False,
    "slug": "chosen-slug",
    "source": "builtin",
    "source_path": "../../",
    "checksum": "0" * 64,
    "role": "owner",
    "generations_completed": 99,
    "exports_completed": 99,
}

# Cells where Kiln contradicts its strict-input rule; kept as strict xfails (see the report).
LOGIN_NOT_STRICT = (
    "BUG: POST /auth/token/ uses a plain serializers.Serializer (TokenLoginInputSerializer), not "
    "StrictInputSerializer: unknown fields are silently ignored, the answer is 200 and a token is issued"
)
KNOWN_BUGS: dict[str, str] = {}

# Operations that take no body: what they must ignore, and how to prepare an object for them.
BODYLESS = (
    "connections_verify",
    "exports_retry",
    "generated_cancel",
    "generated_retry",
    "runs_cancel",
    "runs_retry",
    "templates_sync",
    "templates_versions_trust",
)
INJECTED: dict[str, Any] = {
    "status": "completed",
    "attempts": 99,
    "lease_owner": "mallory:1:x",
    "file_count": 99,
    "content_sha256": "0" * 64,
    "archive_path": "../../../etc/passwd",
    "provider": "tar.gz",
    "remote_url": "https://evil.example/x.git",
    "parameters": {"name": "mallory"},
    "inputs": {"x": 1},
    "outputs": {"a": 1},
    "account": "mallory",
    "verified_at": "2000-01-01T00:00:00Z",
    "token_hint": "0000",
    "name": "renamed",
}


def _writable(operations: dict[str, Operation]) -> dict[str, Operation]:
    return {k: op for k, op in operations.items() if op.method in WRITE_METHODS}


def _caller(operation_id: str) -> str:
    return "anonymous" if operation_id == "auth_token_create" else "owner"


def _client(world: World, caller: str) -> APIClient:
    return APIClient() if caller == "anonymous" else authenticated(world.cast.alice)


def _resolve(value: Any, world: World) -> Any:
    if value is CHARLIE:
        return world.cast.charlie.pk
    if value is OTHER:
        from apps.projects.services.projects import project_create

        return project_create(owner=world.cast.charlie, name="Not alice's").pk
    return value


@pytest.fixture
def world(cast: Any, make_template: Any, run_jobs: Any) -> World:
    return World(cast, make_template, run_jobs)


# --- coverage --------------------------------------------------------------------------------------


def test_every_writable_operation_is_covered(client: Any) -> None:
    writable = _writable(operations_of(fetch_schema(client)))
    with_body = {k for k, op in writable.items() if op.has_body}
    without_body = set(writable) - with_body
    assert not with_body - set(MINIMAL_BODIES), (
        f"writable operations without a minimal body: {with_body - set(MINIMAL_BODIES)}"
    )
    assert without_body == set(BODYLESS), (
        f"operations without a body changed: new {without_body - set(BODYLESS)}, gone {set(BODYLESS) - without_body}"
    )
    assert set(MINIMAL_BODIES) <= with_body, f"bodies for unknown operations: {set(MINIMAL_BODIES) - with_body}"


# --- the minimal bodies are valid ---------------------------------------------------------------------


def _body_operations() -> list[str]:
    return sorted(k for k, op in _writable(schema_operations()).items() if op.has_body)


@pytest.mark.parametrize("operation_id", _body_operations())
def test_minimal_body_is_accepted(world: World, operation_id: str) -> None:
    """Baseline for the forbidden-field cases: without the extra field the request succeeds."""
    if operation_id not in MINIMAL_BODIES:
        pytest.fail(f"{operation_id} takes a body; add a minimal valid one to tests.authz.MINIMAL_BODIES")
    op = schema_operations()[operation_id]
    caller = _caller(operation_id)
    url = world.url(op.path)
    kwargs = MINIMAL_BODIES[operation_id](world, caller)
    response = getattr(_client(world, caller), op.method)(url, **kwargs)
    assert response.status_code in (200, 201, 202), response.content


# --- one forbidden field at a time ----------------------------------------------------------------------


def _forbidden_cases() -> list[Any]:
    return [
        pytest.param(
            operation_id,
            id=operation_id,
            marks=[pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[operation_id])]
            if operation_id in KNOWN_BUGS
            else [],
        )
        for operation_id in _body_operations()
    ]


def _form_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _send_with(world: World, op: Operation, field: str) -> list[str]:
    """One request: the minimal body plus `field`. Returns what went wrong (nothing: rejected cleanly)."""
    caller = _caller(op.operation_id)
    url = world.url(op.path)
    kwargs = MINIMAL_BODIES[op.operation_id](world, caller)
    value = _resolve(FORBIDDEN[field], world)
    data = dict(kwargs["data"])
    data[field] = _form_value(value) if kwargs["format"] == "multipart" else value
    client = _client(world, caller)

    before = db_snapshot()
    response = getattr(client, op.method)(url, data, format=kwargs["format"])
    changes = snapshot_diff(before, db_snapshot())

    where = f"{op.method.upper()} {url} with {field}={value!r}"
    if response.status_code != 400:
        return [f"{where}: expected 400, got {response.status_code}: {response.content[:300]!r}"]
    problems = [f"{where}: {problem}" for problem in error_shape_problems(response)]
    body = response.json()
    if body.get("code") != "validation_error":
        problems.append(f"{where}: code {body.get('code')!r}, expected 'validation_error'")
    if field not in (body.get("extra") or {}).get("fields", {}):
        problems.append(f"{where}: extra.fields does not name {field!r}: {body}")
    if changes:
        problems.append(f"{where}: a rejected request changed the database: {changes}")
    return problems


@pytest.mark.parametrize("operation_id", _forbidden_cases())
def test_forbidden_fields_are_rejected(world: World, operation_id: str) -> None:
    """Each forbidden field in its own request, inside a savepoint rolled back afterwards."""
    if operation_id not in MINIMAL_BODIES:
        pytest.fail(f"{operation_id} takes a body and is not covered; add a minimal valid one to MINIMAL_BODIES")
    op = schema_operations()[operation_id]
    fields = [field for field in FORBIDDEN if field not in op.request_fields]
    assert len(fields) >= 40, f"{operation_id} declares most forbidden fields as input? {sorted(op.request_fields)}"
    # build what the URL and the body refer to now, outside the savepoints rolled back below
    world.url(op.path)
    MINIMAL_BODIES[operation_id](world, _caller(operation_id))
    problems: list[str] = []
    for field in fields:
        with transaction.atomic():
            problems.extend(_send_with(world, op, field))
            transaction.set_rollback(True)
    assert not problems, f"{len(problems)} of {len(fields)} forbidden fields were not rejected:\n" + "\n".join(problems)


# Nested objects are strict too: the export target and the workflow steps.
NESTED = [
    pytest.param(
        "exports_create",
        {"provider": "zip", "repository": {"name": "demo", "remote_repo_id": "1"}},
        ("repository", "remote_repo_id"),
        id="exports_create-repository.remote_repo_id",
    ),
    pytest.param(
        "exports_create",
        {"provider": "zip", "repository": {"name": "demo", "owner_id": 1}},
        ("repository", "owner_id"),
        id="exports_create-repository.owner_id",
    ),
    pytest.param(
        "workflows_create",
        {
            "name": "W",
            "steps": [{"id": "a", "type": "api_call", "input": {"operation": "projects_list"}, "status": "completed"}],
        },
        ("steps[0].status",),
        id="workflows_create-steps.status",
    ),
    pytest.param(
        "workflows_create",
        {
            "name": "W",
            "steps": [{"id": "a", "type": "api_call", "input": {"operation": "projects_list"}, "output": {}}],
        },
        ("steps[0].output",),
        id="workflows_create-steps.output",
    ),
    pytest.param(
        "workflows_partial_update",
        {"steps": [{"id": "a", "type": "api_call", "input": {"operation": "projects_list"}, "created_by": 1}]},
        ("steps[0].created_by",),
        id="workflows_partial_update-steps.created_by",
    ),
]


@pytest.mark.parametrize(("operation_id", "data", "where"), NESTED)
def test_nested_forbidden_field_is_rejected(world: World, operation_id: str, data: dict, where: tuple) -> None:
    op = schema_operations()[operation_id]
    url = world.url(op.path)
    client = authenticated(world.cast.alice)
    before = db_snapshot()
    response = getattr(client, op.method)(url, data, format="json")
    changes = snapshot_diff(before, db_snapshot())
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "validation_error", body
    fields: Any = body["extra"]["fields"]
    for key in where:
        assert key in fields, f"the error does not name {'.'.join(where)}: {body}"
        fields = fields[key]
    assert not changes, f"a rejected request changed the database: {changes}"


# --- operations without a body ignore one -----------------------------------------------------------------


def _prepare_bodyless(world: World, operation_id: str) -> tuple[dict[str, Any], Any, int, str | None]:
    """(url overrides, the object acted on, expected status, its status afterwards)."""
    from apps.projects.models import RepositoryExport
    from apps.projects.services.exports import repository_export_start
    from apps.projects.services.generation import generated_project_cancel, generated_project_start
    from apps.workflows.services.workflow_executor import workflow_run_cancel, workflow_run_start

    alice = world.cast.alice
    if operation_id in ("generated_cancel", "generated_retry"):
        generated = generated_project_start(
            project=world.project, template_slug=world.template.slug, parameters={}, actor=alice, enqueue=False
        )
        if operation_id == "generated_cancel":
            return {"generated": generated.pk}, generated, 200, "cancelled"
        generated_project_cancel(generated=generated, actor=alice)
        return {"generated": generated.pk}, generated, 202, "pending"
    if operation_id == "exports_retry":
        export = repository_export_start(
            generated=world.generated, data={"provider": "zip"}, actor=alice, enqueue=False
        )
        RepositoryExport.objects.filter(pk=export.pk).update(status="failed", error={"code": "x", "message": "x"})
        return {"exports": export.pk}, export, 202, "pending"
    if operation_id in ("runs_cancel", "runs_retry"):
        run = workflow_run_start(workflow=world.workflow, inputs={}, actor=alice)
        if operation_id == "runs_cancel":
            return {"runs": run.pk}, run, 200, "cancelled"
        workflow_run_cancel(run=run, actor=alice)
        return {"runs": run.pk}, run, 202, "pending"
    if operation_id == "connections_verify":
        # a plain git connection cannot be verified (400 verify_unsupported) whatever the body says
        return {"connections": world.connection.pk}, world.connection, 400, None
    if operation_id == "templates_sync":
        # alice's git template: the sync records its repository's new tags, whatever the body says
        return {}, world.git_template, 200, None
    if operation_id == "templates_versions_trust":
        # trusting a version's code is staff's; alice is refused whatever the body says
        from apps.templates.services.versions import version_latest

        return {}, version_latest(world.template), 403, None
    raise AssertionError(f"no preparation for {operation_id}; add one to _prepare_bodyless")


@pytest.mark.parametrize("operation_id", BODYLESS)
def test_bodyless_operation_ignores_a_body(world: World, operation_id: str) -> None:
    op = schema_operations()[operation_id]
    overrides, obj, expected_status, expected_state = _prepare_bodyless(world, operation_id)
    url = world.url(op.path, **overrides)
    before = {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}
    body = dict(INJECTED, owner=world.cast.charlie.pk, created_by=world.cast.charlie.pk, actor=world.cast.charlie.pk)
    response = authenticated(world.cast.alice).post(url, body, format="json")
    assert response.status_code == expected_status, response.content
    assert not error_shape_problems(response)
    obj.refresh_from_db()
    if expected_state is not None:
        assert obj.status == expected_state
    for name, injected in body.items():
        attname = name if name in before else f"{name}_id"
        if attname not in before or name == "status":
            continue
        assert getattr(obj, attname) != injected or before[attname] == injected, (
            f"{operation_id}: the body set {name} to {injected!r}"
        )
