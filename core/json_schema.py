"""JSON Schemas that people supply (template parameters, workflow inputs): the one place that
checks them and builds their validators.

jsonschema resolves a `$ref` it does not already know by fetching it (urllib), so a schema from
an uploaded template or a saved workflow could make the web process or a worker request any
URL, on the private network too. Here nothing is ever retrieved: a `$ref` must point into the
schema itself (`#/$defs/name`, `#/properties/x`, an `#anchor`), which `check_user_schema`
verifies when the schema is saved, and the validators' registry refuses every other URI.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, SchemaError
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable
from referencing.jsonschema import DRAFT202012

__all__ = ["UserSchemaError", "check_user_schema", "iter_user_schema_errors"]

_REF_KEYWORDS = ("$ref", "$dynamicRef")
# keywords whose values are data, not schemas: a "$ref" key in there is just a key
_DATA_KEYWORDS = frozenset({"const", "default", "enum", "examples"})


class UserSchemaError(ValueError):
    """The schema is not valid JSON Schema, or a reference in it does not resolve inside it."""


def _no_retrieval(uri: str) -> Resource[Any]:
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]  # an attrs class


_NO_RETRIEVAL: Registry[Any] = Registry(retrieve=_no_retrieval)  # type: ignore[call-arg]  # attrs


def _refs(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """(location, reference) of every `$ref` / `$dynamicRef` in the schema.

    A nested `$id` is refused: it would make the `#...` references below it resolve against
    that sub-schema instead of the whole schema, which the check here does not follow.
    """
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _REF_KEYWORDS and isinstance(value, str):
                yield f"{where}/{key}", value
            elif key == "$id" and where:
                raise UserSchemaError(f"{where}/$id: '$id' is allowed only at the top of the schema.")
            elif key not in _DATA_KEYWORDS:
                yield from _refs(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _refs(value, f"{where}/{index}")


def check_user_schema(schema: dict[str, Any]) -> None:
    """Raise UserSchemaError unless `schema` is valid JSON Schema whose references all resolve
    inside it."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise UserSchemaError(f"not a valid JSON Schema: {exc.message}") from None
    resolver = _NO_RETRIEVAL.with_resource("", DRAFT202012.create_resource(schema)).resolver()
    for where, ref in _refs(schema):
        if not ref.startswith("#"):
            raise UserSchemaError(
                f"{where or '/'}: '{ref}' points outside the schema; only references inside it "
                "(#/$defs/name, #/properties/x) are allowed."
            )
        try:
            resolver.lookup(ref)
        except Unresolvable:
            raise UserSchemaError(f"{where}: '{ref}' does not resolve inside the schema.") from None


def iter_user_schema_errors(schema: dict[str, Any], instance: Any) -> Iterator[ValidationError]:
    """Validation errors of `instance` (formats checked), never fetching anything.

    A schema stored before references were checked may still hold one that does not resolve:
    that raises UserSchemaError instead of jsonschema's resolution error.
    """
    validator = Draft202012Validator(schema, registry=_NO_RETRIEVAL, format_checker=FormatChecker())
    try:
        yield from validator.iter_errors(instance)
    except Unresolvable as exc:
        ref = getattr(exc, "ref", "")
        raise UserSchemaError(f"the reference '{ref}' does not resolve inside the schema.") from None
