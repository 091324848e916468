"""Kiln's one error hierarchy and the DRF exception handler that renders it.

Every 4xx/5xx body is `{"message", "code", "extra"}`: a human-readable message, a
stable machine-readable code and optional details (field errors, hints). Services
raise `ApplicationError` subclasses; anything unexpected becomes a 500 with a generic
message while the traceback goes to the log only.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.exceptions import ValidationError as DjangoValidationError

from core.redaction import redact

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse, JsonResponse
    from rest_framework.response import Response

logger = logging.getLogger("kiln.errors")


class ApplicationError(Exception):
    """An error a client can act on. Subclasses fix the HTTP status and default code."""

    status_code = 400
    default_code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.extra = extra or {}
        if status_code is not None:
            self.status_code = status_code

    def as_dict(self) -> dict[str, Any]:
        return {"message": redact(self.message), "code": self.code, "extra": self.extra}


class ValidationFailed(ApplicationError):
    status_code = 400
    default_code = "validation_error"


class UnsafeInput(ApplicationError):
    status_code = 400
    default_code = "unsafe_path"


class NotFound(ApplicationError):
    status_code = 404
    default_code = "not_found"


class PermissionDenied(ApplicationError):
    status_code = 403
    default_code = "permission_denied"


class Conflict(ApplicationError):
    status_code = 409
    default_code = "conflict"


class Gone(ApplicationError):
    status_code = 410
    default_code = "gone"


class LimitExceeded(ApplicationError):
    status_code = 429
    default_code = "limit_exceeded"

    def __init__(self, message: str, *, retry_after: int = 30, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
        self.extra.setdefault("retry_after", retry_after)


class JobError(ApplicationError):
    """A failure inside a background job; stored on the job row as its `error`."""

    status_code = 422
    default_code = "job_failed"


CSRF_FAILED_CODE = "csrf_failed"
CSRF_FAILED_MESSAGE = (
    "CSRF verification failed: a request authenticated by the session cookie must carry the CSRF token "
    "(X-CSRFToken header or csrfmiddlewaretoken field). Scripts and agents should authenticate with "
    "their API token in the Authorization header instead."
)

_DRF_CODE_MAP = {
    "throttled": "rate_limited",
    "invalid": "validation_error",
    "parse_error": "parse_error",
}


def _field_errors(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {str(key): _field_errors(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_field_errors(item) for item in detail]
    return str(detail)


def _first_message(detail: Any, prefix: str = "") -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            label = key if key != "non_field_errors" else ""
            return _first_message(value, f"{prefix}.{label}" if prefix and label else (label or prefix))
        return ""
    if isinstance(detail, list):
        return _first_message(detail[0], prefix) if detail else ""
    return f"{prefix}: {detail}" if prefix else str(detail)


def error_body(message: str, code: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"message": redact(message), "code": code, "extra": extra or {}}


def validation_error_body(detail: Any) -> dict[str, Any]:
    """`{message, code: validation_error, extra: {fields}}` for a DRF ValidationError's detail.

    The REST handler below and the agent tools (which use the same input serializers) render
    serializer errors with it, so both name the fields the same way.
    """
    fields = _field_errors(detail)
    first = _first_message(detail)
    message = f"Invalid input: {first}" if first else "Invalid input."
    extra = {"fields": fields if isinstance(fields, dict) else {"non_field_errors": fields}}
    return error_body(message, "validation_error", extra)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    # DRF and django.http are imported here, not at module level: the error classes above are
    # used by every process (CLI, workers, compile helpers), the handlers only by the web.
    from django.http import Http404
    from rest_framework import exceptions as drf_exceptions
    from rest_framework.response import Response
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, ApplicationError):
        headers = {}
        if isinstance(exc, LimitExceeded):
            headers["Retry-After"] = str(exc.retry_after)
        return Response(exc.as_dict(), status=exc.status_code, headers=headers)
    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body(
                "The request body is too large.", "payload_too_large", {"limit": settings.DATA_UPLOAD_MAX_MEMORY_SIZE}
            ),
            status=413,
        )
    if isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        # Django's multipart/form parser refuses more fields than DATA_UPLOAD_MAX_NUMBER_FIELDS (a list
        # sent as repeated form fields) while DRF parses the body: the client's input, not a server error
        return Response(
            error_body(
                "The request has too many form fields or files.",
                "too_many_fields",
                {"limit": settings.DATA_UPLOAD_MAX_NUMBER_FIELDS},
            ),
            status=400,
        )
    if isinstance(exc, DjangoValidationError):
        exc = drf_exceptions.ValidationError(detail=exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    elif isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        view = context.get("view")
        logger.exception("Unhandled error in %s", type(view).__name__ if view else "API view", exc_info=exc)
        return Response(error_body("Internal server error. The error has been logged.", "server_error"), status=500)

    assert isinstance(exc, drf_exceptions.APIException)
    if isinstance(exc, drf_exceptions.ValidationError):
        response.data = validation_error_body(exc.detail)
        return response

    codes = exc.get_codes()
    code = codes if isinstance(codes, str) else exc.default_code
    code = _DRF_CODE_MAP.get(str(code), str(code))
    hints: dict[str, Any] = {}
    wait = getattr(exc, "wait", None)
    if isinstance(exc, drf_exceptions.Throttled) and wait is not None:
        hints["retry_after"] = int(wait) + 1
    detail = exc.detail
    message = str(detail) if not isinstance(detail, (dict, list)) else _first_message(detail)
    response.data = error_body(message, code, hints)
    return response


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    from django.http import JsonResponse

    return JsonResponse(error_body("Not found.", "not_found"), status=404)


def json_server_error(request: HttpRequest) -> JsonResponse:
    from django.http import JsonResponse

    return JsonResponse(error_body("Internal server error. The error has been logged.", "server_error"), status=500)


def json_bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    from django.http import JsonResponse

    return JsonResponse(error_body("Bad request.", "bad_request"), status=400)


def json_permission_denied(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    from django.http import JsonResponse

    return JsonResponse(error_body("Permission denied.", "permission_denied"), status=403)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a JSON 403 `csrf_failed`; the admin keeps Django's HTML page.

    Django calls it for views that are not DRF's (DRF checks CSRF itself, for session-authenticated
    requests only, and raises `csrf_failed` through `KilnSessionAuthentication`).
    """
    from django.http import JsonResponse
    from django.urls import NoReverseMatch, reverse
    from django.views.csrf import csrf_failure as django_csrf_failure

    try:
        admin_prefix = reverse("admin:index")
    except NoReverseMatch:
        admin_prefix = None
    if admin_prefix and request.path.startswith(admin_prefix):
        return django_csrf_failure(request, reason)
    return JsonResponse(error_body(CSRF_FAILED_MESSAGE, CSRF_FAILED_CODE, {"reason": reason}), status=403)
