"""Checks on plain JSON values, and the readers of JSON and YAML text people send.

Shared by the API's parsers and the services (no DRF here). Whatever a person sends ends up in
PostgreSQL (jsonb, text) and goes through recursive code (JSON Schema validation, templates), so
every value is refused at reading when it holds something jsonb cannot store (NUL, a lone
surrogate such as "\\ud800", NaN/Infinity/1e400) or is nested deeper than `MAX_JSON_DEPTH`.
YAML is read event by event first, so depth and aliases are refused before the (recursive)
constructor runs, and what it builds must be JSON (no dates, bytes, sets or non-text keys).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import yaml

from core.exceptions import ValidationFailed

# Containers inside containers. No parameter set, schema, step input or manifest needs more; the
# recursive code downstream (jsonschema, Jinja, the database driver) stays far from Python's limit.
MAX_JSON_DEPTH = 64

_SURROGATE = re.compile("[\ud800-\udfff]")


class UntrustedValueError(ValueError):
    """A value (or JSON/YAML text) Kiln refuses to read; `reason` is a stable token."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


MESSAGES = {
    "nul": "NUL characters (\\u0000) are not allowed in requests.",
    "surrogate": (
        "JSON parse error - a lone surrogate (such as \\ud800) is not valid Unicode text and cannot be stored."
    ),
    "non_finite": (
        "JSON parse error - numbers must be finite: NaN, Infinity and out-of-range values such as 1e400 "
        "are not allowed."
    ),
    "depth": f"JSON parse error - the value is nested more than {MAX_JSON_DEPTH} levels deep.",
}


def _scalars(value: Any) -> Iterator[Any]:
    """Every scalar inside `value`, dict keys included; iterative, so any depth json.loads accepts works."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        else:
            yield item


def _any_scalar(value: Any, predicate: Callable[[Any], bool]) -> bool:
    return any(predicate(item) for item in _scalars(value))


def contains_nul(value: Any) -> bool:
    """True when a string anywhere in `value` (keys included) holds a NUL, which PostgreSQL refuses."""
    return _any_scalar(value, lambda item: isinstance(item, str) and "\x00" in item)


def contains_non_finite(value: Any) -> bool:
    """True when a number anywhere in `value` is NaN or infinite.

    Python's json reads `NaN`, `Infinity` and out-of-range numbers such as `1e400` (as inf);
    none of them is JSON, jsonb refuses them and a text field would store "inf".
    """
    return _any_scalar(value, lambda item: isinstance(item, float) and not math.isfinite(item))


def unstorable_reason(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why `value` cannot be taken as JSON: 'nul', 'surrogate', 'non_finite', 'depth', or None.

    One iterative pass over every key and value. A surrogate is refused anywhere (keys too):
    Python's json turns "\\ud800" into one, and jsonb, UTF-8 files and most code refuse it.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "nul"
            if not item.isascii() and _SURROGATE.search(item):
                return "surrogate"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return "non_finite"
        elif isinstance(item, (dict, list, tuple)):
            if depth >= max_depth:
                return "depth"
            if isinstance(item, dict):
                stack.extend((key, depth) for key in item)
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)
    return None


def check_storable(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise UntrustedValueError when `unstorable_reason` finds something."""
    reason = unstorable_reason(value, max_depth=max_depth)
    if reason is not None:
        raise UntrustedValueError(reason, MESSAGES[reason])


def refuse_unstorable_value(value: Any, *, field: str) -> None:
    """For services (every caller, not only the API's parsers): a 400 `parse_error` naming `field`."""
    reason = unstorable_reason(value)
    if reason is not None:
        raise ValidationFailed(
            f"{field}: {MESSAGES[reason]}",
            code="parse_error",
            extra={"fields": {field: [MESSAGES[reason]]}, "reason": reason},
        )


def load_untrusted_json(text: str | bytes) -> Any:
    """json.loads for text a person supplied: bounded depth, storable values only."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise UntrustedValueError("depth", MESSAGES["depth"]) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UntrustedValueError("invalid", f"JSON parse error - {exc}") from None
    check_storable(value)
    return value


# --- YAML ---------------------------------------------------------------------------------------

_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_OPENING = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSING = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def load_untrusted_yaml(source: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """yaml.safe_load for text a person supplied, as JSON: bounded depth, no aliases.

    The events are read first (the parser is a state machine, so 5,000 '[' cost nothing and
    stop at `max_depth`); only then does the recursive constructor build the value. Anchors and
    aliases can expand a few hundred bytes into gigabytes and no manifest needs them. The result
    must be JSON: text keys; no dates (quote them), binary, sets or other tagged values.
    Raises UntrustedValueError; YAML syntax errors raise yaml.YAMLError.
    """
    depth = 0
    for event in yaml.parse(source, Loader=_SAFE_LOADER):
        if isinstance(event, _OPENING):
            depth += 1
            if depth > max_depth:
                raise UntrustedValueError("depth", f"The YAML is nested more than {max_depth} levels deep.")
        elif isinstance(event, _CLOSING):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            raise UntrustedValueError("alias", "YAML aliases (*name) are not allowed.")
    value = yaml.load(source, Loader=_SAFE_LOADER)  # noqa: S506 - a safe loader (C or Python)
    problem = _not_json(value)
    if problem:
        raise UntrustedValueError("not_json", problem)
    reason = unstorable_reason(value, max_depth=max_depth)
    if reason is not None:
        raise UntrustedValueError(reason, YAML_MESSAGES[reason])
    return value


YAML_MESSAGES = {
    "nul": "The YAML contains a NUL character, which is not allowed.",
    "surrogate": "The YAML contains a lone surrogate (such as \\ud800), which is not valid Unicode text.",
    "non_finite": "The YAML contains .nan or .inf; numbers must be finite.",
    "depth": f"The YAML is nested more than {MAX_JSON_DEPTH} levels deep.",
}


_JSON_SCALARS = (str, int, float, bool, type(None))


def _not_json(value: Any) -> str | None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    return f"The YAML has a key that is not text ({key!r}); quote it."
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)
        elif not isinstance(item, _JSON_SCALARS):
            shown = str(item)[:40]
            return f"The YAML has a {type(item).__name__} value ('{shown}'); only JSON values are allowed: quote it."
    return None
