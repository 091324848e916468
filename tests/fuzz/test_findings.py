"""What the schema fuzzer found: each finding as its minimal reproducing request.

Every case sends one request (after an optional setup request) as the fuzz world's owner with
a real token, and asserts the behaviour the API contract / OpenAPI schema promise. They fail
today and run as `xfail(strict=False)`; when one starts to XPASS, the bug is fixed and the
matching tolerance in checks.py (F1-F4) or KNOWN_FAILURES entry in test_schema_fuzz.py can go.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.test import Client

from tests.fuzz.schema_loader import RAW

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)

HUGE_ID = 9223372036854775808  # 2**63: above every database integer column


@dataclass(frozen=True)
class Finding:
    id: str
    method: str
    path: str
    expect: str  # "status:<codes>" | "documented" | "schema:<component>.<property>" | "content-type"
    bug: str
    body: Any = None
    anonymous: bool = False
    setup: tuple[tuple[str, str, Any], ...] = field(default_factory=tuple)


def _operation(method: str, path: str) -> dict[str, Any]:
    return RAW["paths"][path][method.lower()]


FINDINGS = [
    # --- 5xx ---------------------------------------------------------------------------------------
    Finding(
        "agents-create-project-id-overflow",
        "POST",
        "/api/v1/agents/",
        "status:400",
        "BUG: POST /api/v1/agents/ {name, projects: [2**63]} -> 500 server_error (OverflowError in "
        "agents._grant: projects_visible_to(...).filter(pk__in=project_ids) with an id no integer column holds; "
        "PostgreSQL raises NumericValueOutOfRange the same way). Expected 400 'Unknown projects'. The serializer's "
        "IntegerField(min_value=1) has no max_value.",
        body={"name": "Overflow", "projects": [HUGE_ID]},
    ),
    Finding(
        "agents-update-project-id-overflow",
        "PATCH",
        "/api/v1/agents/1/",
        "status:400",
        "BUG: PATCH /api/v1/agents/1/ {projects: [2**63]} -> 500 server_error (same agents._grant overflow). "
        "Expected 400.",
        body={"projects": [HUGE_ID]},
    ),
    Finding(
        "agents-rename-to-taken-name",
        "PATCH",
        "/api/v1/agents/1/",
        "status:409",
        "BUG: PATCH /api/v1/agents/1/ {name: <the name of another of your agents>} -> 500 server_error "
        "(IntegrityError: UNIQUE agents_agent.owner_id, name, raised in agents.agent_update). POST /agents/ maps "
        "the same clash to 409 name_taken; update should too.",
        body={"name": "Twin"},
        setup=(("POST", "/api/v1/agents/", {"name": "Twin"}),),
    ),
    # --- responses the schema does not document (status_code_conformance) ------------------------------
    Finding(
        "undocumented-404-on-retrieve",
        "GET",
        "/api/v1/agents/99/",
        "documented",
        "BUG: GET /api/v1/agents/99/ -> 404 not_found, but agents_retrieve documents only 200 (same for "
        "connections_retrieve, runs_retrieve, workflows_retrieve, templates_retrieve, generated_retrieve, "
        "exports_retrieve, files_retrieve and most list operations).",
    ),
    Finding(
        "undocumented-404-invalid-page",
        "GET",
        "/api/v1/projects/?page=99",
        "documented",
        "BUG: GET /api/v1/projects/?page=99 -> 404 'Invalid page.'; every paginated list documents only 200.",
    ),
    Finding(
        "undocumented-400-bad-filter",
        "GET",
        "/api/v1/runs/?status=bogus",
        "documented",
        "BUG: GET /api/v1/runs/?status=bogus -> 400 validation_error; runs_list documents only 200 "
        "(same for generated_list, templates_list and other filtered lists).",
    ),
    Finding(
        "undocumented-401-on-lists",
        "GET",
        "/api/v1/projects/",
        "documented",
        "BUG: GET /api/v1/projects/ without credentials -> 401 not_authenticated; projects_list (and every list, "
        "retrieve and agents/workflows/runs operation) documents no 401.",
        anonymous=True,
    ),
    Finding(
        "undocumented-409-duplicate-agent",
        "POST",
        "/api/v1/agents/",
        "documented",
        "BUG: POST /api/v1/agents/ {name: <taken>} -> 409 name_taken; agents_create documents 201 and 400 only "
        "(connections_create has the same gap).",
        body={"name": "Builder"},
    ),
    Finding(
        "undocumented-409-last-owner",
        "DELETE",
        "/api/v1/projects/1/members/1/",
        "documented",
        "BUG: DELETE /api/v1/projects/1/members/1/ (the last owner) -> 409 last_owner; members_destroy documents "
        "204, 401, 403, 404.",
    ),
    Finding(
        "undocumented-400-login",
        "POST",
        "/api/v1/auth/token/",
        "documented",
        "BUG: POST /api/v1/auth/token/ with a wrong password -> 400 invalid_credentials; auth_token_create "
        "documents only 200 (and no 429 for its 'login' throttle).",
        body={"username": "fuzzer", "password": "wrong"},
        anonymous=True,
    ),
    Finding(
        "undocumented-502-verify",
        "POST",
        "/api/v1/connections/2/verify/",
        "documented",
        "BUG: POST /api/v1/connections/{id}/verify/ for a provider that does not answer -> 502 remote_unavailable; "
        "connections_verify documents 200, 400, 401, 404.",
        setup=(
            (
                "POST",
                "/api/v1/connections/",
                {"provider": "github", "name": "down", "token": "t0ken-down", "base_url": "http://127.0.0.1:9/api/v3"},
            ),
        ),
    ),
    # --- request schemas looser than the API (positive_data_acceptance) --------------------------------
    Finding(
        "request-schemas-allow-unknown-fields",
        "POST",
        "/api/v1/projects/",
        "schema:ProjectCreateRequest.additionalProperties",
        "BUG: POST /api/v1/projects/ {name, extra: 1} -> 400 'extra: This field is not accepted here.' "
        "(StrictInputSerializer), but no *Request component declares additionalProperties: false, so schema-valid "
        "requests are rejected; every input serializer is affected.",
        body={"name": "Extra", "extra": 1},
    ),
    Finding(
        "json-field-declared-any-parameters",
        "POST",
        "/api/v1/projects/1/generated/",
        "schema:GeneratedProjectCreateRequest.parameters",
        "BUG: POST .../generated/ {template, parameters: null} -> 400 'parameters: This field may not be null.' "
        "('Expected a JSON object.' for a list), but the schema gives `parameters` no type (any value). Same for "
        "runs' `inputs` and workflows' `inputs_schema`.",
        body={"template": "world", "parameters": None},
    ),
    Finding(
        "json-field-declared-any-run-inputs",
        "POST",
        "/api/v1/workflows/1/runs/",
        "schema:RunStartRequest.inputs",
        "BUG: POST /api/v1/workflows/1/runs/ {inputs: null} -> 400 'inputs: This field may not be null.', but the "
        "schema gives `inputs` no type (any value, null included).",
        body={"inputs": None},
    ),
    # --- response media type (content_type_conformance) -------------------------------------------------
    Finding(
        "download-content-type",
        "GET",
        "/api/v1/projects/1/generated/1/exports/1/download/",
        "content-type",
        "BUG: GET .../exports/1/download/ of a zip export -> 200 Content-Type application/zip (application/gzip "
        "for tar.gz); exports_download documents only application/octet-stream.",
    ),
]


def _send(client: Client, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    if body is None:
        return client.generic(method, path, **headers)
    return client.generic(method, path, json.dumps(body), content_type="application/json", **headers)


def _template_path(path: str) -> str:
    """The schema path of a concrete URL (digits back to the `{...}` of the matching template)."""
    concrete = path.split("?", 1)[0].strip("/").split("/")
    for template in RAW["paths"]:
        parts = template.strip("/").split("/")
        if len(parts) == len(concrete) and all(
            p == c or p.startswith("{") for p, c in zip(parts, concrete, strict=True)
        ):
            return template
    raise AssertionError(f"no schema path for {path}")


def _check(finding: Finding, response: Any) -> None:
    content = b"<stream>" if getattr(response, "streaming", False) else response.content
    observed = f"{finding.method} {finding.path} -> {response.status_code} {content[:300]!r}"
    kind, _, arg = finding.expect.partition(":")
    # a gateway status for an unreachable provider is by design; that it is undocumented is the finding
    assert response.status_code < 500 or (kind == "documented" and response.status_code in (502, 503, 504)), (
        f"server error: {observed}"
    )
    if kind == "status":
        assert response.status_code in {int(code) for code in arg.split(",")}, observed
    elif kind == "documented":
        documented = _operation(finding.method, _template_path(finding.path))["responses"]
        assert str(response.status_code) in documented, f"{observed}; documented: {sorted(documented)}"
    elif kind == "schema":
        component, _, prop = arg.partition(".")
        schema = RAW["components"]["schemas"][component]
        if prop == "additionalProperties":
            assert response.status_code == 400 and schema.get("additionalProperties") is False, (
                f"{observed}; {component}.additionalProperties = {schema.get('additionalProperties')!r}"
            )
        else:
            declared = schema["properties"][prop]
            assert response.status_code < 400 or "type" in declared, f"{observed}; {component}.{prop} = {declared}"
    elif kind == "content-type":
        documented = _operation(finding.method, _template_path(finding.path))["responses"]["200"]["content"]
        assert response["Content-Type"].split(";")[0] in documented, (
            f"{response['Content-Type']} not in {sorted(documented)}"
        )


# Every finding is fixed; each minimal request now asserts the correct answer (regression tests).
@pytest.mark.parametrize("finding", [pytest.param(f, id=f.id) for f in FINDINGS])
def test_finding(finding, fuzz_world):
    client = Client()
    headers = {} if finding.anonymous else {"HTTP_AUTHORIZATION": f"Token {fuzz_world.token}"}
    owner = {"HTTP_AUTHORIZATION": f"Token {fuzz_world.token}"}
    for method, path, body in finding.setup:
        prepared = _send(client, method, path, body, owner)
        assert prepared.status_code < 300, prepared.content
    _check(finding, _send(client, finding.method, finding.path, finding.body, headers))


def test_findings_are_listed():
    assert len({f.id for f in FINDINGS}) == len(FINDINGS)
    assert all(f.bug.startswith("BUG:") for f in FINDINGS)
