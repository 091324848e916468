"""Serializer helpers shared by every app."""

from __future__ import annotations

import re
from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

# Database ids are positive 64-bit integers; anything larger cannot exist (and would overflow).
MAX_ID = 2**63 - 1

# Names shown to people: no C0/C1 control characters, no line/paragraph separators, no bidi
# overrides or invisible format characters (log and display spoofing). It is both the
# validator and the pattern the OpenAPI schema publishes for name fields.
NAME_PATTERN = (
    "^[^\\x00-\\x1f\\x7f-\\x9f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e"
    "\\u2060-\\u206f\\ufeff\\ufff9-\\ufffb]+$"
)
_NAME_RE = re.compile(NAME_PATTERN)
NAME_MESSAGE = "Control or formatting characters are not allowed in names."


def id_field(**kwargs: Any) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)


def name_field(**kwargs: Any) -> serializers.CharField:
    kwargs.setdefault("max_length", 100)
    return serializers.CharField(validators=[RegexValidator(NAME_PATTERN, NAME_MESSAGE)], **kwargs)


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
    """Trimmed, not blank, no control or formatting characters (NAME_PATTERN)."""
    value = value.strip()
    if not value:
        raise serializers.ValidationError("This field may not be blank.")
    if not _NAME_RE.match(value):
        raise serializers.ValidationError(NAME_MESSAGE)
    if len(value) > max_length:
        raise serializers.ValidationError(f"Ensure this field has no more than {max_length} characters.")
    return value


@extend_schema_field({"type": "object", "additionalProperties": True})
class JSONObjectField(serializers.JSONField):
    """A JSON object (null is read as {}); anything else is a 400."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise serializers.ValidationError("Expected a JSON object.")
        return value
