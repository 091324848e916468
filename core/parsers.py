"""The JSON parser of the API: standard JSON, minus NUL characters.

PostgreSQL cannot store U+0000 in text or jsonb, and no name, parameter or path of Kiln's
needs it; refusing it at the door turns what would be a database error into a 400.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from core.values import contains_nul


class KilnJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON nested too deeply.") from None
        if contains_nul(data):
            raise ParseError("NUL characters (\\u0000) are not allowed in requests.")
        return data
