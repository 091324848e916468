"""`GET /healthz`: is the database, the broker and the shared storage usable?"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET
from kombu import Connection


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def _broker() -> str:
    from core.celery import app

    if app.conf.task_always_eager:
        return "ok"
    with Connection(
        settings.CELERY_BROKER_URL, connect_timeout=2, transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS
    ) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return "ok"


def _storage() -> str:
    root = Path(settings.GENERATED_PROJECTS_DIR)
    root.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".healthz-", dir=root)
    os.close(fd)
    os.unlink(name)
    return "ok"


CHECKS = {"database": _database, "broker": _broker, "storage": _storage}


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    body: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            body[name] = check()
        except Exception as exc:  # every failure is reported by name, never raised
            body[name] = f"down: {type(exc).__name__}"
    healthy = all(value == "ok" for value in body.values())
    if not healthy:
        body["message"] = "Unavailable: " + ", ".join(k for k, v in body.items() if v != "ok")
        body["code"] = "unhealthy"
    return JsonResponse(body, status=200 if healthy else 503)
