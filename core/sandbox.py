"""The Jinja2 environment every user-supplied template renders in.

`ImmutableSandboxedEnvironment` blocks attribute escapes and mutation; on top of it Kiln
caps what a small template can make the process allocate or how long it may run (the
sandbox alone does not, see reference/reliability.md § 0.3). Every operation that can
make a value bigger than its inputs is checked *before* it runs against the per-value
limit (`render_limits(max_bytes=...)`):

* binary operators: `*` (repetition, and integer products by bits), `**`, `%`
  (format widths) and `+` (string, list and tuple concatenation);
* `~` and the text of `{% set %}...{% endset %}`, macros, `{% call %}` and `{% filter %}`
  blocks (`KilnCodeGenerator` routes `~` to `concat_values`; blocks join through
  `Environment.concat`);
* filters and calls that grow text or lists: `format`, `str.format`/`format_map` (every
  field's width and value), `indent` (width x lines), `center`/`ljust`/`rjust`/`zfill`,
  `expandtabs`, `replace`, `join`, `translate`, `wordwrap` (wrapstring x lines),
  `tojson(indent=...)`, `pprint`, `sum(start=[])`, `batch`/`slice` fill-ups, `urlize`
  attributes; filters and string methods that grow by a constant factor (`upper`,
  `escape`, `urlencode`, ...) are checked on their result.

Turning a value into text goes through `text_of`: strings, numbers, booleans, None and
containers of them become text (containers after their size is measured without building
it); a function, a class, a generator or any other object is refused, so a Python repr (with
its memory address) never reaches the output. `range` is a sized, lazily iterated range that
checks the render deadline; the default `lipsum` global is gone (an allocation bomb whose
output is random). The context handed to a template is a JSON round-trip of plain values.

These checks are the first line. The second is `core.bounded`: renders run in a forked
child under an address-space limit, so an operation missing from this list cannot take
the process that asked for the render down.
"""

from __future__ import annotations

import contextvars
import itertools
import json
import operator
import re
import string
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pprint import pformat
from typing import Any

from jinja2 import StrictUndefined, Undefined, nodes, pass_environment, pass_eval_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.filters import (
    do_batch,
    do_indent,
    do_join,
    do_replace,
    do_tojson,
    do_urlize,
    make_attrgetter,
    sync_do_slice,
)
from jinja2.runtime import markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment, SecurityError, safe_range
from jinja2.utils import Namespace

from core.exceptions import ApplicationError

# Part of the compiled-code store's header (apps/projects/services/code_store.py): code
# compiled by an older KilnCodeGenerator is never loaded.
CODEGEN_VERSION = 2


class RenderLimitExceeded(ApplicationError):
    status_code = 422
    default_code = "output_limit_exceeded"


class RenderTimeExceeded(ApplicationError):
    status_code = 422
    default_code = "render_time_limit"


class NotWritable(ApplicationError):
    """A template tried to write an object that is not data (its text would be a Python repr)."""

    status_code = 422
    default_code = "template_error"


_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("kiln_render_deadline", default=None)
_size_limit: contextvars.ContextVar[int] = contextvars.ContextVar("kiln_render_size_limit", default=10 * 1024 * 1024)

_WIDTH_RE = re.compile(r"\d{6,}")
_DIGITS = re.compile(r"\d+")
_PERCENT_FIELD = re.compile(r"%(?:\(([^)]*)\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%])")
MAX_POWER_EXPONENT = 1000
MAX_POWER_BITS = 100_000
MAX_WIDTH = 99_999
MAX_NESTING = 200  # containers nested deeper than this are not measured (nor written)
MAX_SLICES = 100_000  # like Jinja's MAX_RANGE
ITEM_BYTES = 8  # what one list item costs at least (a pointer): lists hold size_limit / 8 items


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


def size_limit() -> int:
    """The per-value limit of the current render (characters; list items count ITEM_BYTES)."""
    return _size_limit.get()


def _too_big(message: str) -> RenderLimitExceeded:
    return RenderLimitExceeded(message)


