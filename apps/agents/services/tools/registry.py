"""The agent tool registry: Kiln's curated tools, defined once.

Each tool is one `AgentTool`: a name a model can choose by, a description written for it,
the JSON Schema of its arguments, and a handler that is a thin call into the same selectors
and services the REST view of the operation it wraps (`operation_id`) uses, so permissions,
validation and error codes are the REST API's. Its output schema is that operation's
response schema, taken from Kiln's own OpenAPI document (`api_discovery`), so a tool's
structured result is the JSON the REST answer carries (list tools: its `results` items).

Three things read this registry and nothing else: the MCP endpoint (`apps.agents.mcp_server`),
the discovery document (`GET /agents/discovery/`, its `tools`) and the function-calling
definitions (`GET /agents/discovery/tools/`). Adding a tool is one `@register_tool` entry;
`apps/agents/tests/test_tool_registry.py` fails when a tool's arguments disagree with the
REST operation it wraps.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from core.exceptions import ApplicationError, ValidationFailed, validation_error_body
from core.redaction import redact
from core.values import MESSAGES, unstorable_reason

logger = logging.getLogger("kiln.agents.tools")

MAX_PAGE_SIZE = 100
PAGE_ARGUMENTS: dict[str, Any] = {
    "page": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 1, "description": "Page number, from 1."},
    "page_size": {
        "type": "integer",
        "minimum": 1,
        "maximum": MAX_PAGE_SIZE,
        "default": 20,
        "description": f"Items per page (at most {MAX_PAGE_SIZE}).",
    },
}


@dataclass
class ToolCall:
    """What a handler gets: the caller's identity and its validated arguments.

    `progress(done, total, message)` reports progress to a client that asked for it (an MCP
    progress token); elsewhere it does nothing. Handlers never see a request or a token.
    """

    actor: Any
    arguments: dict[str, Any]
    progress: Callable[[float, float | None, str | None], None] = lambda done, total, message: None
    wants_progress: bool = False

    def __getitem__(self, name: str) -> Any:
        return self.arguments[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.arguments.get(name, default)


Handler = Callable[[ToolCall], Any]


@dataclass(frozen=True)
class AgentTool:
    name: str
    title: str
    description: str
    input_schema: dict[str, Any]
    handler: Handler
    # The REST operation this tool stands for, and how its arguments map onto it:
    # tool argument -> path parameter; tool argument -> query parameter; the other
    # arguments are request-body fields (`fixed_body` adds fields the tool always sends).
    operation_id: str
    path_arguments: dict[str, str] = field(default_factory=dict)
    query_arguments: dict[str, str] = field(default_factory=dict)
    fixed_body: dict[str, Any] = field(default_factory=dict)
    # REST path parameters the tool looks up from other arguments (read_file: `id` from `path`).
    looked_up: dict[str, str] = field(default_factory=dict)
    # Which 2xx answer of the operation the result is; "list" wraps its `results` items.
    response_status: str = "200"
    output: str = "object"  # "object": the REST body; "list": a page of REST results; "own": output_schema
    own_output_schema: dict[str, Any] | None = None
    read_only: bool = True
    destructive: bool = False
    idempotent: bool = True
    # A long job: the result carries the job's id at once (see `follow_job`).
    starts_job: bool = False

    @property
    def body_arguments(self) -> list[str]:
        taken = {*self.path_arguments, *self.query_arguments, *self.looked_up.values()}
        return [name for name in self.input_schema.get("properties", {}) if name not in taken]

    def output_schema(self) -> dict[str, Any]:
        if self.output == "own":
            assert self.own_output_schema is not None
            return self.own_output_schema
        from apps.agents.services.api_discovery import registry

        operation = registry()[self.operation_id]
        schema = operation.responses.get(self.response_status)
        if schema is None:
            raise RuntimeError(f"tool {self.name}: {self.operation_id} has no JSON {self.response_status} answer")
        if self.output == "list":
            return {
                "type": "object",
                "required": ["count", "page", "next_page", "results"],
                "properties": {
                    "count": {"type": "integer", "description": "Items in all pages."},
                    "page": {"type": "integer"},
                    "next_page": {"type": ["integer", "null"], "description": "The next page's number, or null."},
                    "results": copy.deepcopy(schema["properties"]["results"]),
                },
            }
        return copy.deepcopy(schema)

    def annotations(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "readOnlyHint": self.read_only,
            "destructiveHint": self.destructive,
            "idempotentHint": self.idempotent,
            "openWorldHint": self.name == "export_generation",
        }


TOOLS: dict[str, AgentTool] = {}


def register_tool(**spec: Any) -> Callable[[Handler], Handler]:
    """`@register_tool(name=..., title=..., description=..., input_schema=..., operation_id=..., ...)`."""

    def decorator(handler: Handler) -> Handler:
        name = spec["name"]
        if name in TOOLS:
            raise RuntimeError(f"agent tool '{name}' is registered twice")
        schema = spec["input_schema"]
        Draft202012Validator.check_schema(schema)
        if schema.get("type") != "object" or schema.get("additionalProperties") is not False:
            raise RuntimeError(f"agent tool '{name}': arguments must be a closed object schema")
        TOOLS[name] = AgentTool(handler=handler, **spec)
        return handler

    return decorator


def tools() -> dict[str, AgentTool]:
    from apps.agents.services import tools as _modules  # noqa: F401 - fills the registry

    return TOOLS


# --- calling a tool --------------------------------------------------------------------------


@dataclass
class ToolOutcome:
    """A tool's structured result, or its error `{code, message, extra}` (`is_error`)."""

    structured: dict[str, Any]
    is_error: bool = False


