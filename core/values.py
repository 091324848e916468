"""Checks on plain JSON values, shared by the API's parsers and the services (no DRF here)."""

from __future__ import annotations

from typing import Any


def contains_nul(value: Any) -> bool:
    """True when a string anywhere in `value` (keys included) holds a NUL, which PostgreSQL refuses."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(contains_nul(item) for item in value)
    return False
