"""A template's JSON Schema as an HTML form, and the form's POST back as parameters.

The form only collects values; the generation service validates them against the same
schema as the API does, and its field errors (`parameters.<name>`) are shown beside the
fields. Types map to controls: enum → select, boolean → checkbox, integer/number → number
with bounds, array of enum → checkboxes (multiselect), other arrays → one item per line,
string → text (with the schema's pattern, and its description as the message).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.http import QueryDict

PREFIX = "p."  # form field names: p.<parameter>, apart from the page's own fields


@dataclass
class Field:
    name: str
    label: str
    kind: str  # text | select | checkbox | number | multiselect | lines | json
    required: bool
    description: str = ""
    value: Any = None
    options: list[str] = field(default_factory=list)
    pattern: str = ""
    minimum: Any = None
    maximum: Any = None
    step: str = "1"
    errors: list[str] = field(default_factory=list)

    @property
    def input_name(self) -> str:
        return f"{PREFIX}{self.name}"

    @property
    def input_id(self) -> str:
        return f"param-{self.name}"

    @property
    def text_value(self) -> str:
        """The value as an input shows it."""
        if self.value is None:
            return ""
        if self.kind == "lines" and isinstance(self.value, list):
            return "\n".join(str(v) for v in self.value)
        if self.kind == "json":
            return self.value if isinstance(self.value, str) else json.dumps(self.value, indent=2)
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        return str(self.value)

    @property
    def selected(self) -> set[str]:
        values = self.value if isinstance(self.value, list) else [self.value]
        return {str(v) for v in values if v is not None}


def _kind(prop: dict[str, Any]) -> str:
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if "enum" in prop:
        return "select"
    if kind == "boolean":
        return "checkbox"
    if kind in ("integer", "number"):
        return "number"
    if kind == "array":
        items = prop.get("items")
        if isinstance(items, dict) and isinstance(items.get("enum"), list):
            return "multiselect"
        if isinstance(items, dict) and items.get("type") in ("string", "integer", "number", None):
            return "lines"
        return "json"
    if kind == "string" or (kind is None and "pattern" in prop):
        return "text"
    return "json"


def build_fields(schema: dict[str, Any], values: dict[str, Any] | None = None) -> list[Field]:
    """One form field per schema property, filled with `values`, else the defaults."""
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return []
    required = set(schema.get("required") or [])
    fields = []
    # PostgreSQL's jsonb keeps no key order: required parameters first, then by name
    for name, prop in sorted(properties.items(), key=lambda item: (item[0] not in required, str(item[0]))):
        if not isinstance(prop, dict):
            continue
        kind = _kind(prop)
        value = (values or {}).get(name, prop.get("default"))
        item_enum = (prop.get("items") or {}).get("enum", []) if kind == "multiselect" else []
        fields.append(
            Field(
                name=str(name),
                label=str(prop.get("title") or str(name).replace("_", " ").capitalize()),
                kind=kind,
                required=name in required,
                description=str(prop.get("description") or ""),
                value=value,
                options=[str(o) for o in (prop.get("enum") or item_enum)],
                pattern=str(prop.get("pattern") or "") if kind == "text" else "",
                minimum=prop.get("minimum", prop.get("exclusiveMinimum")),
                maximum=prop.get("maximum", prop.get("exclusiveMaximum")),
                step="1" if prop.get("type") == "integer" else "any",
            )
        )
    return fields


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text  # the schema check names the field


def parse_post(schema: dict[str, Any], data: QueryDict) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The posted form as parameters (typed per the schema), and the errors of fields it cannot read."""
    parameters: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    properties = schema.get("properties") or {}
    for item in build_fields(schema):
        prop = properties.get(item.name, {})
        key = item.input_name
        if item.kind == "checkbox":
            parameters[item.name] = key in data
            continue
        if item.kind == "multiselect":
            chosen = data.getlist(key)
            item_type = (prop.get("items") or {}).get("type")
            parameters[item.name] = [_number(v) if item_type in ("integer", "number") else v for v in chosen]
            continue
        text = data.get(key, "")
        if text == "" and item.kind != "text":
            continue  # left empty: the default applies (or `required` reports it)
        if item.kind == "number":
            parameters[item.name] = _number(text.strip())
        elif item.kind == "select":
            enum = prop.get("enum") or []
            parameters[item.name] = next((v for v in enum if str(v) == text), text)
        elif item.kind == "lines":
            item_type = (prop.get("items") or {}).get("type")
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            parameters[item.name] = [_number(v) if item_type in ("integer", "number") else v for v in lines]
        elif item.kind == "json":
            try:
                parameters[item.name] = json.loads(text)
            except ValueError:
                errors[item.name] = ["Enter valid JSON."]
        elif text != "" or item.required:
            parameters[item.name] = text
    return parameters, errors


def field_errors(schema: dict[str, Any], extra: dict[str, Any]) -> dict[str, list[str]]:
    """The service's `extra.fields` (`parameters.<name>[.<index>]`) per form field.

    A pattern mismatch reads as the property's description when it has one (the schema's
    author wrote it for people; the raw regex is for machines).
    """
    properties = schema.get("properties") or {}
    out: dict[str, list[str]] = {}
    for key, messages in (extra.get("fields") or {}).items():
        parts = str(key).split(".")
        name = parts[1] if len(parts) > 1 and parts[0] == "parameters" else "__all__"
        prop = properties.get(name) if isinstance(properties, dict) else None
        for message in messages if isinstance(messages, list) else [messages]:
            text = str(message)
            if isinstance(prop, dict) and prop.get("pattern") and "does not match" in text and prop.get("description"):
                text = str(prop["description"])
            out.setdefault(name if name in properties else "__all__", []).append(text)
    return out
