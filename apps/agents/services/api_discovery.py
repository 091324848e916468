"""The endpoint registry, built from Kiln's own OpenAPI schema (drf-spectacular, in-process).

Each operation has its id, method, path, summary, parameters and request/response JSON
Schemas with every `$ref` resolved and OpenAPI's `nullable` turned into JSON Schema. The
registry is built once per process (per deploy) and serves discovery, function-calling
tool definitions, Markdown docs and the agents' API caller.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from typing import Any

METHODS = ("get", "post", "put", "patch", "delete")
# Operations agents never reach through the caller: minting credentials for themselves.
EXCLUDED_OPERATIONS = frozenset({"auth_token_create"})


@dataclass(frozen=True)
class Parameter:
    name: str
    location: str
    required: bool
    schema: dict[str, Any]
    description: str = ""


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    path: str
    summary: str
    description: str
    tags: tuple[str, ...]
    parameters: tuple[Parameter, ...]
    request_schema: dict[str, Any] | None
    request_content_type: str | None
    response_schema: dict[str, Any] | None
    extra: dict[str, Any] = field(default_factory=dict)
    # every 2xx answer with a JSON body, by status ("200", "202", ...)
    responses: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "operation_id": self.operation_id,
            "method": self.method.upper(),
            "path": self.path,
            "summary": self.summary,
            "tags": list(self.tags),
            "parameters": [
                {
                    "name": p.name,
                    "in": p.location,
                    "required": p.required,
                    "schema": p.schema,
                    "description": p.description,
                }
                for p in self.parameters
            ],
            "request_schema": self.request_schema,
            "request_content_type": self.request_content_type,
            "response_schema": self.response_schema,
        }


def _openapi_to_json_schema(node: Any, components: dict[str, Any], depth: int = 0) -> Any:
    if depth > 25:
        return {}
    if isinstance(node, list):
        return [_openapi_to_json_schema(item, components, depth + 1) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return _openapi_to_json_schema(copy.deepcopy(components.get(name, {})), components, depth + 1)
    out = {
        key: _openapi_to_json_schema(value, components, depth + 1)
        for key, value in node.items()
        if key not in ("nullable", "readOnly", "writeOnly")
    }
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"] if isinstance(out["type"], str) else [*out["type"], "null"]
        elif "enum" not in out:
            out = {"anyOf": [out, {"type": "null"}]}
    if node.get("readOnly"):
        out["readOnly"] = True
    if node.get("format") == "binary":
        out.pop("format", None)
    return out


def _strip_read_only(schema: Any) -> Any:
    """Request bodies never need server-filled (read-only) fields."""
    if isinstance(schema, dict):
        props = schema.get("properties")
        if isinstance(props, dict):
            kept = {k: _strip_read_only(v) for k, v in props.items() if not (isinstance(v, dict) and v.get("readOnly"))}
            schema = {**schema, "properties": kept}
            if "required" in schema:
                schema["required"] = [r for r in schema["required"] if r in kept]
        return {k: (_strip_read_only(v) if k != "properties" else v) for k, v in schema.items()}
    return schema


def build_operations(schema: dict[str, Any]) -> list[Operation]:
    components = schema.get("components", {}).get("schemas", {})
    operations = []
    for path, item in sorted(schema.get("paths", {}).items()):
        shared = item.get("parameters", [])
        for method in METHODS:
            op = item.get(method)
            if not op or op.get("operationId") in EXCLUDED_OPERATIONS:
                continue
            params = []
            for raw in [*shared, *op.get("parameters", [])]:
                param = _openapi_to_json_schema(raw, components)
                if param.get("in") not in ("path", "query"):
                    continue
                params.append(
                    Parameter(
                        name=param["name"],
                        location=param["in"],
                        required=bool(param.get("required")),
                        schema=param.get("schema", {"type": "string"}),
                        description=param.get("description", ""),
                    )
                )
            request_schema = None
            content_type = None
            content = op.get("requestBody", {}).get("content", {})
            for candidate in ("application/json", "multipart/form-data"):
                if candidate in content:
                    content_type = candidate
                    request_schema = _strip_read_only(
                        _openapi_to_json_schema(content[candidate].get("schema", {}), components)
                    )
                    break
            response_schema = None
            responses: dict[str, dict[str, Any]] = {}
            for status in sorted(op.get("responses", {}), key=str):
                if str(status).startswith("2"):
                    body = op["responses"][status].get("content", {}).get("application/json")
                    if body:
                        responses[str(status)] = _openapi_to_json_schema(body.get("schema", {}), components)
            first_2xx = next((str(s) for s in sorted(op.get("responses", {}), key=str) if str(s).startswith("2")), None)
            if first_2xx is not None:
                response_schema = responses.get(first_2xx)
            operations.append(
                Operation(
                    operation_id=op["operationId"],
                    method=method,
                    path=path,
                    summary=op.get("summary", ""),
                    description=op.get("description", ""),
                    tags=tuple(op.get("tags", [])),
                    parameters=tuple(params),
                    request_schema=request_schema,
                    request_content_type=content_type,
                    response_schema=response_schema,
                    responses=responses,
                )
            )
    return operations


_lock = threading.Lock()
_registry: dict[str, Operation] | None = None


def openapi_schema() -> dict[str, Any]:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)  # type: ignore[no-any-return]


def registry() -> dict[str, Operation]:
    """operation id → Operation, built once per process."""
    global _registry
    with _lock:
        if _registry is None:
            _registry = {op.operation_id: op for op in build_operations(openapi_schema())}
        return _registry


def reset_registry() -> None:
    global _registry
    with _lock:
        _registry = None


def curated_tools() -> list[dict[str, Any]]:
    """Kiln's curated agent tools (the registry the MCP endpoint serves), for the discovery document."""
    from apps.agents.services.tools import tools as agent_tools

    operations = registry()
    listed = []
    for tool in agent_tools().values():
        operation = operations[tool.operation_id]
        listed.append(
            {
                "name": tool.name,
                "title": tool.title,
                "description": tool.description,
                "operation_id": tool.operation_id,
                "method": operation.method.upper(),
                "path": operation.path,
                "input_schema": tool.input_schema,
                "output_schema": tool.output_schema(),
                "annotations": tool.annotations(),
                "mcp": "/mcp",
            }
        )
    return listed