def _check_size(length: int) -> None:
    if length > _size_limit.get():
        raise _too_big(f"An expression would create a value of {length} items/characters, above the output size limit.")


def _check_items(count: int) -> None:
    if count * ITEM_BYTES > _size_limit.get():
        raise _too_big(
            f"An expression would create a list of {count} items, above the output size limit "
            f"({_size_limit.get() // ITEM_BYTES} items)."
        )


def _check_result(value: Any) -> Any:
    """After an operation that grows its input by at most a constant factor."""
    if isinstance(value, (str, bytes)):
        _check_size(len(value))
    elif isinstance(value, (list, tuple)):
        _check_items(len(value))
    return value


# --- ranges ------------------------------------------------------------------------------------


class KilnRange:
    """`range()` in templates: Jinja's MAX_RANGE cap, sized and indexable like a range, and
    iterated lazily with a look at the render deadline every 4,096 items (a loop of empty
    loops writes nothing, so the output stream alone would never notice the time)."""

    __slots__ = ("_range",)

    def __init__(self, rng: range) -> None:
        self._range = rng

    def __iter__(self) -> Iterator[int]:
        for index, value in enumerate(self._range):
            if index & 0xFFF == 0:
                check_deadline()
            yield value

    def __reversed__(self) -> Iterator[int]:
        return iter(KilnRange(self._range[::-1]))

    def __len__(self) -> int:
        return len(self._range)

    def __getitem__(self, index: Any) -> Any:
        found = self._range[index]
        return KilnRange(found) if isinstance(found, range) else found

    def __contains__(self, value: object) -> bool:
        return value in self._range

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KilnRange) and self._range == other._range

    def __hash__(self) -> int:
        return hash(self._range)

    def __repr__(self) -> str:
        return repr(self._range)

    @property
    def start(self) -> int:
        return self._range.start

    @property
    def stop(self) -> int:
        return self._range.stop

    @property
    def step(self) -> int:
        return self._range.step


def _guarded_range(*args: int) -> KilnRange:
    return KilnRange(safe_range(*args))


# --- measuring and writing values ----------------------------------------------------------


def _str_cost(text: str) -> int:
    # repr/JSON escape unprintable or non-ASCII characters: at most 12 characters for one
    if text.isascii() and text.isprintable():
        return len(text) + 2
    return len(text) * 12 + 2


def _object_refused(value: Any) -> NotWritable:
    kind = type(value).__name__
    return NotWritable(
        f"A Python {kind} cannot be written as text; templates write strings, numbers, booleans, lists and "
        "mappings only (a filter such as |list or |join turns a sequence into one)."
    )


def _scalar_cost(value: Any) -> int | None:
    """The text size of a scalar (None when `value` is a container or not data)."""
    if isinstance(value, str):
        return _str_cost(value)
    if isinstance(value, bool) or value is None:
        return 5
    if isinstance(value, int):
        return value.bit_length() * 31 // 100 + 2
    if isinstance(value, float):
        return 24
    if isinstance(value, (bytes, bytearray)):
        return len(value) * 4 + 3
    if isinstance(value, (KilnRange, range)):
        return 40
    if isinstance(value, Undefined):
        return 9
    return None


def _children(value: Any) -> tuple[int, list[Any]] | None:
    """(the container's own text size, its parts) for the containers that count as data."""
    if isinstance(value, dict):
        return 2 + 4 * len(value), [part for pair in value.items() for part in pair]
    if isinstance(value, (list, tuple, set, frozenset, type({}.keys()), type({}.values()))):
        return 2 + 2 * len(value), list(value)
    if isinstance(value, type({}.items())):
        pairs: list[tuple[Any, Any]] = list(value)
        return 2 + 6 * len(pairs), [part for pair in pairs for part in pair]
    if isinstance(value, Namespace):
        attrs = object.__getattribute__(value, "_Namespace__attrs")
        return 14 + 4 * len(attrs), [part for pair in attrs.items() for part in pair]
    return None


