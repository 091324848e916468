"""Run a piece of template work in a forked child under hard memory and time limits.

The sandbox (`core.sandbox`) refuses every operation it knows can grow a value past the
render limits. This module is what holds when that list misses one: the work runs in a
child process forked from the caller (a Celery pool process, a web worker, the CLI), so
it starts with everything the caller prepared (compiled templates, the context) at no
cost, and the child

* gets an address-space limit (`RLIMIT_AS`) of its size at the fork plus
  `memory` bytes: an allocation past it fails with MemoryError in the child, which then
  reports `limit_exceeded`, or the child dies; either way the caller only reads a coded
  error and goes on (the child may first reuse heap the caller had freed before the fork,
  so it never holds more than the caller's own peak plus `memory`);
* is killed when it runs past `seconds` (plus a grace period for it to report its own,
  more precise, time-limit error), and has an `RLIMIT_CPU` backstop should the caller
  itself disappear;
* talks to the caller over a pipe in frames of a JSON header plus raw bytes (no pickle),
  so the caller can stream files, progress and the result while it waits.

The child never touches the caller's database or broker connections, never runs the
caller's exception handlers or exit hooks (it leaves with `os._exit`), and starts with
the signal handlers of Celery or the web server reset. Where `fork` or `/proc` is
missing the work runs in the calling process, as it did before these limits existed.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import mmap
import os
import resource
import select
import signal
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from core.exceptions import ApplicationError

logger = logging.getLogger("kiln.bounded")

_FRAME = struct.Struct("<II")  # header length, payload length
_MAX_HEADER = 256 * 1024 * 1024
_FLUSH_BYTES = 256 * 1024
_GRACE_SECONDS = 2.0  # at most: the child's own, more precise, time-limit error comes first
_OUT_OF_MEMORY_EXIT = 3
_RESET_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGCHLD", "SIGPIPE")


def _grace(seconds: float) -> float:
    return max(0.25, min(_GRACE_SECONDS, seconds / 4))


def available() -> bool:
    """Whether work can run in a bounded child here (Linux: fork, setrlimit, /proc)."""
    return hasattr(os, "fork") and os.path.exists("/proc/self/statm")


class Channel:
    """The child's end of the pipe: `send(header, payload)`, plus a shared word for `at`.

    Frames are gathered and written in blocks of _FLUSH_BYTES (a thousand small files are a
    few writes, not a thousand wake-ups of the caller); `urgent` frames (progress, the
    answer) are written at once.
    """

    def __init__(self, fd: int, where: mmap.mmap) -> None:
        self._fd = fd
        self._where = where
        self._buffer: list[bytes] = []
        self._buffered = 0

    def send(self, header: dict[str, Any], payload: bytes = b"", *, urgent: bool = False) -> None:
        data = json.dumps(header, ensure_ascii=True, separators=(",", ":")).encode("ascii")
        self._buffer.append(_FRAME.pack(len(data), len(payload)) + data)
        if payload:
            self._buffer.append(payload)
        self._buffered += _FRAME.size + len(data) + len(payload)
        if urgent or self._buffered >= _FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        frame = memoryview(b"".join(self._buffer))
        self._buffer, self._buffered = [], 0
        while frame:
            written = os.write(self._fd, frame)
            frame = frame[written:]

    def at(self, index: int) -> None:
        """Record which item the work is on (read by the caller if the child dies or hangs)."""
        struct.pack_into("<q", self._where, 0, index)


class Failure:
    """Why a child ended without an answer: `memory` (out of memory), `time` (ran too long)
    or `crash` (anything else), and the last item it reported being on (-1: none)."""

    def __init__(self, kind: str, index: int, detail: str = "") -> None:
        self.kind = kind
        self.index = index
        self.detail = detail


def run_bounded(
    work: Callable[[Channel], Any],
    *,
    memory: int,
    seconds: float,
    on_message: Callable[[dict[str, Any], bytes], None] | None = None,
    on_failure: Callable[[Failure], BaseException],
    error_class: type[ApplicationError] = ApplicationError,
) -> Any:
    """Run `work(channel)` in a bounded child and return its (JSON) result.

    `on_message` receives what the child `send`s; an exception it raises (cancellation)
    stops the child. An ApplicationError raised in the child is raised here as
    `error_class` with the same code, message and extra; an OSError as an OSError; running
    out of memory, out of time or dying otherwise is turned into an exception by
    `on_failure`. With `memory` 0 (or where `available()` is false) `work` runs here.
    """
    if memory <= 0 or not available():
        return work(LocalChannel(on_message))
    read_fd, write_fd = os.pipe()
    where = mmap.mmap(-1, 8)
    struct.pack_into("<q", where, 0, -1)
    gc.freeze()  # the child does not walk (and copy) the caller's objects when it collects
    try:
        pid = os.fork()
    except OSError:
        gc.unfreeze()
        os.close(read_fd)
        os.close(write_fd)
        where.close()
        raise
    if pid == 0:  # pragma: no cover - the child; its outcome is what the tests check
        os.close(read_fd)
        _child(work, Channel(write_fd, where), memory=memory, seconds=seconds)
    gc.unfreeze()
    os.close(write_fd)
    try:
        return _parent(pid, read_fd, where, seconds, on_message, on_failure, error_class)
    finally:
        with contextlib.suppress(OSError):
            os.close(read_fd)
        where.close()


class LocalChannel(Channel):
    """`work` in the calling process: messages go straight to `on_message`."""

    def __init__(self, on_message: Callable[[dict[str, Any], bytes], None] | None) -> None:
        self._on_message = on_message

    def send(self, header: dict[str, Any], payload: bytes = b"", *, urgent: bool = False) -> None:
        if self._on_message is not None and header.get("t") not in ("ok",):
            self._on_message(header, payload)

    def flush(self) -> None:
        return None

    def at(self, index: int) -> None:
        return None


def _address_space() -> int:
    with open("/proc/self/statm", "rb") as handle:
        pages = int(handle.read().split()[0])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _child(work: Callable[[Channel], Any], channel: Channel, *, memory: int, seconds: float) -> None:
    code = 1
    try:
        for name in _RESET_SIGNALS:
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), signal.SIG_DFL)
        signal.setitimer(signal.ITIMER_REAL, 0)
        limit = _address_space() + memory
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        cpu = int(seconds + _grace(seconds)) + 2
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        try:
            result = work(channel)
        except MemoryError:
            code = _OUT_OF_MEMORY_EXIT
            channel.send({"t": "memory"}, urgent=True)
        except ApplicationError as exc:
            channel.send(
                {"t": "error", "code": exc.code, "message": exc.message, "extra": exc.extra, "status": exc.status_code},
                urgent=True,
            )
            code = 0
        except OSError as exc:
            channel.send({"t": "oserror", "errno": exc.errno, "strerror": exc.strerror or str(exc)}, urgent=True)
            code = 0
        except BaseException as exc:  # a bug: reported, the caller decides
            channel.send({"t": "crash", "detail": f"{type(exc).__name__}: {exc}"[:2000]}, urgent=True)
            code = 0
        else:
            channel.send({"t": "ok", "value": result}, urgent=True)
            code = 0
    except MemoryError:
        code = _OUT_OF_MEMORY_EXIT
    except BaseException:
        code = 1
    finally:
        os._exit(code)


class _Reader:
    """The caller's end: reads what is there (up to 1 MiB at a time) and cuts frames from it."""

    def __init__(self, fd: int, deadline: float) -> None:
        self.fd = fd
        self.deadline = deadline
        self.buffer = bytearray()

    def take(self, size: int) -> bytes | None:
        """`size` bytes; None at the end of the stream; TimeoutError past the deadline."""
        while len(self.buffer) < size:
            timeout = self.deadline - time.monotonic()
            if timeout <= 0:
                raise TimeoutError
            ready, _, _ = select.select([self.fd], [], [], timeout)
            if not ready:
                continue
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                return None
            self.buffer += chunk
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data


