"""Reading `--set NAME=VALUE` by the parameter's JSON Schema type, and describing parameters.

A shell has only text. Where the schema says a parameter is a string, VALUE is that text as
typed (`--set python_version=3.12` is "3.12", `--set name=null` is "null"); where it says
integer, number, boolean, array, object or null, VALUE is read as JSON (`--set port=8000`,
`--set ci=false`, `--set tags='["a","b"]'`). An enum or const takes its type from its values.
A union that admits strings reads VALUE as JSON only when that gives one of its other types.
A parameter whose schema names no type is read as JSON when VALUE parses, else as text.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from core.json_schema import json_shown
from core.values import UntrustedValueError, load_untrusted_json

JSON_TYPES = ("string", "integer", "number", "boolean", "array", "object", "null")
_EXAMPLES = {
    "integer": "8000",
    "number": "1.5",
    "boolean": "true",
    "array": '\'["a", "b"]\'',
    "object": '\'{"key": "value"}\'',
    "null": "null",
}
_ARTICLED = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "array": "an array",
    "object": "an object",
    "null": "null",
}
_MAX_REF_HOPS = 16


def json_type(value: Any) -> str:
    """The JSON Schema type of a JSON value (integers are also numbers: see `_admits`)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _resolved(prop: Any, root: dict[str, Any]) -> Any:
    """Follow a property's local `$ref` (`#/$defs/name`, `#/properties/x`) a bounded number of hops."""
    for _ in range(_MAX_REF_HOPS):
        if not isinstance(prop, dict) or not isinstance(prop.get("$ref"), str):
            return prop
        ref = prop["$ref"]
        if not ref.startswith("#/"):
            return prop
        node: Any = root
        for token in ref[2:].split("/"):
            token = token.replace("~1", "/").replace("~0", "~")
            node = node.get(token) if isinstance(node, dict) else None
        if node is None:
            return prop
        prop = node
    return prop


def schema_types(prop: Any, root: dict[str, Any], _depth: int = 0) -> frozenset[str] | None:
    """The JSON types a parameter's schema admits, or None when it does not say."""
    prop = _resolved(prop, root)
    if not isinstance(prop, dict) or _depth > _MAX_REF_HOPS:
        return None
    declared = prop.get("type")
    if isinstance(declared, str) and declared in JSON_TYPES:
        return frozenset({declared})
    if isinstance(declared, list):
        named = frozenset(t for t in declared if t in JSON_TYPES)
        return named or None
    if isinstance(prop.get("enum"), list) and prop["enum"]:
        return frozenset(json_type(v) for v in prop["enum"])
    if "const" in prop:
        return frozenset({json_type(prop["const"])})
    for key in ("anyOf", "oneOf"):
        branches = prop.get(key)
        if isinstance(branches, list) and branches:
            found: set[str] = set()
            for branch in branches:
                types = schema_types(branch, root, _depth + 1)
                if types is None:
                    return None
                found |= types
            return frozenset(found)
    branches = prop.get("allOf")
    if isinstance(branches, list):
        for branch in branches:
            types = schema_types(branch, root, _depth + 1)
            if types is not None:
                return types
    return None


def _admits(types: frozenset[str], value: Any) -> bool:
    kind = json_type(value)
    return kind in types or (kind == "integer" and "number" in types)


def type_label(prop: Any, root: dict[str, Any]) -> str:
    """`string`, `integer`, `string | null`, `string (one of "MIT", "none")`, or `any`."""
    types = schema_types(prop, root)
    label = " | ".join(t for t in JSON_TYPES if types and t in types) if types else "any"
    resolved = _resolved(prop, root)
    if isinstance(resolved, dict) and isinstance(resolved.get("enum"), list):
        label += " (one of " + ", ".join(json_shown(v, 60) for v in resolved["enum"]) + ")"
    if isinstance(resolved, dict) and resolved.get("type") == "array":
        item_types = schema_types(resolved.get("items"), root)
        if item_types:
            label = "array of " + " | ".join(t for t in JSON_TYPES if t in item_types)
    return label


def value_from_text(name: str, text: str, schema: dict[str, Any]) -> Any:
    """VALUE of `--set NAME=VALUE`, read as the parameter's schema type (see the module's doc)."""
    properties = schema.get("properties") if isinstance(schema, dict) else None
    prop = properties.get(name) if isinstance(properties, dict) else None
    types = schema_types(prop, schema) if prop is not None else None
    if types is None:
        try:
            return load_untrusted_json(text)
        except UntrustedValueError as exc:
            if exc.reason == "invalid":
                return text  # not JSON: the text itself
            raise CommandError(f"--set {name}: {exc.message}") from None
    if types == {"string"}:
        return text
    try:
        value = load_untrusted_json(text)
    except UntrustedValueError as exc:
        if "string" in types and exc.reason == "invalid":
            return text
        wanted = " or ".join(_ARTICLED[t] for t in JSON_TYPES if t in types)
        example = next((_EXAMPLES[t] for t in JSON_TYPES if t in types and t in _EXAMPLES), "null")
        raise CommandError(
            f"--set {name}={text}: the parameter is {wanted}, so VALUE is read as JSON, and "
            f"{json_shown(text, 80)} is not JSON; e.g. --set {name}={example}"
        ) from None
    if "string" in types and not _admits(types - {"string"}, value):
        return text  # a string-or-something parameter: JSON only when it gives the something
    return value


def parameter_rows(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per parameter: name, type label, required, default (when the schema has one), description."""
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return []
    listed = schema.get("required")
    required: list[Any] = listed if isinstance(listed, list) else []
    rows = []
    for name, prop in sorted(properties.items()):  # jsonb keeps no key order: by name
        resolved = _resolved(prop, schema)
        row: dict[str, Any] = {
            "name": name,
            "type": type_label(prop, schema),
            "required": name in required,
            "description": " ".join(str(resolved.get("description", "")).split()) if isinstance(resolved, dict) else "",
        }
        if isinstance(resolved, dict) and "default" in resolved:
            row["default"] = resolved["default"]
        rows.append(row)
    return rows