def measure(value: Any, budget: int | None = None) -> tuple[int, int, int]:
    """(text size, item count, nesting depth) of a plain value, without building its text.

    The size is an upper bound of what `str()`, `repr()` or JSON would make of it (quotes,
    separators and escapes counted). Raises RenderLimitExceeded as soon as the size passes
    `budget` (default: the render's limit), and NotWritable for anything that is not data:
    its text would be a Python repr. A container referenced many times (`[x] * n`) is walked
    once and counted each time it appears, as its text would be.
    """
    limit = _size_limit.get() if budget is None else budget
    known: dict[int, tuple[int, int, int]] = {}
    running = 0

    def walk(current: Any, depth: int) -> tuple[int, int, int]:
        nonlocal running
        cost = _scalar_cost(current)
        if cost is not None:
            running += cost
            found = (cost, 1, 0)
        elif id(current) in known:
            found = known[id(current)]
            running += found[0]
        else:
            parts = _children(current)
            if parts is None:
                raise _object_refused(current)
            if depth >= MAX_NESTING:
                raise _too_big(f"A value is nested more than {MAX_NESTING} levels deep; it cannot be written.")
            own, children = parts
            running += own
            size, items, height = own, 1, 0
            for child in children:
                child_size, child_items, child_height = walk(child, depth + 1)
                size += child_size
                items += child_items
                height = max(height, child_height + 1)
            found = known[id(current)] = (size, items, height)
            return found
        if running > limit:
            raise _too_big(
                f"An expression would create a value of more than {limit} characters, above the output size limit."
            )
        return found

    size, items, height = walk(value, 0)
    if running > limit:
        raise _too_big(
            f"An expression would create a value of more than {limit} characters, above the output size limit."
        )
    return size, items, height


def text_of(value: Any) -> str:
    """The text of a value in the output (`{{ }}`, `~`, |string and the filters that take text)."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (bool, int, float, Undefined)):
        return str(value)
    measure(value)
    return _check_result(str(value))  # type: ignore[no-any-return]


def _finalize(value: Any) -> Any:
    """`{{ value }}`: Jinja then calls str() on what this returns."""
    if type(value) is str:
        return value
    return text_of(value)


def concat_values(values: tuple[Any, ...], autoescape: bool) -> str:
    """`a ~ b ~ c`: every part's text, refused before joining when the result would be too big."""
    if autoescape:
        parts = [value if hasattr(value, "__html__") else text_of(value) for value in values]
        _check_size(sum(len(str(part)) for part in parts))
        return markup_join(parts)
    texts = [value if type(value) is str else text_of(value) for value in values]
    _check_size(sum(map(len, texts)))
    return str_join(texts)


def _guarded_concat(buffer: Iterable[str]) -> str:
    """`Environment.concat`: joins the output of `{% set %}` blocks, macros, call and filter blocks."""
    parts = buffer if isinstance(buffer, list) else list(buffer)
    _check_size(sum(map(len, parts)))
    return "".join(parts)


# --- format strings ------------------------------------------------------------------------------


def _sizes(values: Iterable[Any]) -> list[int]:
    return [measure(value)[0] for value in values]


def _widest_int(values: Iterable[Any]) -> int:
    """The largest width an argument could give a `*` or nested `{w}` field (ints or digit strings)."""
    widest = 0
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool):
            widest = max(widest, abs(value))
        elif isinstance(value, str) and value.strip().lstrip("<>^=+-0").isdigit():
            widest = max(widest, max((int(d) for d in _DIGITS.findall(value)), default=0))
    return widest


def _refuse_wide(widest_field: int) -> None:
    if widest_field > MAX_WIDTH:
        raise _too_big(
            f"Format widths above {MAX_WIDTH} are not allowed: the value would be above the output size limit."
        )