def _parent(
    pid: int,
    fd: int,
    where: mmap.mmap,
    seconds: float,
    on_message: Callable[[dict[str, Any], bytes], None] | None,
    on_failure: Callable[[Failure], BaseException],
    error_class: type[ApplicationError],
) -> Any:
    deadline = time.monotonic() + seconds + _grace(seconds)
    answer: dict[str, Any] | None = None
    reaped = False
    reader = _Reader(fd, deadline)
    try:
        while True:
            try:
                head = reader.take(_FRAME.size)
                if head is None:
                    break
                header_size, payload_size = _FRAME.unpack(head)
                if header_size > _MAX_HEADER:
                    raise ValueError("frame header too large")
                raw = reader.take(header_size)
                payload = reader.take(payload_size) if payload_size else b""
            except TimeoutError:
                index = struct.unpack_from("<q", where, 0)[0]
                _kill(pid)
                reaped = True
                raise on_failure(Failure("time", index)) from None
            if raw is None or payload is None:
                break
            header = json.loads(raw)
            kind = header.get("t")
            if kind in ("ok", "error", "oserror", "crash", "memory"):
                answer = header  # always the last frame: no need to wait for the child to unmap itself
                break
            if on_message is not None:
                on_message(header, payload)
        if answer is None:
            status = _wait(pid)
        else:
            status = 0
            _reap_later(pid)
        reaped = True
    finally:
        if not reaped:  # cancelled, a soft time limit, a bad frame: the child must not outlive us
            _kill(pid)
    index = struct.unpack_from("<q", where, 0)[0]
    if answer is None or answer["t"] == "memory":
        if answer is not None or status in (_OUT_OF_MEMORY_EXIT, -signal.SIGKILL):
            raise on_failure(Failure("memory", index))
        if status == -signal.SIGXCPU:
            raise on_failure(Failure("time", index))
        raise on_failure(Failure("crash", index, f"the render process ended with status {status}"))
    if answer["t"] == "ok":
        return answer.get("value")
    if answer["t"] == "error":
        error = error_class(answer["message"], code=answer["code"], extra=answer.get("extra") or None)
        error.status_code = answer.get("status") or error.status_code
        raise error
    if answer["t"] == "oserror":
        raise OSError(answer.get("errno") or 0, answer.get("strerror") or "I/O error")
    raise on_failure(Failure("crash", index, answer.get("detail", "")))


def _wait(pid: int) -> int:
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            return 0
        return os.waitstatus_to_exitcode(status)


def _reap_later(pid: int) -> None:
    """Collect a child that answered and is exiting, without waiting for it here."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return
    if not done:
        threading.Thread(target=_wait, args=(pid,), name="kiln-render-reaper", daemon=True).start()


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _wait(pid)
