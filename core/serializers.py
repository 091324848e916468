"""Serializer helpers shared by every app."""

from __future__ import annotations

import unicodedata
from typing import Any

from rest_framework import serializers


class StrictInputSerializer(serializers.Serializer):
    """An input serializer that rejects fields it does not declare (no mass assignment).

    A client sending `owner`, `status`, `id` or any other field it may not set gets a 400
    naming the field instead of having it silently ignored.
    """

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict) or hasattr(data, "keys"):
            allowed = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(str(key) for key in data if key not in allowed)
            if unknown:
                raise serializers.ValidationError(
                    {key: ["This field is not accepted here."] for key in unknown}, code="unknown_field"
                )
        return super().to_internal_value(data)


def validate_display_name(value: str, *, max_length: int = 100) -> str:
    """Names shown to people: no control or bidi-override characters, trimmed."""
    value = value.strip()
    if not value:
        raise serializers.ValidationError("This field may not be blank.")
    for ch in value:
        category = unicodedata.category(ch)
        if category in ("Cc", "Cf", "Cs", "Co", "Cn") or ch in "\u2028\u2029":
            raise serializers.ValidationError(
                f"Control or formatting characters (U+{ord(ch):04X}) are not allowed in names."
            )
    if len(value) > max_length:
        raise serializers.ValidationError(f"Ensure this field has no more than {max_length} characters.")
    return value