def _field_of(error: ValidationError) -> str:
    path = [str(part) for part in error.absolute_path]
    if error.validator == "required" and "'" in error.message:
        path.append(error.message.split("'")[1])
    return ".".join(path)


def argument_errors(schema: dict[str, Any], arguments: Any) -> dict[str, list[str]]:
    """Field → messages for arguments that break the tool's schema (unknown fields named too)."""
    fields: dict[str, list[str]] = {}
    for error in sorted(Draft202012Validator(schema).iter_errors(arguments), key=lambda e: list(e.absolute_path)):
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = set(error.schema.get("properties", {}))
            prefix = ".".join(str(p) for p in error.absolute_path)
            for extra in sorted(set(error.instance) - known):
                key = f"{prefix}.{extra}" if prefix else str(extra)
                fields.setdefault(key, []).append("Unknown argument.")
            continue
        fields.setdefault(_field_of(error) or "arguments", []).append(error.message)
    return fields


def with_defaults(schema: dict[str, Any], arguments: dict[str, Any]) -> dict[str, Any]:
    values = dict(arguments)
    for name, prop in schema.get("properties", {}).items():
        if name not in values and isinstance(prop, dict) and "default" in prop:
            values[name] = copy.deepcopy(prop["default"])
    return values


def _error(exc: ApplicationError) -> ToolOutcome:
    body = exc.as_dict()
    return ToolOutcome({"code": body["code"], "message": body["message"], "extra": body["extra"]}, is_error=True)


def call_tool(tool: AgentTool, *, actor: Any, arguments: Any, call: ToolCall | None = None) -> ToolOutcome:
    """Validate `arguments` against the tool's schema, run its handler as `actor`.

    Kiln errors (and DRF validation errors of the input serializers the handlers share with
    the REST views) become `{code, message, extra}` error outcomes, as the REST API renders
    them; anything unexpected is logged and reported as `server_error`, never raised.
    """
    from rest_framework.exceptions import ValidationError as DRFValidationError

    if arguments is None:
        arguments = {}
    unstorable = unstorable_reason(arguments)
    if unstorable is not None:  # what the REST parsers refuse (a lone surrogate, NaN, depth > 64): the same code
        return _error(ValidationFailed(MESSAGES[unstorable], code="parse_error", extra={"reason": unstorable}))
    fields = argument_errors(tool.input_schema, arguments)
    if fields:
        first = next(iter(fields))
        return _error(
            ValidationFailed(
                f"Invalid arguments for {tool.name}: {first}: {fields[first][0]}", extra={"fields": fields}
            )
        )
    call = call or ToolCall(actor=actor, arguments={})
    call.actor = actor
    call.arguments = with_defaults(tool.input_schema, arguments)
    try:
        result = tool.handler(call)
    except ApplicationError as exc:
        return _error(exc)
    except DRFValidationError as exc:
        body = validation_error_body(exc.detail)
        return ToolOutcome(body, is_error=True)
    except Exception:
        logger.exception("agent tool %s failed", tool.name)
        return ToolOutcome(
            {"code": "server_error", "message": "Internal error. The error has been logged.", "extra": {}},
            is_error=True,
        )
    return ToolOutcome(result)


def error_text(outcome: ToolOutcome) -> str:
    return redact(f"{outcome.structured['code']}: {outcome.structured['message']}")


# --- helpers for handlers --------------------------------------------------------------------


def page_of(queryset: QuerySet[Any], call: ToolCall, serialize: Callable[[list[Any]], Any]) -> dict[str, Any]:
    """One page of `queryset`, shaped like the list tools' output schema."""
    page, size = int(call.get("page", 1)), min(int(call.get("page_size", 20)), MAX_PAGE_SIZE)
    count = queryset.count()
    start = (page - 1) * size
    rows = list(queryset[start : start + size])
    return {
        "count": count,
        "page": page,
        "next_page": page + 1 if start + size < count else None,
        "results": serialize(rows),
    }


def iter_tools() -> Iterator[AgentTool]:
    yield from tools().values()
