"""The API's parsers: DRF's JSON, form and multipart parsers, minus what PostgreSQL cannot store.

PostgreSQL cannot store U+0000 in text or jsonb, and no name, parameter or path of Kiln's
needs it; NaN, Infinity and numbers beyond the float range (`1e400`, which Python's json
reads as inf) are not JSON and jsonb refuses them too; a lone surrogate (`"\\ud800x"`, which
Python's json accepts, in a value or a key) is not Unicode text and jsonb refuses it; and
values nested deeper than `core.values.MAX_JSON_DEPTH` would only reach recursive code
(JSON Schema validation) that runs out of stack. Refusing all of them at the door, for every
media type the API accepts, turns what would be a database error or a RecursionError into a
400 `parse_error`. JSON text that arrives inside a form field is decoded by
`core.serializers.StrictJSONField`, which applies the same `refuse_unstorable` check.
"""

from __future__ import annotations

from typing import Any

from django.http import QueryDict
from rest_framework.exceptions import ParseError
from rest_framework.parsers import DataAndFiles, FormParser, JSONParser, MultiPartParser

from core.values import MESSAGES, unstorable_reason

NUL_MESSAGE = MESSAGES["nul"]
NON_FINITE_MESSAGE = MESSAGES["non_finite"]
SURROGATE_MESSAGE = MESSAGES["surrogate"]
DEPTH_MESSAGE = MESSAGES["depth"]


def refuse_unstorable(value: Any) -> None:
    """Raise ParseError (400 `parse_error`) if `value` holds a NUL character, a lone surrogate or a
    non-finite number anywhere (keys included), or is nested too deeply."""
    reason = unstorable_reason(value)
    if reason is not None:
        raise ParseError(MESSAGES[reason])


def _form_values(data: QueryDict) -> dict[str, list[str]]:
    return dict(data.lists())


class KilnJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(DEPTH_MESSAGE) from None
        refuse_unstorable(data)
        return data


class KilnFormParser(FormParser):
    """application/x-www-form-urlencoded (the browsable API's HTML forms): field names and values."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        refuse_unstorable(_form_values(data))
        return data


class KilnMultiPartParser(MultiPartParser):
    """multipart/form-data (template uploads, the browsable API's HTML forms): field names and values.

    File contents are bytes and may hold anything; Django already drops non-printable characters
    from the uploaded files' names.
    """

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> DataAndFiles:
        parsed = super().parse(stream, media_type, parser_context)
        refuse_unstorable([_form_values(parsed.data), list(parsed.files)])
        return parsed
