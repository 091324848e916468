"""Compiling the Jinja sources of a large template on several cores.

The first generation of a template version compiles every file (Jinja's lexer, parser,
code generator and Python's `compile`: ~3 ms per 2 KB file here), which is pure CPU
work under the GIL. When there are at least `KILN_PARALLEL_COMPILE_MIN_FILES` sources,
the calling process compiles one share itself while `KILN_COMPILE_PROCESSES - 1` helper
processes compile the others and send back marshalled code.

Helpers are started with `spawn` (a fresh interpreter importing only Jinja and
`core.sandbox`), never `fork`, so it is safe from inside a Celery worker or a threaded
web server. Sources go to the helpers by value; nothing they return is trusted beyond
being code for the name that was asked: a helper that fails, dies or returns something
else only means the caller compiles that source itself, which also raises the exact
syntax error the sequential path would.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from types import CodeType

from core.exceptions import ApplicationError

logger = logging.getLogger("kiln.generation")

Source = tuple[str, str]  # (template-internal name, source text)


def _compile_share(items: Sequence[Source]) -> list[tuple[str, bytes | None]]:
    """In a helper process: compile each source in the same sandbox environment as the caller."""
    from core.sandbox import make_environment

    env = make_environment()
    out: list[tuple[str, bytes | None]] = []
    for name, source in items:
        try:
            out.append((name, marshal.dumps(env.compile(source, name, name))))
        except Exception:  # the caller compiles it again and reports the error precisely
            out.append((name, None))
    return out


def compile_many(
    items: Sequence[Source], compile_one: Callable[[str, str], CodeType], *, processes: int
) -> dict[str, CodeType]:
    """Compile every source; with `processes` > 1 the work is shared with helper processes.

    `compile_one(name, source)` is the caller's own compiler (and error reporter); it runs for
    the caller's share and for anything a helper could not deliver, in the original order,
    so the first syntax error raised is the one a sequential compile would raise.
    """
    results: dict[str, CodeType] = {}
    if processes <= 1 or len(items) < 2:
        for name, source in items:
            results[name] = compile_one(name, source)
        return results

    shares = [list(items[i::processes]) for i in range(processes)]
    own, others = shares[0], [share for share in shares[1:] if share]
    delivered: dict[str, CodeType] = {}
    context = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(max_workers=len(others), mp_context=context) as pool:
            futures = [pool.submit(_compile_share, share) for share in others]
            for name, source in own:
                with contextlib.suppress(ApplicationError):  # raised again below, in file order
                    results[name] = compile_one(name, source)
            for future in futures:
                try:
                    for name, raw in future.result():
                        if raw is None:
                            continue
                        code = marshal.loads(raw)  # noqa: S302 - code our own helper just compiled
                        if isinstance(code, CodeType):
                            delivered[name] = code
                except Exception as exc:  # a helper died or could not start: compile its share here
                    logger.warning("parallel template compile helper failed (%s); compiling here", exc)
    except OSError as exc:  # no processes available: compile everything here
        logger.warning("parallel template compile unavailable (%s); compiling here", exc)
    for name, source in items:
        if name not in results:
            code = delivered.get(name)
            results[name] = code if code is not None else compile_one(name, source)
    return results
