"""Serializer helpers shared by every app."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import Field
from rest_framework.utils import html

from core.parsers import refuse_unstorable

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

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


# --- strict scalar fields ------------------------------------------------------------------------
#
# DRF's fields coerce: CharField turns the JSON number 5 into "5" (and 1e400 into "inf"),
# BooleanField reads "yes", "1" and 1 as true. A JSON client that sends the wrong type has a
# bug, and silently storing something else hides it; the strict variants refuse it with a 400
# naming the field. HTML forms (the browsable API) can only send text, so booleans keep
# DRF's readings of form text ("true", "on", ...) when the serializer's data is form data.
# `StrictInputSerializer` swaps these in for every field it has (see `strict_field`).


def is_form_input(field: Field) -> bool:
    """Whether `field`'s serializer was given HTML-form data (a QueryDict) rather than parsed JSON."""
    return html.is_html_input(getattr(field.root, "initial_data", None))


class StrictStringMixin:
    """For CharField and its subclasses: only a string is a string."""

    default_error_messages: ClassVar[dict[str, StrOrPromise]] = {"not_a_string": "Not a valid string."}

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("not_a_string")  # type: ignore[attr-defined]
        return super().to_internal_value(data)  # type: ignore[misc]


class StrictBooleanMixin:
    """For BooleanField: JSON true/false only; form text keeps DRF's readings ("true", "on", "1", ...)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, bool):
            return data
        if isinstance(data, str) and is_form_input(self):  # type: ignore[arg-type]
            return super().to_internal_value(data)  # type: ignore[misc]
        self.fail("invalid", input=data)  # type: ignore[attr-defined]


class StrictJSONMixin:
    """For JSONField: the value (also JSON text decoded from a form field) must be storable.

    A form field's JSON text is decoded here, not by a parser, so the parsers' refusal of NUL
    characters and non-finite numbers is applied again: the same 400 `parse_error`.
    """

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)  # type: ignore[misc]
        refuse_unstorable(value)
        return value


class StrictCharField(StrictStringMixin, serializers.CharField):
    pass


class StrictBooleanField(StrictBooleanMixin, serializers.BooleanField):
    pass


class StrictJSONField(StrictJSONMixin, serializers.JSONField):
    pass


_STRICT_MIXINS: tuple[tuple[type[Field], type], ...] = (
    (serializers.CharField, StrictStringMixin),
    (serializers.BooleanField, StrictBooleanMixin),
    (serializers.JSONField, StrictJSONMixin),
)
_STRICT_CLASSES: dict[type[Field], type[Field]] = {
    serializers.CharField: StrictCharField,
    serializers.BooleanField: StrictBooleanField,
    serializers.JSONField: StrictJSONField,
}


def strict_class(cls: type[Field]) -> type[Field]:
    """The strict equivalent of a field class (itself when it is strict already or has none)."""
    if cls not in _STRICT_CLASSES:
        strict = cls
        for base, mixin in _STRICT_MIXINS:
            if issubclass(cls, base) and not issubclass(cls, mixin):
                # EmailField, SlugField, URLField, RegexField, ...: the same class with the check in front
                strict = type(f"Strict{cls.__name__}", (mixin, cls), {"__module__": cls.__module__})
                break
        _STRICT_CLASSES[cls] = strict
    return _STRICT_CLASSES[cls]


def strict_field(field: Field) -> Field:
    """`field`, rebuilt as its strict equivalent; list and dict children too.

    Rebuilt from the arguments it was declared with, as DRF itself copies fields.
    """
    if field.read_only:
        return field
    kwargs: dict[str, Any] = dict(getattr(field, "_kwargs", {}))
    child = kwargs.get("child")
    if isinstance(child, Field) and not isinstance(child, serializers.BaseSerializer):
        kwargs["child"] = strict_field(child)
    cls = strict_class(type(field))
    if cls is type(field) and kwargs.get("child") is child:
        return field
    return cls(*getattr(field, "_args", ()), **kwargs)


def id_field(**kwargs: Any) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)


def name_field(**kwargs: Any) -> StrictCharField:
    kwargs.setdefault("max_length", 100)
    return StrictCharField(validators=[RegexValidator(NAME_PATTERN, NAME_MESSAGE)], **kwargs)


# Fields an HTML form of the browsable API posts besides the serializer's own: Django's CSRF token
FORM_MACHINERY_FIELDS = frozenset({"csrfmiddlewaretoken"})


class StrictInputSerializer(serializers.Serializer):
    """An input serializer that rejects fields it does not declare (no mass assignment) and
    values of the wrong JSON type.

    A client sending `owner`, `status`, `id` or any other field it may not set gets a 400
    naming the field instead of having it silently ignored; a number sent for a string or
    "yes" for a boolean gets a 400 instead of being coerced.
    """

    # (The docstring above is the schema's description of every input without its own.)
    # Subclasses declare DRF's CharField, BooleanField, JSONField (or a ModelSerializer maps
    # them from model fields) as usual; every one is swapped for its strict equivalent here.
    def get_fields(self) -> dict[str, Field]:
        return {name: strict_field(field) for name, field in super().get_fields().items()}

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict) or hasattr(data, "keys"):
            allowed = {name for name, field in self.fields.items() if not field.read_only}
            if html.is_html_input(data):
                allowed |= FORM_MACHINERY_FIELDS
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
class JSONObjectField(StrictJSONField):
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