def _percent_bound(template: str, operand: Any) -> int:
    """An upper bound of len(template % operand), checked field by field before formatting."""
    if isinstance(operand, tuple):
        positional, mapping = operand, None
    elif isinstance(operand, dict) and "%(" in template:
        positional, mapping = (), operand
    else:
        positional, mapping = (operand,), None
    star = _widest_int(positional)
    total = len(template)
    fields = 0
    widest_field = 0
    for match in _PERCENT_FIELD.finditer(template):
        if match.group(4) == "%":
            continue
        fields += 1
        for part in (match.group(2), match.group(3)):
            width = star if part == "*" else int(part or 0)
            widest_field = max(widest_field, width)
            total += width
    _refuse_wide(widest_field)
    if mapping is not None:
        return total + fields * max(_sizes(mapping.values()), default=0)
    return total + sum(_sizes(positional))


def _format_bound(template: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """An upper bound of len(template.format(*args, **kwargs)) (or `format_map(args[0])`)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        return len(template)  # str.format raises the same error
    values = [*args, *kwargs.values()]
    if len(args) == 1 and isinstance(args[0], dict) and not kwargs:
        values.extend(args[0].values())  # format_map
    widest = _widest_int(values)
    total = 0
    fields = 0
    auto = True
    widest_field = 0
    for literal, field, spec, _conversion in parsed:
        total += len(literal)
        if field is None:
            continue
        fields += 1
        auto = auto and field == ""
        spec = spec or ""
        widths = [int(digits) for digits in _DIGITS.findall(spec)] + ([widest] if "{" in spec else [])
        widest_field = max([widest_field, *widths])
        total += sum(widths)
    _refuse_wide(widest_field)
    sizes = _sizes(values)
    if auto:  # `{}` fields read the arguments in turn, each once
        return total + sum(sizes)
    return total + fields * max(sizes, default=0)


def _check_bound(bound: int) -> None:
    if bound > _size_limit.get():
        raise _too_big(f"Formatting would create a value of up to {bound} characters, above the output size limit.")


def _guarded_format(value: Any, *args: Any, **kwargs: Any) -> str:
    text = text_of(value)
    if args and kwargs:
        raise SecurityError("format filter takes either positional or keyword arguments, not both")
    operand = kwargs or args
    _check_bound(_percent_bound(text, operand))
    return _check_result(text % operand)  # type: ignore[no-any-return]


# --- filters -----------------------------------------------------------------------------------


def _text_items(items: list[Any]) -> list[str]:
    return [item if type(item) is str else text_of(item) for item in items]


def _guarded_join(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> str:
    items = list(value)
    _check_items(len(items))
    if attribute is not None:
        items = list(map(make_attrgetter(eval_ctx.environment, attribute), items))
    separator = text_of(d)
    if not eval_ctx.autoescape:
        texts = _text_items(items)
        _check_size(sum(map(len, texts)) + len(separator) * max(len(texts) - 1, 0))
        return separator.join(texts)
    for item in items:
        if not hasattr(item, "__html__"):
            text_of(item)
    _check_size(sum(len(str(item)) for item in items) + len(separator) * max(len(items) - 1, 0))
    return _check_result(do_join(eval_ctx, items, separator))  # type: ignore[no-any-return]


def _replace_size(text: str, old: str, new: str, count: int | None) -> int:
    occurrences = len(text) + 1 if old == "" else text.count(old)
    if count is not None and count >= 0:
        occurrences = min(occurrences, count)
    return len(text) + occurrences * (len(new) - len(old))


def _guarded_replace(eval_ctx: Any, s: Any, old: Any, new: Any, count: int | None = None) -> str:
    _check_size(_replace_size(text_of(s), text_of(old), text_of(new), count))
    return do_replace(eval_ctx, s, old, new, count)  # type: ignore[no-any-return]


def _guarded_indent(value: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    text = text_of(value)
    step = len(width) if isinstance(width, str) else max(int(width), 0)
    _check_size(step)
    _check_size(len(text) + step * (text.count("\n") + 1))
    return do_indent(text, width, first, blank)


def _guarded_center(value: Any, width: int = 80) -> str:
    _check_size(width)
    return text_of(value).center(width)


@pass_environment
def _guarded_wordwrap(
    environment: Any,
    s: Any,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    """Jinja's `wordwrap`: each existing line wrapped on its own, the pieces joined by
    `wrapstring`; the lines are counted before they are joined."""
    import textwrap

    text = text_of(s)
    joiner = environment.newline_sequence if wrapstring is None else text_of(wrapstring)
    step = max(int(width), 1)
    # at most one line per word piece of `width` characters, and per existing line break
    pieces = sum(-(-len(word) // step) for word in text.split()) + text.count("\n") + 1
    if len(text) + pieces * len(joiner) > _size_limit.get():  # the real count, then
        lines = 0
        for line in text.splitlines():
            check_deadline()
            lines += max(
                len(
                    textwrap.wrap(
                        line,
                        width=width,
                        expand_tabs=False,
                        replace_whitespace=False,
                        break_long_words=break_long_words,
                        break_on_hyphens=break_on_hyphens,
                    )
                ),
                1,
            )
        _check_size(len(text) + lines * len(joiner))
    wrapped = [
        joiner.join(
            textwrap.wrap(
                line,
                width=width,
                expand_tabs=False,
                replace_whitespace=False,
                break_long_words=break_long_words,
                break_on_hyphens=break_on_hyphens,
            )
        )
        for line in text.splitlines()
    ]
    return _check_result(joiner.join(wrapped))  # type: ignore[no-any-return]


def _indented_bound(value: Any, indent_width: int) -> int:
    size, items, depth = measure(value)
    return size + items * (depth * indent_width + 1)


@pass_eval_context
def _guarded_tojson(eval_ctx: Any, value: Any, indent: int | str | None = None) -> Any:
    width = len(indent) if isinstance(indent, str) else max(int(indent or 0), 0)
    _check_size(width)
    _check_size(_indented_bound(value, width))
    return _check_result(do_tojson(eval_ctx, value, indent))  # type: ignore[arg-type]


def _guarded_pprint(value: Any) -> str:
    _check_size(_indented_bound(value, 1))
    return _check_result(pformat(value))  # type: ignore[no-any-return]


def _guarded_string(value: Any) -> str:
    if hasattr(value, "__html__") and not isinstance(value, str):
        raise _object_refused(value)
    return text_of(value)


@pass_environment
def _guarded_sum(environment: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
    """`sum`; with a list or tuple `start`, a concatenation: counted first, then done in one pass
    (Python's `sum` of lists copies the growing list once per item)."""
    if attribute is not None:
        iterable = map(make_attrgetter(environment, attribute), iterable)
    values = list(iterable)
    if isinstance(start, (list, tuple)):
        kind = type(start)
        for item in values:
            if type(item) is not kind:
                raise TypeError(
                    f'can only concatenate {kind.__name__} (not "{type(item).__name__}") to {kind.__name__}'
                )
        _check_items(len(start) + sum(len(item) for item in values))
        return kind(itertools.chain(start, *values))
    return sum(values, start)


def _guarded_batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
    if fill_with is not None:
        _check_items(int(linecount))
    return do_batch(value, linecount, fill_with)


def _guarded_slice(value: Any, slices: int, fill_with: Any = None) -> Any:
    if int(slices) > MAX_SLICES:
        raise _too_big(f"slice() makes at most {MAX_SLICES} slices in templates.")
    return sync_do_slice(value, slices, fill_with)


@pass_eval_context
def _guarded_urlize(
    eval_ctx: Any,
    value: Any,
    trim_url_limit: int | None = None,
    nofollow: bool = False,
    target: str | None = None,
    rel: str | None = None,
    extra_schemes: Iterable[str] | None = None,
) -> str:
    text = text_of(value)
    attributes = len(text_of(target or "")) + len(text_of(rel or ""))
    _check_size(attributes * (text.count(" ") + text.count("\n") + 1))
    return _check_result(do_urlize(eval_ctx, text, trim_url_limit, nofollow, target, rel, extra_schemes))  # type: ignore[no-any-return]


def _data_position(fn: Callable[..., Any]) -> int:
    """Where a filter's input is: after the context/environment it asks for, if any."""
    return 1 if getattr(fn, "jinja_pass_arg", None) is not None else 0


def _on_text(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that writes its input as text: made text by `text_of` first (no object's repr),
    its result checked (these grow text by a constant factor at most)."""
    position = _data_position(fn)

    def checked(*args: Any, **kwargs: Any) -> Any:
        if len(args) > position and not isinstance(args[position], str):
            if hasattr(args[position], "__html__"):
                raise _object_refused(args[position])
            args = (*args[:position], text_of(args[position]), *args[position + 1 :])
        return _check_result(fn(*args, **kwargs))

    return _like(fn, checked)


def _measured(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A filter whose input may be a container: measured first (objects refused), result checked."""
    position = _data_position(fn)

    def checked(*args: Any, **kwargs: Any) -> Any:
        if len(args) > position and not isinstance(args[position], Iterator):  # a lazy sequence is read by the filter
            measure(args[position])
        return _check_result(fn(*args, **kwargs))

    return _like(fn, checked)


def _like(fn: Callable[..., Any], checked: Callable[..., Any]) -> Callable[..., Any]:
    checked.__name__ = getattr(fn, "__name__", "filter")
    checked.__doc__ = fn.__doc__
    if hasattr(fn, "jinja_pass_arg"):
        checked.jinja_pass_arg = fn.jinja_pass_arg  # type: ignore[attr-defined]
    return checked


_TEXT_FILTERS = ("upper", "lower", "title", "capitalize", "escape", "e", "forceescape", "trim", "striptags")
_MEASURED_FILTERS = ("urlencode", "xmlattr", "list", "truncate")


# --- the environment -----------------------------------------------------------------------


class KilnCodeGenerator(CodeGenerator):
    """Jinja's code generator with `~` going through `environment.concat_values`, which checks
    the size (and refuses objects) before anything is joined."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:  # noqa: N802 - Jinja's visitor name
        volatile = frame.eval_ctx.volatile
        autoescape = "context.eval_ctx.autoescape" if volatile else repr(bool(frame.eval_ctx.autoescape))
        self.write("environment.concat_values((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write(f"), {autoescape})")


_STR_GROWERS = frozenset({"center", "ljust", "rjust", "zfill"})


class KilnSandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%", "+"})
    code_generator_class = KilnCodeGenerator
    concat = staticmethod(_guarded_concat)  # type: ignore[assignment]
    concat_values = staticmethod(concat_values)

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "+":
            if isinstance(left, (str, bytes)) and isinstance(right, (str, bytes)):
                _check_size(len(left) + len(right))
            elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
                _check_items(len(left) + len(right))
            return operator.add(left, right)
        if operator_name == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(count, int) and not isinstance(count, bool):
                    if isinstance(seq, (str, bytes)):
                        _check_size(len(seq) * max(count, 0))
                    elif isinstance(seq, (list, tuple)):
                        _check_items(len(seq) * max(count, 0))
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and left.bit_length() + right.bit_length() > MAX_POWER_BITS
            ):
                raise _too_big(f"Products above {MAX_POWER_BITS} bits are not allowed in templates.")
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
            if isinstance(left, (str, bytes)):
                text = left if isinstance(left, str) else left.decode("latin-1")
                _check_bound(_percent_bound(text, right))
                return _check_result(operator.mod(left, right))
            return operator.mod(left, right)
        return super().call_binop(context, operator_name, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        check_deadline()  # recursive macros loop without `range`: every call looks at the clock
        owner = getattr(__obj, "__self__", None)
        if not isinstance(owner, (str, bytes, bytearray)):
            return super().call(__context, __obj, *args, **kwargs)
        name = getattr(__obj, "__name__", "")
        if name in _STR_GROWERS:
            for arg in (*args, *kwargs.values()):
                if isinstance(arg, int):
                    _check_size(arg)
        elif name == "expandtabs":
            tabsize = next(iter((*args, *kwargs.values())), 8)
            if isinstance(tabsize, int):
                tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
                _check_size(len(owner) + tabs * max(tabsize, 0))
        elif name == "replace" and len(args) >= 2:
            count = args[2] if len(args) > 2 and isinstance(args[2], int) else None
            if isinstance(owner, str) and isinstance(args[0], str) and isinstance(args[1], str):
                _check_size(_replace_size(owner, args[0], args[1], count))
            elif (
                not isinstance(owner, str)
                and isinstance(args[0], (bytes, bytearray))
                and isinstance(args[1], (bytes, bytearray))
            ):
                occurrences = len(owner) + 1 if not args[0] else owner.count(args[0])
                _check_size(len(owner) + occurrences * max(len(args[1]) - len(args[0]), 0))
        elif name == "join" and args:
            items = args[0]
            if hasattr(items, "__len__"):
                _check_items(len(items))
            if isinstance(items, (str, bytes)):
                _check_size(len(items) + len(owner) * max(len(items) - 1, 0))
            else:
                items = items if isinstance(items, (list, tuple)) else list(items)
                _check_items(len(items))
                sizes = sum(len(item) for item in items if isinstance(item, (str, bytes, bytearray)))
                _check_size(sizes + len(owner) * max(len(items) - 1, 0))
                args = (items, *args[1:])
        elif name == "translate" and args and isinstance(owner, str) and isinstance(args[0], dict):
            _check_size(_translated_size(owner, args[0]))
        return _check_result(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template = value.__self__

        def guarded(*args: Any, **kwargs: Any) -> str:
            _check_bound(_format_bound(template, args, kwargs))
            return _check_result(wrapped(*args, **kwargs))  # type: ignore[no-any-return]

        return guarded


def _translated_size(text: str, table: dict[Any, Any]) -> int:
    longest = max((len(v) for v in table.values() if isinstance(v, str)), default=1)
    if len(text) * longest <= _size_limit.get():
        return len(text)  # whatever it maps to, it fits
    total = 0
    for char, count in Counter(text).items():
        replacement = table.get(ord(char), char)
        total += count * (len(replacement) if isinstance(replacement, str) else int(replacement is not None))
    return total


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
    own = settings.get("finalize")
    settings["finalize"] = _finalize if own is None else (lambda value: _finalize(own(value)))
    env = (KilnMutableSandbox if mutable else KilnSandbox)(**settings)
    env.globals.pop("lipsum", None)  # an allocation bomb (lipsum(10**9)) whose output is random
    env.globals["range"] = _guarded_range
    env.filters["format"] = _guarded_format
    env.filters["indent"] = _guarded_indent
    env.filters["center"] = _guarded_center
    env.filters["join"] = pass_eval_context(_guarded_join)
    env.filters["replace"] = pass_eval_context(_guarded_replace)
    env.filters["wordwrap"] = _guarded_wordwrap
    env.filters["tojson"] = _guarded_tojson
    env.filters["pprint"] = _guarded_pprint
    env.filters["string"] = _guarded_string
    env.filters["sum"] = _guarded_sum
    env.filters["batch"] = _guarded_batch
    env.filters["slice"] = _guarded_slice
    env.filters["urlize"] = _guarded_urlize
    for name in _TEXT_FILTERS:
        env.filters[name] = _on_text(env.filters[name])
    for name in _MEASURED_FILTERS:
        env.filters[name] = _measured(env.filters[name])
    return env


def plain_context(values: Any) -> Any:
    """A JSON round-trip: only str, int, float, bool, None, list and dict survive."""
    return json.loads(json.dumps(values))


__all__ = [
    "CODEGEN_VERSION",
    "KilnMutableSandbox",
    "KilnRange",
    "KilnSandbox",
    "NotWritable",
    "RenderLimitExceeded",
    "RenderTimeExceeded",
    "check_deadline",
    "make_environment",
    "measure",
    "plain_context",
    "render_limits",
    "size_limit",
    "text_of",
]
