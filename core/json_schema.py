"""JSON Schemas that people supply (template parameters, workflow inputs): the one place that
checks them and builds their validators.

What a person's schema could otherwise do to the process that validates with it:

* fetch a URL: jsonschema resolves a `$ref` it does not know by fetching it (urllib), on the
  private network too. Here a `$ref` must point into the schema itself (`#/$defs/name`,
  `#/properties/x`, an `#anchor`), and the validators' registry retrieves nothing;
* recurse forever: `$defs: {a: {$ref: '#/$defs/a'}}` (or a loop through allOf/anyOf/oneOf/not/
  if/then/else/dependentSchemas) applies a schema to the same value again and again, a
  RecursionError 500 at every validation. Such loops, chains of in-place schemas longer than
  `MAX_IN_PLACE_CHAIN` and in-place fan-outs above `MAX_IN_PLACE_EXPANSION` are refused when the
  schema is saved; references that descend into the value (a tree of `items: {$ref: '#'}`)
  stay allowed, bounded by the value's own depth;
* backtrack for hours: `pattern: '^(a+)+$'` against "a"*40 + "!" in Python's `re`. Every
  `pattern`, `patternProperties` key and `format: regex` value runs on RE2 (linear time, no
  backreferences or lookaround); a pattern RE2 cannot run is refused when the schema is saved,
  naming its location. JSON Schema semantics are kept (search, not full match; ECMA-262 `\\uXXXX`
  escapes are read as RE2's `\\x{XXXX}`);
* run out of stack or time on a deep document: schemas deeper than `MAX_JSON_DEPTH` are refused,
  and every validation runs under a step budget (`MAX_VALIDATION_STEPS` keyword evaluations) with
  RecursionError caught, so whatever is left ends as a coded 400, never a 500.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

import re2
from jsonschema import Draft202012Validator, FormatChecker, SchemaError, validators
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable
from referencing.jsonschema import DRAFT202012

from core.values import MAX_JSON_DEPTH, unstorable_reason

__all__ = [
    "MissingProperty",
    "UserSchemaError",
    "check_user_schema",
    "iter_user_schema_errors",
    "json_shown",
    "user_pattern_search",
]

_REF_KEYWORDS = ("$ref", "$dynamicRef")
# keywords whose values are data, not schemas: a "$ref" key in there is just a key
_DATA_KEYWORDS = frozenset({"const", "default", "enum", "examples"})

# Subschemas of a schema, by how they are applied. In place: to the same value (a loop among
# them never ends). Descending: to a part of the value (a loop ends with the value's depth).
_IN_PLACE_ONE = ("not", "if", "then", "else")
_IN_PLACE_MANY = ("allOf", "anyOf", "oneOf")
_IN_PLACE_MAP = ("dependentSchemas",)
_DESCEND_ONE = (
    "items",
    "contains",
    "additionalProperties",
    "unevaluatedProperties",
    "unevaluatedItems",
    "propertyNames",
    "contentSchema",
)
_DESCEND_MANY = ("prefixItems",)
_DESCEND_MAP = ("properties", "patternProperties")
_DEFINITIONS = ("$defs", "definitions")  # applied only through references

MAX_IN_PLACE_CHAIN = 32
MAX_IN_PLACE_EXPANSION = 10_000
MAX_PATTERN_PROGRAM = 10_000  # RE2 program size (instructions) of one pattern
MAX_PATTERN_LENGTH = 4_096
MAX_VALIDATION_STEPS = 50_000  # keyword evaluations; ~1 s of jsonschema on this machine


class UserSchemaError(ValueError):
    """The schema is not valid JSON Schema, or Kiln cannot run it safely.

    `pointer` is the JSON pointer of the offending keyword (for the error's `extra`), `reason` a
    stable token: invalid, reference, recursive_ref, too_deep, too_complex, unsupported_pattern.
    """

    def __init__(self, message: str, *, pointer: str = "", reason: str = "invalid") -> None:
        super().__init__(message)
        self.pointer = pointer
        self.reason = reason


def _no_retrieval(uri: str) -> Resource[Any]:
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]  # an attrs class


_NO_RETRIEVAL: Registry[Any] = Registry(retrieve=_no_retrieval)  # type: ignore[call-arg]  # attrs


# --- patterns on RE2 --------------------------------------------------------------------------------


def _re2_options() -> Any:
    options = re2.Options()
    options.log_errors = False
    options.never_capture = True  # a yes/no answer: the DFA, never the backtracking-free but slower NFA
    options.max_mem = 8 << 20
    return options


_OPTIONS = _re2_options()


def _ecma_to_re2(pattern: str) -> str:
    """ECMA-262 `\\uXXXX` escapes (what JSON Schema patterns use) as RE2's `\\x{XXXX}`."""
    if "\\u" not in pattern:
        return pattern
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            following = pattern[index + 1]
            hex_digits = pattern[index + 2 : index + 6]
            if following == "u" and len(hex_digits) == 4 and all(c in "0123456789abcdefABCDEF" for c in hex_digits):
                out.append(f"\\x{{{hex_digits}}}")
                index += 6
                continue
            out.append(pattern[index : index + 2])
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


class PatternError(ValueError):
    pass


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> Any:
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(f"the pattern is longer than {MAX_PATTERN_LENGTH} characters")
    try:
        regex = re2.compile(_ecma_to_re2(pattern), options=_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise PatternError(
            f"{detail}; Kiln runs patterns on RE2 (linear time), which has no backreferences or lookaround"
        ) from None
    except (TypeError, UnicodeError):
        raise PatternError("the pattern is not valid text") from None
    if regex.programsize > MAX_PATTERN_PROGRAM:
        raise PatternError(f"the pattern is too complex (RE2 program of {regex.programsize} > {MAX_PATTERN_PROGRAM})")
    return regex


def user_pattern_search(pattern: str, text: str) -> bool:
    """JSON Schema's `pattern`: does `pattern` match anywhere in `text` (RE2, linear time).

    Raises PatternError for a pattern RE2 cannot run. Text that is not valid Unicode (a lone
    surrogate, refused at every door anyway) matches nothing.
    """
    regex = _compiled(pattern)
    try:
        return regex.search(text) is not None
    except UnicodeError:
        return False


def _check_pattern(pattern: Any, pointer: str) -> None:
    if not isinstance(pattern, str):
        return
    try:
        _compiled(pattern)
    except PatternError as exc:
        raise UserSchemaError(
            f"{pointer}: the pattern {_shown(pattern)} cannot be used: {exc}",
            pointer=pointer,
            reason="unsupported_pattern",
        ) from None


def _shown(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


# --- the schema graph -------------------------------------------------------------------------------


def _pointer_token(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _children(node: dict[str, Any], pointer: str) -> Iterator[tuple[Any, str, bool]]:
    """(subschema, its pointer, applied in place?) for the schema keywords of `node`."""
    for key in _IN_PLACE_ONE:
        if key in node:
            yield node[key], f"{pointer}/{key}", True
    for key in _DESCEND_ONE:
        if key in node:
            yield node[key], f"{pointer}/{key}", False
    for keys, in_place in ((_IN_PLACE_MANY, True), (_DESCEND_MANY, False)):
        for key in keys:
            value = node.get(key)
            if isinstance(value, list):
                for index, item in enumerate(value):
                    yield item, f"{pointer}/{key}/{index}", in_place
    mapped: tuple[tuple[tuple[str, ...], bool], ...] = (
        (_IN_PLACE_MAP, True),
        (_DESCEND_MAP, False),
        (_DEFINITIONS, False),  # applied only through a reference, which adds its own edge
    )
    for map_keys, map_in_place in mapped:
        for key in map_keys:
            value = node.get(key)
            if isinstance(value, dict):
                for name, item in value.items():
                    yield item, f"{pointer}/{key}/{_pointer_token(str(name))}", map_in_place


def _walk(schema: dict[str, Any]) -> None:
    """Check references, patterns and in-place loops of a schema that passed the metaschema."""
    resolver = _NO_RETRIEVAL.with_resource("", DRAFT202012.create_resource(schema)).resolver()
    pointers: dict[int, str] = {}
    in_place: dict[int, list[int]] = {}
    uses_unevaluated = uses_pattern_properties = False
    queue: list[tuple[Any, str]] = [(schema, "")]
    while queue:
        node, pointer = queue.pop()
        if not isinstance(node, dict) or id(node) in pointers:
            continue
        pointers[id(node)] = pointer or "/"
        edges = in_place.setdefault(id(node), [])
        if "$id" in node and pointer:
            raise UserSchemaError(
                f"{pointer}/$id: '$id' is allowed only at the top of the schema.", pointer=f"{pointer}/$id"
            )
        for key in _REF_KEYWORDS:
            ref = node.get(key)
            if not isinstance(ref, str):
                continue
            where = f"{pointer}/{key}"
            if not ref.startswith("#"):
                raise UserSchemaError(
                    f"{where}: '{ref}' points outside the schema; only references inside it "
                    "(#/$defs/name, #/properties/x) are allowed.",
                    pointer=where,
                    reason="reference",
                )
            try:
                target = resolver.lookup(ref).contents
            except Unresolvable:
                raise UserSchemaError(
                    f"{where}: '{ref}' does not resolve inside the schema.", pointer=where, reason="reference"
                ) from None
            if isinstance(target, dict):
                edges.append(id(target))
                queue.append((target, ref[1:] if ref.startswith("#/") else where))
        _check_pattern(node.get("pattern"), f"{pointer}/pattern")
        properties_patterns = node.get("patternProperties")
        if isinstance(properties_patterns, dict):
            uses_pattern_properties = True
            for pattern in properties_patterns:
                _check_pattern(pattern, f"{pointer}/patternProperties/{_pointer_token(pattern)}")
        uses_unevaluated = uses_unevaluated or "unevaluatedProperties" in node
        for child, child_pointer, applied_in_place in _children(node, pointer):
            if isinstance(child, dict):
                if applied_in_place:
                    edges.append(id(child))
                queue.append((child, child_pointer))
    if uses_unevaluated and uses_pattern_properties:
        # jsonschema evaluates unevaluatedProperties with Python's re over patternProperties
        raise UserSchemaError(
            "unevaluatedProperties cannot be combined with patternProperties in a Kiln schema; "
            "use additionalProperties instead.",
            pointer="/unevaluatedProperties",
            reason="unsupported_pattern",
        )
    _check_in_place(in_place, pointers)


def _check_in_place(edges: dict[int, list[int]], pointers: dict[int, str]) -> None:
    """Loops, chain lengths and fan-out of the in-place graph (iterative depth-first search)."""
    chain: dict[int, int] = {}
    expansion: dict[int, int] = {}
    on_stack: set[int] = set()
    for start in edges:
        if start in chain:
            continue
        stack: list[tuple[int, int]] = [(start, 0)]
        while stack:
            node, next_child = stack.pop()
            children = edges.get(node, [])
            if next_child == 0:
                on_stack.add(node)
            if next_child < len(children):
                stack.append((node, next_child + 1))
                child = children[next_child]
                if child in on_stack:
                    where = pointers.get(child, "/")
                    raise UserSchemaError(
                        f"{where}: the schema refers back to itself without descending into the value "
                        "(a $ref loop through $ref/allOf/anyOf/oneOf/not/if/then/else), so validating never ends.",
                        pointer=where,
                        reason="recursive_ref",
                    )
                if child not in chain:
                    stack.append((child, 0))
                continue
            on_stack.discard(node)
            chain[node] = 1 + max((chain[c] for c in children), default=0)
            expansion[node] = 1 + sum(expansion[c] for c in children)
            where = pointers.get(node, "/")
            if chain[node] > MAX_IN_PLACE_CHAIN:
                raise UserSchemaError(
                    f"{where}: more than {MAX_IN_PLACE_CHAIN} schemas apply one after another to the same value.",
                    pointer=where,
                    reason="too_deep",
                )
            if expansion[node] > MAX_IN_PLACE_EXPANSION:
                raise UserSchemaError(
                    f"{where}: the schema applies more than {MAX_IN_PLACE_EXPANSION} subschemas to one value.",
                    pointer=where,
                    reason="too_complex",
                )


def check_user_schema(schema: dict[str, Any]) -> None:
    """Raise UserSchemaError unless `schema` is valid JSON Schema that Kiln can run safely:
    references inside it, no in-place loops, RE2-compatible patterns, bounded depth."""
    if unstorable_reason(schema) == "depth":
        raise UserSchemaError(f"the schema is nested more than {MAX_JSON_DEPTH} levels deep.", reason="too_deep")
    try:
        Draft202012Validator.check_schema(schema, format_checker=_METASCHEMA_FORMATS)
    except SchemaError as exc:
        pointer = "/" + "/".join(_pointer_token(str(p)) for p in exc.path) if exc.path else ""
        raise UserSchemaError(f"not a valid JSON Schema: {exc.message}", pointer=pointer) from None
    except RecursionError:
        raise UserSchemaError("the schema is nested too deeply.", reason="too_deep") from None
    _walk(schema)


# --- validating -------------------------------------------------------------------------------------

_STEPS: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("kiln_schema_steps", default=None)


class _OutOfSteps(Exception):
    pass


def _counted(keyword: Callable[..., Any]) -> Callable[..., Any]:
    def counted(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
        steps = _STEPS.get()
        if steps is not None:
            steps[0] -= 1
            if steps[0] < 0:
                raise _OutOfSteps
        return keyword(validator, value, instance, schema)

    return counted


# --- messages in JSON spelling ----------------------------------------------------------------------
#
# jsonschema words its messages with Python's repr (None, True, {'a': 1}); the people reading them
# wrote JSON, YAML or a form. Each keyword's own errors are reworded here with the values in JSON
# (null, true, {"a": 1}), and a `pattern` mismatch shows the schema's `description` (written for
# people) instead of the raw regex when the schema has one.

_MESSAGE_CHARS = 200
_DESCRIPTION_CHARS = 300


def json_shown(value: Any, limit: int = _MESSAGE_CHARS) -> str:
    """`value` as JSON for a message (null, true, "text", [1, 2]), cut to `limit` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=False, default=str)
    except (TypeError, ValueError, RecursionError):
        text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shorten(value: Any) -> str:
    return json_shown(value)


def _joined(values: Any) -> str:
    if isinstance(values, list):
        return " or ".join(json_shown(each, 80) for each in values)
    return json_shown(values)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _type_message(value: Any, instance: Any, schema: Any) -> str:
    return f"{json_shown(instance)} is not of type {_joined(value)}"


def _not_message(value: Any, instance: Any, schema: Any) -> str:
    if isinstance(value, dict) and set(value) <= {"enum", "const", "description", "title"}:
        return f"{json_shown(instance)} is not allowed (a reserved value)"
    return f"{json_shown(instance)} is not allowed here (it matches a schema it must not match)"


_MESSAGES: dict[str, Callable[[Any, Any, Any], str]] = {
    "type": _type_message,
    "enum": lambda v, i, s: f"{json_shown(i)} is not one of {json_shown(v)}",
    "const": lambda v, i, s: f"{json_shown(v)} was expected, not {json_shown(i)}",
    "minimum": lambda v, i, s: f"{json_shown(i)} is less than the minimum of {json_shown(v)}",
    "maximum": lambda v, i, s: f"{json_shown(i)} is greater than the maximum of {json_shown(v)}",
    "exclusiveMinimum": lambda v, i, s: f"{json_shown(i)} is less than or equal to the minimum of {json_shown(v)}",
    "exclusiveMaximum": lambda v, i, s: f"{json_shown(i)} is greater than or equal to the maximum of {json_shown(v)}",
    "multipleOf": lambda v, i, s: f"{json_shown(i)} is not a multiple of {json_shown(v)}",
    "minLength": lambda v, i, s: f"{json_shown(i)} is too short (at least {_plural(v, 'character')})",
    "maxLength": lambda v, i, s: f"{json_shown(i)} is too long (at most {_plural(v, 'character')})",
    "minItems": lambda v, i, s: f"{json_shown(i)} is too short (at least {_plural(v, 'item')})",
    "maxItems": lambda v, i, s: f"{json_shown(i)} is too long (at most {_plural(v, 'item')})",
    "minProperties": lambda v, i, s: f"{json_shown(i)} has too few properties (at least {v})",
    "maxProperties": lambda v, i, s: f"{json_shown(i)} has too many properties (at most {v})",
    "uniqueItems": lambda v, i, s: f"{json_shown(i)} has non-unique elements",
    "format": lambda v, i, s: f"{json_shown(i)} is not a valid {json_shown(v)}",
    "anyOf": lambda v, i, s: f"{json_shown(i)} is not valid under any of the given schemas",
    "oneOf": lambda v, i, s: f"{json_shown(i)} is not valid under exactly one of the given schemas",
    "not": _not_message,
}


def _reworded(keyword: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """`function`'s own errors (not those of the subschemas it descends into) in JSON spelling."""
    message_of = _MESSAGES.get(keyword)
    if message_of is None:
        return function

    def reworded(validator: Any, value: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
        for error in function(validator, value, instance, schema) or ():
            if error.validator is _UNSET:  # raised by this keyword, not descended into
                error.message = message_of(value, instance, schema)
            yield error

    return reworded


_UNSET = ValidationError("probe").validator  # jsonschema's "not set yet" marker


class MissingProperty(ValidationError):
    """A `required` error; `name` is the missing property (its message is in JSON spelling)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{json_shown(name)} is a required property")
        self.name = name


def _required(validator: Any, required: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "object"):
        for name in required:
            if name not in instance:
                yield MissingProperty(name)


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        description = schema.get("description") if isinstance(schema, dict) else None
        if isinstance(description, str) and description.strip():
            text = " ".join(description.split())
            if len(text) > _DESCRIPTION_CHARS:
                text = text[: _DESCRIPTION_CHARS - 3] + "..."
            yield ValidationError(f"{_shorten(instance)} does not match the expected form: {text}")
        else:
            yield ValidationError(f"{_shorten(instance)} does not match the pattern {_shorten(pattern)}")


def _search(pattern: str, text: str) -> bool:
    try:
        return user_pattern_search(pattern, text)
    except PatternError as exc:  # stored before patterns were checked
        raise UserSchemaError(
            f"the pattern {_shown(pattern)} cannot be used: {exc}", reason="unsupported_pattern"
        ) from None


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(validator: Any, additional: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    declared = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = [key for key in instance if key not in declared and not any(_search(p, key) for p in patterns)]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        if patterns:
            joined = ", ".join(json_shown(each, 80) for each in sorted(extras))
            verb = "does" if len(extras) == 1 else "do"
            listed = ", ".join(json_shown(each, 80) for each in sorted(patterns))
            yield ValidationError(f"{joined} {verb} not match any of the regexes: {listed}")
        else:
            shown = ", ".join(json_shown(each, 80) for each in sorted(extras, key=str))
            verb = "was" if len(extras) == 1 else "were"
            yield ValidationError(f"Additional properties are not allowed ({shown} {verb} unexpected)")


def _regex_format(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    _compiled(instance)  # raises PatternError: "is not a 'regex'"
    return True


_FORMATS = FormatChecker()
_FORMATS.checks("regex", raises=PatternError)(_regex_format)
# The metaschema marks `pattern` and patternProperties' keys as format "regex", which the default
# checker compiles with Python's re (a RecursionError on '(' * 1000); `_walk` checks them on RE2
# and names the keyword, so the metaschema pass leaves them alone.
_METASCHEMA_FORMATS = FormatChecker()
_METASCHEMA_FORMATS.checks("regex")(lambda instance: True)

_KEYWORDS = {
    keyword: _counted(_reworded(keyword, function))
    for keyword, function in {
        **Draft202012Validator.VALIDATORS,
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
        "required": _required,
    }.items()
}
UserSchemaValidator = validators.extend(Draft202012Validator, _KEYWORDS)

_CHECKED: dict[str, None] = {}  # digests of schemas that passed check_user_schema (insertion-ordered)
_CHECKED_MAX = 512


def _ensure_checked(schema: dict[str, Any]) -> None:
    """A stored schema may predate a check: run it (once per process and schema) before validating."""
    digest = hashlib.sha256(
        json.dumps(schema, sort_keys=True, default=str).encode("utf-8", "surrogatepass")
    ).hexdigest()
    if digest in _CHECKED:
        return
    check_user_schema(schema)
    _CHECKED[digest] = None
    if len(_CHECKED) > _CHECKED_MAX:
        with contextlib.suppress(RuntimeError, StopIteration, KeyError):  # another thread trimmed it first
            _CHECKED.pop(next(iter(_CHECKED)))


def iter_user_schema_errors(schema: dict[str, Any], instance: Any) -> Iterator[ValidationError]:
    """Validation errors of `instance` (formats checked), never fetching anything, in bounded time.

    A stored schema that Kiln cannot run safely (a reference outside it or that does not resolve,
    a loop, an RE2-incompatible pattern), or a validation that exceeds the step budget or the
    stack, raises UserSchemaError (a coded 400 for the caller) instead of a 500.
    """
    _ensure_checked(schema)
    validator = UserSchemaValidator(schema, registry=_NO_RETRIEVAL, format_checker=_FORMATS)
    token = _STEPS.set([MAX_VALIDATION_STEPS])
    try:
        errors = list(validator.iter_errors(instance))
    except Unresolvable as exc:
        ref = getattr(exc, "ref", "")
        raise UserSchemaError(
            f"the reference '{ref}' does not resolve inside the schema.", reason="reference"
        ) from None
    except _OutOfSteps:
        raise UserSchemaError(
            f"validating this value takes more than {MAX_VALIDATION_STEPS} schema steps; simplify the schema.",
            reason="too_complex",
        ) from None
    except RecursionError:
        raise UserSchemaError("the value is nested too deeply for this schema.", reason="too_deep") from None
    finally:
        _STEPS.reset(token)
    yield from errors
