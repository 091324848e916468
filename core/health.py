"""`GET /healthz`: is the database, the broker and the storage (blob store and scratch folder) usable?

A plain Django view (no auth, no throttling: load balancers call it), so it answers the
API's error shape itself: another method is a JSON 405, and it is exempt from CSRF (it
changes nothing), so a POST gets that 405 rather than Django's CSRF page.
"""

from __future__ import annotations

import os
import tempfile

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from kombu import Connection

from core.exceptions import error_body


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
    """The configured blob store (a folder written and read, or the bucket reached) and the scratch folder."""
    from apps.storage.blobs import blob_store, scratch_root

    blob_store().check()
    root = scratch_root()
    root.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".healthz-", dir=root)
    os.close(fd)
    os.unlink(name)
    return "ok"


CHECKS = {"database": _database, "broker": _broker, "storage": _storage}
ALLOWED_METHODS = ("GET", "HEAD")


@csrf_exempt
def healthz(request: HttpRequest) -> JsonResponse:
    if request.method not in ALLOWED_METHODS:
        response = JsonResponse(
            error_body(f'Method "{request.method}" not allowed; use GET.', "method_not_allowed"), status=405
        )
        response["Allow"] = ", ".join(ALLOWED_METHODS)
        return response
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
