"""The OpenAPI schema: every operation has an operationId and a summary."""

from __future__ import annotations

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db

METHODS = {"get", "post", "put", "patch", "delete"}


def test_every_operation_has_an_id_and_summary(client):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    operations = [
        (path, method, op) for path, item in schema["paths"].items() for method, op in item.items() if method in METHODS
    ]
    assert len(operations) >= 15
    ids = [op.get("operationId") for _, _, op in operations]
    assert all(ids), [f"{m.upper()} {p}" for p, m, op in operations if not op.get("operationId")]
    assert len(ids) == len(set(ids))
    missing = [f"{m.upper()} {p}" for p, m, op in operations if not op.get("summary")]
    assert missing == []
    assert "/api/v1/projects/{project_id}/generated/" in schema["paths"]


def test_docs_page_renders(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


def test_token_authentication_is_documented_on_every_protected_operation(client):
    schema = client.get("/api/schema/?format=json").json()
    assert schema["components"]["securitySchemes"]["tokenAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "`Token <token>` — a user token from POST /api/v1/auth/token/ or an agent token.",
    }
    create = schema["paths"]["/api/v1/projects/"]["post"]
    assert {"tokenAuth": []} in create["security"]


def test_schema_generation_has_no_warnings(tmp_path):
    # drf-spectacular logs a warning for every path parameter whose type it has to guess
    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(tmp_path / "schema.yaml"))
