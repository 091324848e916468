"""AgentAPICaller: the one door for agents' HTTP calls to Kiln's own API.

A call names an operation id from Kiln's OpenAPI schema (nothing else is reachable),
its parameters are validated against the schema, path values are percent-encoded and
the URL is built from settings — never from agent input. The request carries the
agent's (or the run's user's) own token, so Kiln's permission rules apply exactly as
to that identity. No redirects are followed; connect/read timeouts and a response size
cap bound every call; only safe methods are retried, on 429/5xx and timeouts.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from django.conf import settings
from jsonschema import Draft202012Validator

from apps.agents.services.api_discovery import Operation, registry
from core.exceptions import ApplicationError
from core.redaction import redact

logger = logging.getLogger("kiln.api_caller")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
INTERNAL_BASE = "http://localhost"  # in-process only; localhost is an allowed host by default


class ApiCallError(ApplicationError):
    status_code = 400
    default_code = "api_call_failed"


@dataclass
class ApiResponse:
    status_code: int
    body: Any
    headers: dict[str, str]


def _validate(schema: dict[str, Any], value: Any, *, field: str) -> None:
    errors = list(Draft202012Validator(schema).iter_errors(value))
    if errors:
        error = errors[0]
        where = ".".join([field, *(str(p) for p in error.absolute_path)])
        raise ApiCallError(
            f"Invalid parameter {where}: {error.message}", code="invalid_parameter", extra={"field": where}
        )


def _coerce(schema: dict[str, Any], value: Any, *, field: str) -> Any:
    """Path and query values arrive as JSON values or strings; integers must be integers."""
    kind = schema.get("type")
    if kind == "integer" and isinstance(value, str):
        if not value.isdigit():
            raise ApiCallError(
                f"Invalid parameter {field}: expected an integer.", code="invalid_parameter", extra={"field": field}
            )
        return int(value)
    if kind == "string" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if kind == "boolean" and isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return value


def _in_process_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Kiln's WSGI app for a nested in-process request.

    The caller already holds a database connection (it runs inside a task or a request);
    the nested request must not close it at its end, as Django does for a real request,
    so the connection-closing signal handlers are held back meanwhile (Django's test
    client does the same).
    """
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    from core.wsgi import application

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        response = application(environ, start_response)
        try:
            return [b"".join(response)]
        finally:
            close = getattr(response, "close", None)
            if close is not None:
                close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def default_transport() -> httpx.BaseTransport | None:
    """In-process WSGI when no internal base URL is configured (the embedded default)."""
    if settings.KILN_INTERNAL_API_BASE:
        return None
    return httpx.WSGITransport(app=_in_process_app)


