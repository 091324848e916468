"""What Copier's Jinja environment always has, for Kiln's sandbox.

Copier 9 loads `jinja2_ansible_filters.AnsibleCoreFiltersExtension` and its own `{% yield %}`
tag into every environment (`copier/_main.py`, `jinja_env`) and adds a `pathjoin` global.
Kiln uses the same filter library, minus the filters that read the machine Kiln runs on
(`expanduser`, `expandvars`, `realpath`, `relpath`, `fileglob`): a template's text is not
code, and may not look at Kiln's environment variables or files.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, Literal

from jinja2 import Environment, nodes
from jinja2.exceptions import UndefinedError
from jinja2.ext import Extension
from jinja2.parser import Parser

from core.exceptions import ApplicationError

HOST_FILTERS = frozenset({"expanduser", "expandvars", "realpath", "relpath", "fileglob"})


class FilterNotAvailable(ApplicationError):
    status_code = 422
    default_code = "template_unsupported"


def _refused(name: str) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise FilterNotAvailable(
            f"The '{name}' filter reads the machine Kiln runs on; templates render without access to it."
        )

    return refuse


class AnsibleFiltersExtension(Extension):
    """`jinja2_ansible_filters`' filters, as Copier registers them, without the host readers."""

    def __init__(self, environment: Environment) -> None:
        from jinja2_ansible_filters.core_filters import FilterModule  # imported when a Copier version is prepared

        super().__init__(environment)
        filters = FilterModule().filters()
        for name in list(filters):
            if name in environment.filters:
                filters["ans_" + name] = filters.pop(name)
        for name in HOST_FILTERS:
            filters[name] = _refused(name)
        environment.filters.update(filters)


def pathjoin(*path: str, mode: Literal["posix", "windows", "native"] = "posix") -> str:
    if mode == "windows":
        return str(PureWindowsPath(*path))
    return str(PurePosixPath(*path))


@dataclass
class YieldContext:
    name: str | None = None
    iterable: Iterable[Any] | None = None


class MultipleYieldTags(ApplicationError):
    status_code = 422
    default_code = "template_error"


_state = threading.local()


def yield_context() -> YieldContext:
    context: YieldContext | None = getattr(_state, "context", None)
    if context is None:
        context = _state.context = YieldContext()
    return context


def reset_yield() -> YieldContext:
    context = yield_context()
    context.name = None
    context.iterable = None
    return context


class YieldExtension(Extension):
    """Copier's `{% yield name from iterable %}...{% endyield %}` for path names.

    Rendering the tag records the loop variable and iterable (Copier keeps them on the
    environment; Kiln per thread, since one compiled template serves many renders) and renders
    the body, an undefined loop variable rendering as an empty string, as in Copier.
    """

    tags = {"yield"}

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        target = parser.parse_assign_target(name_only=True)
        parser.stream.expect("name:from")
        iterable = parser.parse_expression()
        body = parser.parse_statements(("name:endyield",), drop_needle=True)
        name = target.name if isinstance(target, nodes.Name) else str(target)
        return nodes.CallBlock(
            self.call_method("_yield_support", [nodes.Const(name), iterable]), [], [], body, lineno=lineno
        )

    def _yield_support(self, name: str, iterable: Iterable[Any], caller: Callable[[], str]) -> str:
        context = yield_context()
        if context.name is not None or context.iterable is not None:
            raise MultipleYieldTags(
                f"Only one yield tag is allowed per path name (a yield of '{context.name}' is already in this name)."
            )
        context.name = name
        context.iterable = iterable
        try:
            return caller()
        except UndefinedError:
            return ""
