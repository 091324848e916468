"""Every operation of the schema refuses anonymous and forged callers with 401 (B1 #7).

Generated from the same in-process schema the fuzzer uses, so a new operation is covered the
day it appears. Path parameters are 1 (an id that exists in the fuzz world would not matter:
authentication runs before any lookup). `auth_token_create` is the one public operation.
"""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from tests.fuzz.schema_loader import OPERATIONS

pytestmark = pytest.mark.django_db

PUBLIC = {"auth_token_create"}
PROTECTED = [(method, path, op["operationId"]) for method, path, op in OPERATIONS if op["operationId"] not in PUBLIC]
CREDENTIALS = [
    pytest.param(None, id="no-header"),
    pytest.param("Token not-a-token", id="garbage"),
    pytest.param("Token kiln_u_" + "x" * 43, id="well-formed-unknown"),
    pytest.param("Bearer", id="scheme-only"),
    pytest.param("Basic YWxpY2U6cGFzc3dvcmQ=", id="basic-auth"),
]


def _url(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_every_operation_is_listed():
    assert len(PROTECTED) >= 50
    assert {op["operationId"] for _, _, op in OPERATIONS} >= PUBLIC


@pytest.mark.parametrize("authorization", CREDENTIALS)
@pytest.mark.parametrize(("method", "path", "operation_id"), PROTECTED, ids=[p[2] for p in PROTECTED])
def test_unauthenticated_calls_get_401(method, path, operation_id, authorization):
    client = Client()
    extra = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    body = json.dumps({}) if method in ("POST", "PATCH", "PUT") else None
    if body is None:
        response = client.generic(method, _url(path), **extra)
    else:
        response = client.generic(method, _url(path), body, content_type="application/json", **extra)
    assert response.status_code == 401, (
        f"{method} {path} with {authorization!r}: {response.status_code} {response.content[:300]!r}"
    )
    payload = response.json()
    assert payload["code"] in ("not_authenticated", "authentication_failed"), payload
    assert payload["message"], payload
    assert response.get("WWW-Authenticate"), "401 without a WWW-Authenticate challenge"
