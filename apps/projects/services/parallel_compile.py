"""Compiling the Jinja sources of a large template on several cores.

The first generation of a template version compiles every file (Jinja's lexer, parser,
code generator and Python's `compile`: ~3 ms per 2 KB file here), which is pure CPU
work under the GIL. When there are at least `KILN_PARALLEL_COMPILE_MIN_FILES` sources,
the calling process compiles one share itself while `KILN_COMPILE_PROCESSES - 1` helper
processes compile the others and send back marshalled code.

A helper is a fresh interpreter running this module (`python -m ...`), fed the sources
on stdin and answering on stdout; it imports only Jinja and `core.sandbox`. Plain
subprocesses rather than `multiprocessing`: they work inside Celery's (daemonic) pool
processes and never fork a process that holds threads or connections. Nothing a helper
returns is trusted beyond being code for a name that was asked: a helper that fails,
hangs past the render time limit or answers garbage only means the caller compiles that
share itself, which also raises the exact syntax error the sequential path would.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import CodeType

from core.exceptions import ApplicationError

logger = logging.getLogger("kiln.generation")

Source = tuple[str, str]  # (template-internal name, source text)
_ROOT = Path(__file__).resolve().parents[3]  # where `apps` and `core` are importable


def compile_sources(items: Sequence[Source]) -> list[tuple[str, bytes | None]]:
    """Compile each source in the same sandbox environment as the generator (helper side)."""
    from core.sandbox import make_environment

    env = make_environment()
    out: list[tuple[str, bytes | None]] = []
    for name, source in items:
        try:
            out.append((name, marshal.dumps(env.compile(source, name, name))))
        except Exception:  # the caller compiles it again and reports the error precisely
            out.append((name, None))
    return out


def helper_command() -> list[str]:
    return [sys.executable, "-m", __name__]


class _Helper:
    """One helper process compiling one share; `result()` is {} when anything went wrong.

    The process is started first (`_Helper(timeout)`) and given its share later (`send`), so
    it can boot while the caller is still reading the template.
    """

    def __init__(self, timeout: float) -> None:
        self.names: set[str] = set()
        self.timeout = timeout
        self.output: bytes | None = None
        self.expired = False
        self.thread: threading.Thread | None = None
        self.proc = subprocess.Popen(
            helper_command(),
            cwd=_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

    def send(self, share: Sequence[Source]) -> None:
        self.names = {name for name, _ in share}
        self.thread = threading.Thread(target=self._talk, args=(marshal.dumps(list(share)),), daemon=True)
        self.thread.start()

    def _talk(self, data: bytes) -> None:
        # One blocking write and one blocking read, not `communicate()`: the GIL is released for
        # the whole transfer, whereas communicate's 4 KB select loop needs the GIL for every
        # chunk and, next to this process's own compiling thread, fed the helper its share at
        # a few KB per GIL switch interval (seconds for a 1,000-file template).
        watchdog = threading.Timer(self.timeout, self._expire)
        watchdog.start()
        try:
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.proc.stdin.write(data)
            self.proc.stdin.close()
            out = self.proc.stdout.read()
            returncode = self.proc.wait()
        except (OSError, ValueError) as exc:
            logger.warning("template compile helper failed (%s); compiling its share here", exc)
            self.kill()
            return
        finally:
            watchdog.cancel()
        if self.expired:
            logger.warning("template compile helper ran past %.0fs; compiling its share here", self.timeout)
        elif returncode == 0:
            self.output = out

    def _expire(self) -> None:
        self.expired = True
        with contextlib.suppress(OSError):
            self.proc.kill()

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.communicate(timeout=5)

    def result(self) -> dict[str, CodeType]:
        if self.thread is not None:
            self.thread.join()
        delivered: dict[str, CodeType] = {}
        if self.output is None:
            return delivered
        try:
            answer = marshal.loads(self.output)  # noqa: S302 - our own helper's answer on a private pipe
            for name, raw in answer:
                if name in self.names and isinstance(raw, bytes):
                    code = marshal.loads(raw)  # noqa: S302 - same
                    if isinstance(code, CodeType):
                        delivered[name] = code
        except (ValueError, EOFError, TypeError) as exc:
            logger.warning("template compile helper answered garbage (%s); compiling its share here", exc)
            return {}
        return delivered


class CompileHelpers:
    """Helper processes started ahead of the work; the ones never given a share are stopped on exit.

    A cold template's files are read, sniffed and their paths compiled before any content is
    compiled; starting the helpers first hides their start-up (an interpreter plus Jinja,
    ~0.1 s) behind that work instead of adding it to the helpers' share.
    """

    def __init__(self, count: int, *, timeout: float) -> None:
        self.timeout = timeout
        self.refill = False  # set while more batches will follow: taken helpers are replaced at once
        self._spare: list[_Helper] = []
        self._start(count)

    def _start(self, count: int) -> None:
        try:
            for _ in range(count):
                self._spare.append(_Helper(self.timeout))
        except OSError as exc:  # no processes available: compile_many falls back to this process
            logger.warning("template compile helpers unavailable (%s); compiling here", exc)

    def take(self, count: int) -> list[_Helper]:
        taken, self._spare = self._spare[:count], self._spare[count:]
        if self.refill and taken:
            self._start(len(taken))  # the next batch's helpers boot while this one compiles
        return taken

    def __enter__(self) -> CompileHelpers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for helper in self._spare:
            helper.kill()
        self._spare = []


def compile_many(
    items: Sequence[Source],
    compile_one: Callable[[str, str], CodeType],
    *,
    processes: int,
    timeout: float = 300,
    started: CompileHelpers | None = None,
) -> dict[str, CodeType]:
    """Compile every source; with `processes` > 1 the work is shared with helper processes.

    `compile_one(name, source)` is the caller's own compiler (and error reporter); it runs for
    the caller's share and for anything a helper could not deliver, in the original order,
    so the first syntax error raised is the one a sequential compile would raise. Helpers
    already running in `started` are used before new ones are spawned.
    """
    results: dict[str, CodeType] = {}
    helpers: list[_Helper] = []
    own: Sequence[Source] = items
    if processes > 1 and len(items) > 1:
        shares = [list(items[i::processes]) for i in range(processes)]
        own = shares[0]
        wanted = [share for share in shares[1:] if share]
        helpers = started.take(len(wanted)) if started is not None else []
        try:
            while len(helpers) < len(wanted):
                helpers.append(_Helper(timeout))
        except OSError as exc:  # no more processes: this process compiles the shares left over
            logger.warning("template compile helpers unavailable (%s); compiling here", exc)
        for helper, share in zip(helpers, wanted, strict=False):
            helper.send(share)
        for share in wanted[len(helpers) :]:
            own = [*own, *share]
    delivered: dict[str, CodeType] = {}
    try:
        for name, source in own:
            with contextlib.suppress(ApplicationError):  # raised again below, in file order
                results[name] = compile_one(name, source)
        for helper in helpers:
            delivered.update(helper.result())
    finally:
        for helper in helpers:
            if helper.proc.poll() is None:
                helper.kill()
    for name, source in items:
        if name not in results:
            code = delivered.get(name)
            results[name] = code if code is not None else compile_one(name, source)
    return results


def _main() -> None:
    items = marshal.loads(sys.stdin.buffer.read())  # noqa: S302 - from the parent process, see above
    sys.stdout.buffer.write(marshal.dumps(compile_sources(items)))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    _main()
