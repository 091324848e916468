"""Checks on plain JSON values, shared by the API's parsers and the services (no DRF here)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any


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
