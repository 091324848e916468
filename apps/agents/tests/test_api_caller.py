"""AgentAPICaller: only schema operations, validated parameters, only the configured base."""

from __future__ import annotations

import json

import httpx
import pytest

from apps.agents.services.api_caller import AgentAPICaller, ApiCallError

pytestmark = pytest.mark.django_db

BASE = "http://kiln.test"


class Recorder:
    def __init__(self, handler):
        self.requests: list[httpx.Request] = []
        self.handler = handler

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request, len(self.requests))


def caller(handler, settings) -> tuple[AgentAPICaller, Recorder]:
    settings.KILN_INTERNAL_API_BASE = BASE
    recorder = Recorder(handler)
    return AgentAPICaller("kiln_a_canary-token-000000000000", transport=httpx.MockTransport(recorder)), recorder


def ok(request, n):
    return httpx.Response(200, json={"ok": True, "path": request.url.path})


@pytest.mark.parametrize(
    ("operation", "path_params", "query", "body", "code"),
    [
        ("users_destroy", None, None, None, "operation_not_allowed"),
        ("auth_token_create", None, None, {"username": "a", "password": "b"}, "operation_not_allowed"),
        ("projects_retrieve", {"id": "../../admin"}, None, None, "invalid_parameter"),
        ("projects_retrieve", {"id": "1/../2"}, None, None, "invalid_parameter"),
        ("projects_retrieve", {"id": "1?impersonate=2"}, None, None, "invalid_parameter"),
        ("projects_retrieve", {}, None, None, "invalid_parameter"),
        ("projects_retrieve", {"id": 1, "extra": 2}, None, None, "invalid_parameter"),
        ("projects_list", None, {"page": "abc"}, None, "invalid_parameter"),
        ("projects_list", None, {"url": "http://169.254.169.254/"}, None, "invalid_parameter"),
        ("projects_create", None, None, {"name": 5}, "invalid_body"),
        ("projects_list", None, None, {"name": "x"}, "invalid_body"),
    ],
)
def test_rejected_calls_open_no_connection(settings, operation, path_params, query, body, code):
    api, recorder = caller(ok, settings)
    with pytest.raises(ApiCallError) as info:
        api.call(operation, path_params, query, body)
    assert info.value.code == code
    assert recorder.requests == []


def test_path_values_are_percent_encoded_and_url_comes_from_settings(settings):
    api, recorder = caller(ok, settings)
    response = api.call("projects_retrieve", {"id": 12})
    assert response.status_code == 200
    assert str(recorder.requests[0].url) == f"{BASE}/api/v1/projects/12/"
    assert recorder.requests[0].headers["authorization"] == "Token kiln_a_canary-token-000000000000"
    _, url, _ = api.build_request("templates_retrieve", {"slug": "python-package"}, None, None)
    assert url == f"{BASE}/api/v1/templates/python-package/"
    with pytest.raises(ApiCallError):
        api.build_request("templates_retrieve", {"slug": "a b%2F..%2F"}, None, None)


def test_5xx_then_success_is_retried_for_safe_methods_only(settings):
    def flaky(request, n):
        return httpx.Response(503, json={"code": "x"}) if n == 1 else httpx.Response(200, json={"results": []})

    api, recorder = caller(flaky, settings)
    assert api.call("projects_list").status_code == 200
    assert len(recorder.requests) == 2
    api, recorder = caller(flaky, settings)
    assert api.call("projects_create", body={"name": "x"}).status_code == 503
    assert len(recorder.requests) == 1


def test_timeout_and_oversized_response_and_redirect(settings):
    def slow(request, n):
        raise httpx.ReadTimeout("slow", request=request)

    api, recorder = caller(slow, settings)
    with pytest.raises(ApiCallError) as info:
        api.call("projects_list")
    assert info.value.code == "upstream_timeout"
    assert all(str(r.url).startswith(BASE) for r in recorder.requests)

    settings.KILN_API_CALLER_MAX_BYTES = 1000
    api, _ = caller(
        lambda r, n: httpx.Response(
            200, content=json.dumps({"x": "y" * 5000}).encode(), headers={"content-type": "application/json"}
        ),
        settings,
    )
    with pytest.raises(ApiCallError) as info:
        api.call("projects_list")
    assert info.value.code == "response_too_large"

    api, recorder = caller(lambda r, n: httpx.Response(302, headers={"location": "http://127.0.0.1:6379/"}), settings)
    with pytest.raises(ApiCallError) as info:
        api.call("projects_list")
    assert info.value.code == "unexpected_redirect"
    assert len(recorder.requests) == 1
