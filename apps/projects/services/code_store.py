"""One file per template version holding the compiled code of all its Jinja sources.

A template of N files used to leave N bytecode-cache files behind (Jinja's
`FileSystemBytecodeCache`): N file creations on the first generation and N opens on
every later one. `CompiledCodeStore` keeps them in a single file instead:

    header   MAGIC, then a marshalled (python cache tag, Jinja version, Kiln code generator
             version) triple
    blobs    marshalled code objects, back to back
    index    marshalled {name: (source digest, offset, length)}
    trailer  8-byte little-endian offset of the index, then MAGIC

A code object is used only when the digest of the source it was compiled from matches
the source being rendered, so an edited file is recompiled even under an unchanged
template checksum. A file that is missing, truncated, from another Python or Jinja, or
otherwise unreadable is treated as empty and rewritten by the next writer; writes go to a
temporary file that replaces the old one atomically, so concurrent workers never read a
half-written store. Like Jinja's bytecode cache, the folder (`KILN_TEMPLATE_CACHE_DIR`)
belongs to Kiln: code is unmarshalled from it, never from user input.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import os
import struct
import sys
import threading
import uuid
import weakref
from pathlib import Path
from types import CodeType, TracebackType
from typing import IO

import jinja2

from core.sandbox import CODEGEN_VERSION

logger = logging.getLogger("kiln.generation")

MAGIC = b"KILNJC1\n"
_TRAILER = struct.Struct("<Q")
_TAG = marshal.dumps((sys.implementation.cache_tag, jinja2.__version__, CODEGEN_VERSION))
_HEADER = MAGIC + _TAG
_Index = dict[str, tuple[str, int, int]]


_OPEN_STORES: weakref.WeakSet[CompiledCodeStore] = weakref.WeakSet()


def _new_locks_after_fork() -> None:
    """A render runs in a forked child (core.bounded): a lock another thread of the parent held
    at the fork would never be released there."""
    for store in list(_OPEN_STORES):
        store._lock = threading.Lock()


os.register_at_fork(after_in_child=_new_locks_after_fork)


class CompiledCodeStore:
    """Read side: look code up by template-internal name and source digest.

    With `in_memory` the whole file is read once (small templates: every entry is used
    right away); otherwise only the index is kept and each lookup reads its blob with
    `os.pread`, so memory does not grow with the template.
    """

    def __init__(self, path: Path, *, in_memory: bool) -> None:
        self.path = path
        self._index: _Index = {}
        self._blob: bytes | None = None
        self._file: IO[bytes] | None = None
        self._lock = threading.Lock()
        _OPEN_STORES.add(self)
        try:
            self._open(in_memory)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, EOFError, TypeError, struct.error) as exc:
            logger.info("compiled template store %s unreadable (%s); recompiling", path, exc)
            self._close()
            self._index = {}

    def _open(self, in_memory: bool) -> None:
        handle = open(self.path, "rb")  # noqa: SIM115 - kept open for pread lookups
        try:
            size = os.fstat(handle.fileno()).st_size
            tail = _TRAILER.size + len(MAGIC)
            if size < len(_HEADER) + tail:
                raise ValueError("too short")
            if in_memory:
                data = handle.read()
                header, trailer = data[: len(_HEADER)], data[-tail:]
            else:
                header = os.pread(handle.fileno(), len(_HEADER), 0)
                trailer = os.pread(handle.fileno(), tail, size - tail)
            if header != _HEADER or trailer[_TRAILER.size :] != MAGIC:
                raise ValueError("not a store of this Python/Jinja version")
            (index_at,) = _TRAILER.unpack(trailer[: _TRAILER.size])
            if not len(_HEADER) <= index_at <= size - tail:
                raise ValueError("index offset out of range")
            raw_index = (
                data[index_at : size - tail]
                if in_memory
                else os.pread(handle.fileno(), size - tail - index_at, index_at)
            )
            index = marshal.loads(raw_index)  # noqa: S302 - Kiln's own cache folder, see the module docstring
            if not isinstance(index, dict):
                raise ValueError("index is not a mapping")
            for digest, offset, length in index.values():
                if not (isinstance(digest, str) and len(_HEADER) <= offset and offset + length <= index_at):
                    raise ValueError("index entry out of range")
        except BaseException:
            handle.close()
            raise
        self._index = index
        if in_memory:
            self._blob = data
            handle.close()
        else:
            self._file = handle

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._blob = None

    def __len__(self) -> int:
        return len(self._index)

    def has(self, name: str, digest: str) -> bool:
        found = self._index.get(name)
        return found is not None and found[0] == digest

    def get(self, name: str, digest: str) -> CodeType | None:
        """The code compiled from a source with this digest, or None (then compile it)."""
        found = self._index.get(name)
        if found is None or found[0] != digest:
            return None
        _, offset, length = found
        try:
            if self._blob is not None:
                raw = self._blob[offset : offset + length]
            elif self._file is not None:
                with self._lock:
                    raw = os.pread(self._file.fileno(), length, offset)
            else:
                return None
            code = marshal.loads(raw)  # noqa: S302 - Kiln's own cache folder, see the module docstring
        except (OSError, ValueError, EOFError, TypeError):
            return None
        return code if isinstance(code, CodeType) else None

    def read_raw(self, name: str) -> tuple[str, bytes] | None:
        found = self._index.get(name)
        if found is None:
            return None
        digest, offset, length = found
        try:
            if self._blob is not None:
                return digest, self._blob[offset : offset + length]
            if self._file is not None:
                with self._lock:
                    return digest, os.pread(self._file.fileno(), length, offset)
        except OSError:
            return None
        return None

    def names(self) -> list[str]:
        return list(self._index)

    def writer(self) -> StoreWriter:
        return StoreWriter(self)

    def close(self) -> None:
        self._close()

    def __del__(self) -> None:  # pragma: no cover - best effort when a prepared template is evicted
        with contextlib.suppress(Exception):
            self._close()


class StoreWriter:
    """Collects newly compiled code and, on exit, replaces the store with old + new entries.

    Nothing is written when nothing was added. New blobs go straight to the temporary file
    (not kept in memory), so compiling a 10,000-file template does not hold its code twice.
    """

    def __init__(self, store: CompiledCodeStore) -> None:
        self.store = store
        self._tmp: Path | None = None
        self._handle: IO[bytes] | None = None
        self._index: _Index = {}
        self._offset = 0
        self.replaced = False  # the store file was rewritten: readers opened before must reopen it

    def __enter__(self) -> StoreWriter:
        return self

    def add(self, name: str, digest: str, code: CodeType) -> None:
        self._write(name, digest, marshal.dumps(code))

    def _write(self, name: str, digest: str, raw: bytes) -> None:
        try:
            if self._handle is None:
                self.store.path.parent.mkdir(parents=True, exist_ok=True)
                self._tmp = self.store.path.with_name(f".{self.store.path.name}.{uuid.uuid4().hex[:8]}.tmp")
                self._handle = open(self._tmp, "xb")  # noqa: SIM115 - closed in __exit__
                self._handle.write(_HEADER)
                self._offset = len(_HEADER)
            self._handle.write(raw)
        except OSError as exc:
            # A cache that cannot be written only costs speed; the generation goes on.
            logger.warning("compiled template store %s not writable: %s", self.store.path, exc)
            self._abort()
            return
        self._index[name] = (digest, self._offset, len(raw))
        self._offset += len(raw)

    def _abort(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None
        self._index = {}

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._handle is None:
            return
        if exc_type is not None:
            self._abort()
            return
        try:
            for name in self.store.names():
                if name not in self._index:
                    old = self.store.read_raw(name)
                    if old is not None:
                        self._write(name, old[0], old[1])
            if self._handle is None:  # a write failed while copying
                return
            index_at = self._offset
            self._handle.write(marshal.dumps(self._index))
            self._handle.write(_TRAILER.pack(index_at) + MAGIC)
            self._handle.close()
            self._handle = None
            assert self._tmp is not None
            os.replace(self._tmp, self.store.path)
            self._tmp = None
            self.replaced = True
            self._index = {}  # a reader of the new file builds its own; do not hold two copies
        except OSError as exc:
            logger.warning("compiled template store %s not writable: %s", self.store.path, exc)
            self._abort()
