"""The Jinja2 environment every user-supplied template renders in.

`ImmutableSandboxedEnvironment` blocks attribute escapes and mutation; on top of it
Kiln caps what a small template can make the process allocate or how long it may run
(the sandbox alone does not, see reference/reliability.md § 0.3): string and list
repetition, powers, padding methods and format widths are checked before they run,
and `range` checks the render deadline while it iterates. The context handed to a
template is a JSON round-trip of plain values, so no object with methods reaches it.
"""

from __future__ import annotations

import contextvars
import itertools
import json
import operator
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from jinja2 import StrictUndefined, pass_eval_context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment, SecurityError, safe_range

from core.exceptions import ApplicationError


class RenderLimitExceeded(ApplicationError):
    status_code = 422
    default_code = "output_limit_exceeded"


class RenderTimeExceeded(ApplicationError):
    status_code = 422
    default_code = "render_time_limit"


_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("kiln_render_deadline", default=None)
_size_limit: contextvars.ContextVar[int] = contextvars.ContextVar("kiln_render_size_limit", default=10 * 1024 * 1024)

_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
_WIDTH_RE = re.compile(r"\d{6,}")
MAX_POWER_EXPONENT = 1000
MAX_POWER_BITS = 100_000
MAX_WIDTH = 99_999


def check_deadline() -> None:
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() > deadline:
        raise RenderTimeExceeded("Rendering took longer than the render time limit.")


class render_limits:  # noqa: N801 - used as a context manager like a function
    """Set the deadline and per-value size cap for renders in this context."""

    def __init__(self, *, seconds: float, max_bytes: int) -> None:
        self.seconds = seconds
        self.max_bytes = max_bytes
        self._tokens: list[contextvars.Token[Any]] = []

    def __enter__(self) -> render_limits:
        self._tokens = [_deadline.set(time.monotonic() + self.seconds), _size_limit.set(self.max_bytes)]
        return self

    def __exit__(self, *exc: object) -> None:
        _size_limit.reset(self._tokens[1])
        _deadline.reset(self._tokens[0])


def _guarded_range(*args: int) -> Iterator[int]:
    rng = safe_range(*args)
    for index, value in enumerate(rng):
        if index & 0xFFF == 0:
            check_deadline()
        yield value


def _too_big(message: str) -> RenderLimitExceeded:
    return RenderLimitExceeded(message)


def _check_size(length: int) -> None:
    if length > _size_limit.get():
        raise _too_big(f"An expression would create a value of {length} items/characters, above the output size limit.")


def _flat(values: Any) -> Iterator[Any]:
    """Every scalar in format arguments (positional, keyword, mapping values, nested once)."""
    for value in values:
        if isinstance(value, dict):
            yield from value.values()
        elif isinstance(value, (list, tuple)):
            yield from value
        else:
            yield value


def _check_format(template: str, args: Any) -> None:
    """Refuse format strings or arguments that would pad a value past the limits.

    Widths and precisions can sit in the format string, come from `*` arguments
    (`'%*d' % (n, 1)`) or from nested fields (`'{:{w}}'.format(1, w=n)`), as numbers or as
    digit strings; any of them above MAX_WIDTH is refused before formatting.
    """
    if _WIDTH_RE.search(template):
        raise _too_big(
            f"Format widths above {MAX_WIDTH} are not allowed: the value would be above the output size limit."
        )
    for value in _flat(args):
        if isinstance(value, bool):
            continue
        if isinstance(value, int) and abs(value) > MAX_WIDTH and ("*" in template or "{" in template):
            raise _too_big(
                f"Format widths above {MAX_WIDTH} are not allowed: the value would be above the output size limit."
            )
        if isinstance(value, str) and value.strip().lstrip("<>^=+-0").isdigit() and _WIDTH_RE.search(value):
            raise _too_big(
                f"Format widths above {MAX_WIDTH} are not allowed: the value would be above the output size limit."
            )


def _guarded_format(value: Any, *args: Any, **kwargs: Any) -> str:
    text = str(value)
    if args and kwargs:
        raise SecurityError("format filter takes either positional or keyword arguments, not both")
    _check_format(text, [*args, kwargs])
    return text % (kwargs or args)


def _joined_size(items: list[Any], separator: str) -> int:
    return sum(len(item) if isinstance(item, str) else len(str(item)) for item in items) + len(separator) * max(
        len(items) - 1, 0
    )