class AgentAPICaller:
    def __init__(
        self,
        token: str,
        *,
        base_url: str | None = None,
        transport: httpx.BaseTransport | None = None,
        operations: dict[str, Operation] | None = None,
    ) -> None:
        self.token = token
        self.base_url = (base_url or settings.KILN_INTERNAL_API_BASE or INTERNAL_BASE).rstrip("/")
        self.transport = transport if transport is not None else default_transport()
        self.operations = operations if operations is not None else registry()

    def build_request(
        self, operation_id: str, path_params: dict[str, Any] | None, query: dict[str, Any] | None, body: Any
    ) -> tuple[Operation, str, Any]:
        op = self.operations.get(operation_id) if isinstance(operation_id, str) else None
        if op is None:
            raise ApiCallError(
                f"'{operation_id}' is not an operation of Kiln's API (see /api/v1/agents/discovery/).",
                code="operation_not_allowed",
            )
        path_params = dict(path_params or {})
        query = dict(query or {})
        path = op.path
        declared_path = {p.name: p for p in op.parameters if p.location == "path"}
        declared_query = {p.name: p for p in op.parameters if p.location == "query"}
        unknown = sorted((set(path_params) - set(declared_path)) | (set(query) - set(declared_query)))
        if unknown:
            raise ApiCallError(
                f"Unknown parameters for {operation_id}: {', '.join(unknown)}.",
                code="invalid_parameter",
                extra={"field": unknown[0]},
            )
        for name, param in declared_path.items():
            if name not in path_params:
                raise ApiCallError(f"Missing path parameter '{name}'.", code="invalid_parameter", extra={"field": name})
            value = _coerce(param.schema, path_params[name], field=name)
            _validate(param.schema, value, field=name)
            if not isinstance(value, (str, int)) or isinstance(value, bool):
                raise ApiCallError(f"Path parameter '{name}' must be a string or integer.", code="invalid_parameter")
            text = str(value)
            if text in ("", ".", "..") or "/" in text or "\\" in text:
                raise ApiCallError(
                    f"Path parameter '{name}' is not allowed: {text!r}.",
                    code="invalid_parameter",
                    extra={"field": name},
                )
            path = path.replace("{" + name + "}", quote(text, safe=""))
        clean_query = {}
        for name, value in query.items():
            param = declared_query[name]
            value = _coerce(param.schema, value, field=name)
            _validate(param.schema, value, field=name)
            clean_query[name] = value
        if body is not None:
            if op.request_schema is None or op.request_content_type != "application/json":
                raise ApiCallError(f"{operation_id} takes no JSON body.", code="invalid_body")
            errors = list(Draft202012Validator(op.request_schema).iter_errors(body))
            if errors:
                where = ".".join(["body", *(str(p) for p in errors[0].absolute_path)])
                raise ApiCallError(
                    f"Invalid body {where}: {errors[0].message}", code="invalid_body", extra={"field": where}
                )
        url = self.base_url + path
        if clean_query:
            url += "?" + urlencode(
                {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in clean_query.items()}
            )
        return op, url, body

    def call(
        self,
        operation_id: str,
        path_params: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
        body: Any = None,
    ) -> ApiResponse:
        op, url, payload = self.build_request(operation_id, path_params, query, body)
        method = op.method.upper()
        attempts = settings.KILN_API_CALLER_RETRIES + 1 if method in SAFE_METHODS else 1
        timeout = httpx.Timeout(settings.KILN_API_CALLER_READ_TIMEOUT, connect=settings.KILN_API_CALLER_CONNECT_TIMEOUT)
        headers = {"Authorization": f"Token {self.token}", "Accept": "application/json"}
        with httpx.Client(transport=self.transport, follow_redirects=False, timeout=timeout, trust_env=False) as client:
            for attempt in range(1, attempts + 1):
                try:
                    response = self._send(client, method, url, headers, payload)
                except httpx.TimeoutException:
                    if attempt < attempts:
                        time.sleep(min(0.2 * 2**attempt, 2))
                        continue
                    raise ApiCallError(f"{operation_id} timed out.", code="upstream_timeout", status_code=504) from None
                except httpx.TransportError as exc:
                    if attempt < attempts:
                        time.sleep(min(0.2 * 2**attempt, 2))
                        continue
                    raise ApiCallError(
                        f"{operation_id} could not reach the API: {type(exc).__name__}",
                        code="upstream_unavailable",
                        status_code=502,
                    ) from None
                if (response.status_code == 429 or response.status_code >= 500) and attempt < attempts:
                    time.sleep(min(0.2 * 2**attempt, 2))
                    continue
                return response
        raise AssertionError("unreachable")

    def _send(self, client: httpx.Client, method: str, url: str, headers: dict[str, str], payload: Any) -> ApiResponse:
        limit = settings.KILN_API_CALLER_MAX_BYTES
        with client.stream(method, url, headers=headers, json=payload) as response:
            if 300 <= response.status_code < 400:
                raise ApiCallError(
                    "The API answered with a redirect, which the caller does not follow.",
                    code="unexpected_redirect",
                    status_code=502,
                )
            chunks = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise ApiCallError(
                        f"The response is larger than {limit} bytes.", code="response_too_large", status_code=502
                    )
                chunks.append(chunk)
            raw = b"".join(chunks)
            content_type = response.headers.get("content-type", "")
            parsed: Any
            if "json" in content_type:
                try:
                    parsed = json.loads(raw)
                except ValueError:
                    parsed = redact(raw.decode(errors="replace"))
            else:
                parsed = redact(raw.decode(errors="replace"))[:10000]
            return ApiResponse(status_code=response.status_code, body=parsed, headers=dict(response.headers))
