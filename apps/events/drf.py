"""What the API's viewsets need to serve a job's event stream and logs."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer


class EventStreamNegotiation(BaseContentNegotiation):
    """The stream writes `text/event-stream` itself; errors before it starts (404, 401) are JSON.

    DRF's default negotiation would answer `Accept: text/event-stream` (what EventSource
    sends) with 406, since no renderer produces it.
    """

    def select_parser(self, request: Any, parsers: Any) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Any, renderers: Any, format_suffix: Any = None) -> tuple[Any, str]:
        renderer = JSONRenderer()
        return renderer, renderer.media_type


STREAM_ACTION: dict[str, Any] = {
    "detail": True,
    "methods": ["get"],
    "renderer_classes": [JSONRenderer],
    "content_negotiation_class": EventStreamNegotiation,
}

# One server-sent event, as OpenAPI 3.2 and Schemathesis read `text/event-stream` bodies.
EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "id": {"type": "string", "description": "resume after this event with the Last-Event-ID header"},
        "event": {"type": "string", "enum": ["status", "progress", "log"]},
        "data": {
            "type": "string",
            "description": "JSON: status {status, error}; progress {done, total}; log {line}",
        },
        "retry": {"type": "integer"},
    },
}

STREAM_RESPONSES: dict[Any, Any] = {
    (200, "text/event-stream"): OpenApiResponse(
        EVENT_SCHEMA,
        description=(
            "Server-sent events: `event: status|progress|log`, JSON `data`, `id` for `Last-Event-ID` "
            "(or `?last_event_id=`). The stream ends when the job finishes or after KILN_EVENTS_MAX_SECONDS; "
            "reconnect with the last id to resume."
        ),
    ),
    204: OpenApiResponse(description="the job is finished and nothing is left after Last-Event-ID"),
}


class JobLogsSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    logs = serializers.ListField(child=serializers.CharField())
