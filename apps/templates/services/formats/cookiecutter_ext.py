"""Cookiecutter's built-in Jinja extensions, for Kiln's sandbox.

Cookiecutter 2.x always loads five extensions (`cookiecutter/extensions.py`): the
`jsonify` and `slugify` filters, the `random_ascii_string` and `uuid4` globals and the
`{% now %}` tag (arrow). Kiln implements the same functions over the same libraries
(python-slugify, arrow), with Kiln's size limits on the arguments that make output grow.
`jinja2_time.TimeExtension`, which many templates still name, is the same `now` tag.
"""

from __future__ import annotations

import json
import string
import uuid
from collections.abc import Iterable
from secrets import choice
from typing import Any

from jinja2 import Environment, nodes
from jinja2.ext import Extension
from jinja2.parser import Parser

from core.sandbox import RenderLimitExceeded, _check_size

MAX_INDENT = 1000


def jsonify(obj: Any, indent: int = 4) -> str:
    if isinstance(indent, int) and indent > MAX_INDENT:
        raise RenderLimitExceeded(f"jsonify indent above {MAX_INDENT} is not allowed.")
    return json.dumps(obj, sort_keys=True, indent=indent)


def random_ascii_string(length: int, punctuation: bool = False) -> str:
    _check_size(int(length))
    corpus = f"{string.ascii_letters}{string.punctuation}" if punctuation else string.ascii_letters
    return "".join(choice(corpus) for _ in range(length))


def uuid4() -> str:
    return str(uuid.uuid4())


def slugify(
    value: str,
    entities: bool = True,
    decimal: bool = True,
    hexadecimal: bool = True,
    max_length: int = 0,
    word_boundary: bool = False,
    separator: str = "-",
    save_order: bool = False,
    stopwords: Iterable[str] = (),
    regex_pattern: str | None = None,
    lowercase: bool = True,
    replacements: Iterable[Iterable[str]] = (),
    allow_unicode: bool = False,
) -> str:
    from slugify import slugify as pyslugify  # imported when used: every Kiln process imports the formats

    _check_size(len(str(value)) * max(len(str(separator)), 1))
    return pyslugify(  # type: ignore[no-any-return]
        value,
        entities,
        decimal,
        hexadecimal,
        max_length,
        word_boundary,
        separator,
        save_order,
        stopwords,
        regex_pattern,
        lowercase,
        replacements,
        allow_unicode,
    )


class NowExtension(Extension):
    """The `now` tag (`{% now 'utc', '%Y' %}`, `{% now 'local' + 'days=1' %}`): jinja2_time's
    TimeExtension, which Cookiecutter ships as its own and Copier templates load by name."""

    tags = {"now"}

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.extend(datetime_format="%Y-%m-%d")

    def _datetime(self, timezone: str, operator: str, offset: str, datetime_format: str | None) -> str:
        import arrow

        moment = arrow.now(timezone)
        shift: dict[str, float] = {}
        for param in offset.split(","):
            interval, value = param.split("=")
            shift[interval.strip()] = float(operator + value.strip())
        moment = moment.shift(**shift)  # type: ignore[arg-type]
        if datetime_format is None:
            datetime_format = self.environment.datetime_format  # type: ignore[attr-defined]
        return moment.strftime(datetime_format)

    def _now(self, timezone: str, datetime_format: str | None) -> str:
        import arrow

        if datetime_format is None:
            datetime_format = self.environment.datetime_format  # type: ignore[attr-defined]
        return arrow.now(timezone).strftime(datetime_format)

    def parse(self, parser: Parser) -> nodes.Output:
        lineno = next(parser.stream).lineno
        node = parser.parse_expression()
        datetime_format: nodes.Expr = parser.parse_expression() if parser.stream.skip_if("comma") else nodes.Const(None)
        if isinstance(node, nodes.Add):
            call = self.call_method(
                "_datetime", [node.left, nodes.Const("+"), node.right, datetime_format], lineno=lineno
            )
        elif isinstance(node, nodes.Sub):
            call = self.call_method(
                "_datetime", [node.left, nodes.Const("-"), node.right, datetime_format], lineno=lineno
            )
        else:
            call = self.call_method("_now", [node, datetime_format], lineno=lineno)
        return nodes.Output([call], lineno=lineno)


class CookiecutterExtension(NowExtension):
    """All of Cookiecutter's default extensions in one (they are always loaded together)."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["jsonify"] = jsonify
        environment.filters["slugify"] = slugify
        environment.globals["random_ascii_string"] = random_ascii_string
        environment.globals["uuid4"] = uuid4