def _guarded_join(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> str:
    from jinja2.filters import do_join

    items = list(value)
    _check_size(len(items) * len(str(d)))
    if attribute is None:
        _check_size(_joined_size(items, str(d)))
    result = do_join(eval_ctx, items, d, attribute)
    _check_size(len(result))
    return result


def _replace_size(text: str, old: str, new: str, count: int | None) -> int:
    occurrences = len(text) + 1 if old == "" else text.count(old)
    if count is not None and count >= 0:
        occurrences = min(occurrences, count)
    return len(text) + occurrences * (len(new) - len(old))


def _guarded_replace(eval_ctx: Any, s: Any, old: Any, new: Any, count: int | None = None) -> str:
    from jinja2.filters import do_replace

    _check_size(_replace_size(str(s), str(old), str(new), count))
    return do_replace(eval_ctx, s, old, new, count)  # type: ignore[no-any-return]


class KilnSandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple, bytes)) and isinstance(count, int):
                    _check_size(len(seq) * max(count, 0))
            return operator.mul(left, right)
        if operator_name == "**":
            if isinstance(right, int) and abs(right) > MAX_POWER_EXPONENT:
                raise _too_big(f"Exponents above {MAX_POWER_EXPONENT} are not allowed in templates.")
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and right > 0
                and left.bit_length() * right > MAX_POWER_BITS
            ):
                raise _too_big(
                    f"Exponents above this size are not allowed: the power would have more than {MAX_POWER_BITS} bits."
                )
            return operator.pow(left, right)
        if operator_name == "%":
            if isinstance(left, str):
                _check_format(left, [right])
            return operator.mod(left, right)
        return super().call_binop(context, operator_name, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        name = getattr(__obj, "__name__", "")
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            if name in _PADDING_METHODS:
                for arg in (*args, *kwargs.values()):
                    if isinstance(arg, int):
                        _check_size(arg)
            elif name == "replace" and len(args) >= 2:
                count = args[2] if len(args) > 2 and isinstance(args[2], int) else None
                _check_size(_replace_size(owner, str(args[0]), str(args[1]), count))
            elif name == "join" and args and isinstance(args[0], (list, tuple)):
                _check_size(_joined_size(list(args[0]), owner))
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        if _WIDTH_RE.search(value.__self__):
            raise _too_big("Format widths above 99999 are not allowed in templates.")

        def guarded(*args: Any, **kwargs: Any) -> str:
            _check_format(value.__self__, [*args, kwargs])
            return wrapped(*args, **kwargs)

        return guarded


def _guarded_indent(value: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    from jinja2.filters import do_indent

    if isinstance(width, int):
        _check_size(width)
    elif isinstance(width, str):
        _check_size(len(width))
    return do_indent(value, width, first, blank)


def _guarded_center(value: str, width: int = 80) -> str:
    _check_size(width)
    return str(value).center(width)


_GROW_BY_ONE = frozenset({"append", "insert", "add", "setdefault"})
_GROW_BY_ARGS = frozenset({"extend", "update"})


class KilnMutableSandbox(KilnSandbox):
    """The sandbox for Cookiecutter and Copier templates, which render in Jinja's (mutable)
    `SandboxedEnvironment`: their templates may change the lists and dicts of their own render
    context (`{% set _ = items.append(x) %}`, cookiecutter-django's hook updates `cookiecutter`).
    Everything else is Kiln's sandbox; a call that would grow a container past the size limit is
    refused before it runs, and every mutation checks the render deadline."""

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return SandboxedEnvironment.is_safe_attribute(self, obj, attr, value)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, (list, dict, set)):
            name = getattr(__obj, "__name__", "")
            if name in _GROW_BY_ONE:
                _check_size(len(owner) + 1)
            elif name in _GROW_BY_ARGS:
                sized = []
                for arg in args:
                    if not hasattr(arg, "__len__"):
                        arg = list(itertools.islice(arg, _size_limit.get() + 1))
                    sized.append(arg)
                    _check_size(len(owner) + len(arg) + len(kwargs))
                args = tuple(sized)
            check_deadline()
        return super().call(__context, __obj, *args, **kwargs)


def make_environment(*, mutable: bool = False, **options: Any) -> KilnSandbox:
    """Kiln's sandbox; `options` are Jinja environment options (a foreign format may set its
    tool's own, e.g. Copier's lenient `Undefined` or custom delimiters); `mutable` for the formats
    whose tools let templates change their own context (see `KilnMutableSandbox`)."""
    settings: dict[str, Any] = {
        "undefined": StrictUndefined,
        "autoescape": False,
        "keep_trailing_newline": True,
        "auto_reload": False,
    }
    settings.update(options)
    env = (KilnMutableSandbox if mutable else KilnSandbox)(**settings)
    env.globals["range"] = _guarded_range
    env.filters["format"] = _guarded_format
    env.filters["indent"] = _guarded_indent
    env.filters["center"] = _guarded_center
    env.filters["join"] = pass_eval_context(_guarded_join)
    env.filters["replace"] = pass_eval_context(_guarded_replace)
    return env


def plain_context(values: Any) -> Any:
    """A JSON round-trip: only str, int, float, bool, None, list and dict survive."""
    return json.loads(json.dumps(values))
