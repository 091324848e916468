"""Per-request and per-job context (request id, actor, job) for logs and audit events."""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("kiln_request_id", default="-")
actor_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("kiln_actor_id", default=None)
job: contextvars.ContextVar[str] = contextvars.ContextVar("kiln_job", default="-")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestContextMiddleware:
    """Gives each request an id (from a sane `X-Request-ID`, or a new one) and echoes it back."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        rid = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id.set(rid)
        actor_token = actor_id.set(None)
        try:
            user = getattr(request, "user", None)
            if user is not None and user.is_authenticated:
                actor_id.set(user.pk)
            response = self.get_response(request)
        finally:
            request_id.reset(token)
            actor_id.reset(actor_token)
        response["X-Request-ID"] = rid
        return response


def set_actor(user: Any) -> None:
    if user is not None and getattr(user, "is_authenticated", False):
        actor_id.set(user.pk)


class ContextFilter(logging.Filter):
    """Adds request_id and job to every log record (used by both formatters)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.job = job.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; message and fields are escaped (no log injection)."""

    def format(self, record: logging.LogRecord) -> str:
        import json

        from core.redaction import redact

        payload = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "request_id": getattr(record, "request_id", "-"),
            "job": getattr(record, "job", "-"),
        }
        if record.exc_info:
            payload["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(payload, ensure_ascii=True)