def tool_definitions() -> list[dict[str, Any]]:
    """Function-calling tool definitions: first Kiln's curated agent tools, with the same names,
    descriptions and argument schemas as at /mcp; then every operation, with arguments
    `path_params`, `query` and `body`."""
    tools = [
        {
            "type": "function",
            "function": {
                "name": tool["name"],
                "description": f"{tool['description']} (MCP tool at /mcp; wraps {tool['operation_id']})",
                "parameters": tool["input_schema"],
            },
        }
        for tool in curated_tools()
    ]
    for op in registry().values():
        properties: dict[str, Any] = {}
        required: list[str] = []
        path_params = [p for p in op.parameters if p.location == "path"]
        query_params = [p for p in op.parameters if p.location == "query"]
        if path_params:
            properties["path_params"] = {
                "type": "object",
                "properties": {p.name: {**p.schema, "description": p.description or p.name} for p in path_params},
                "required": [p.name for p in path_params],
                "additionalProperties": False,
            }
            required.append("path_params")
        if query_params:
            properties["query"] = {
                "type": "object",
                "properties": {p.name: {**p.schema, "description": p.description or p.name} for p in query_params},
                "additionalProperties": False,
            }
        if op.request_schema is not None and op.request_content_type == "application/json":
            properties["body"] = op.request_schema
            if op.request_schema.get("required"):
                required.append("body")
        tools.append(
            {
                "type": "function",
                "function": {
                    "name": op.operation_id,
                    "description": f"{op.summary} ({op.method.upper()} {op.path})",
                    "parameters": {
                        "type": "object",
                        "properties": properties,
                        "required": required,
                        "additionalProperties": False,
                    },
                },
            }
        )
    return tools


def _schema_line(schema: dict[str, Any] | None) -> str:
    if not schema:
        return "none"
    props = schema.get("properties")
    if isinstance(props, dict) and props:
        required = set(schema.get("required", []))
        fields = []
        for name, value in props.items():
            kind = value.get("type", "object") if isinstance(value, dict) else "any"
            fields.append(
                f"`{name}`{'*' if name in required else ''} ({kind if isinstance(kind, str) else '/'.join(kind)})"
            )
        return ", ".join(fields)
    kind = schema.get("type", "object")
    return str(kind)


def markdown_reference() -> str:
    lines = ["# Kiln API reference for agents", "", "Generated from the OpenAPI schema. `*` marks required fields.", ""]
    by_tag: dict[str, list[Operation]] = {}
    for op in registry().values():
        by_tag.setdefault(op.tags[0] if op.tags else "other", []).append(op)
    for tag in sorted(by_tag):
        lines += [f"## {tag}", ""]
        for op in by_tag[tag]:
            lines.append(f"### `{op.operation_id}` — {op.summary}")
            lines.append(f"`{op.method.upper()} {op.path}`")
            params = ", ".join(f"`{p.name}` ({p.location}{', required' if p.required else ''})" for p in op.parameters)
            lines.append(f"- parameters: {params or 'none'}")
            lines.append(f"- request: {_schema_line(op.request_schema)}")
            lines.append(f"- response: {_schema_line(op.response_schema)}")
            lines.append("")
    return "\n".join(lines)
