"""ProjectGenerator: renders a template folder plus parameters into files.

The generator is a pure engine: it reads a template, renders every path and file in
the Kiln sandbox (`core.sandbox`) and hands each output file to a sink. The generation
service (`services/generation.py`) decides where the sink writes, records rows and job
state. Output is deterministic: same template checksum + parameters → same bytes, the
same modes and the same `content_sha256` over the sorted manifest.

Speed: a prepared template (file list, classification and compiled Jinja code) is cached
per template checksum in the process, and the compiled code of every file and templated
path segment is also kept on disk in one file per template version (`code_store`), so
repeated generations — even in new processes — neither recompile nor open a cache file
per template file. Files without Jinja markers, binary files and `copy_without_render`
matches are copied.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, TracebackType
from typing import Any, Protocol

from django.conf import settings
from jinja2 import BaseLoader, Template, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import SecurityError

from apps.projects.services.code_store import CompiledCodeStore, StoreWriter
from apps.projects.services.parallel_compile import CompileHelpers, compile_many
from apps.templates.services.formats import PreparedVersion
from apps.templates.services.formats.native import TemplateManifest, iter_template_files
from core.bounded import Channel, Failure, LocalChannel, run_bounded
from core.exceptions import ApplicationError
from core.safe_paths import DuplicatePath, PathSet, UnsafePath, clean_relative_path
from core.sandbox import (
    KilnSandbox,
    RenderLimitExceeded,
    check_deadline,
    make_environment,
    plain_context,
    render_limits,
)

logger = logging.getLogger("kiln.generation")

JINJA_MARKERS = (b"{{", b"{%", b"{#")
_PATH_MARKERS = tuple(marker.decode() for marker in JINJA_MARKERS)
_READ_WHOLE = 1 << 16  # files up to this size are read in one call; larger ones are sniffed first
# Contents compiled (and their code held) at a time on a cold start. Templates above
# KILN_TEMPLATE_MEMORY_CACHE_FILES keep no code in memory, so their batches are smaller: the
# compile work of a batch (~9 KB of code objects per file, Jinja's trees) is what a cold start
# leaves on top of a warm one. At 10,000 files, 250 instead of 500 keeps ~3 MiB less for ~1 s more.
_COMPILE_BATCH = 1000
_COMPILE_BATCH_LARGE = 250
SNIFF_BYTES = 8192


class GenerationFailed(ApplicationError):
    """A template or its output broke a rule; the generation ends `failed` with this code."""

    status_code = 422
    default_code = "template_error"


class GenerationCancelled(Exception):
    """Cancellation was requested; the generation stops between two files."""


@dataclass(frozen=True)
class ManifestEntry:
    path: str
    size: int
    sha256: str
    mode: int
    is_binary: bool


@dataclass
class GenerationResult:
    files: list[ManifestEntry]
    total_bytes: int
    content_sha256: str

    @property
    def file_count(self) -> int:
        return len(self.files)

    def as_json(self) -> dict[str, Any]:
        return {
            "files": [[f.path, f.size, f.sha256, f.mode, f.is_binary] for f in self.files],
            "total_bytes": self.total_bytes,
            "content_sha256": self.content_sha256,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GenerationResult:
        files = [ManifestEntry(str(p), int(n), str(h), int(m), bool(b)) for p, n, h, m, b in data["files"]]
        return cls(files=files, total_bytes=int(data["total_bytes"]), content_sha256=str(data["content_sha256"]))


def manifest_sha256(entries: Iterable[ManifestEntry]) -> str:
    """The hash of the sorted manifest: path, mode and content hash of every file."""
    digest = hashlib.sha256(b"kiln-manifest-v1\n")
    for entry in sorted(entries, key=lambda e: e.path):
        digest.update(f"{entry.path}\0{entry.mode:o}\0{entry.sha256}\n".encode())
    return digest.hexdigest()


class OutputSink(Protocol):
    def add(self, path: str, data: bytes, mode: int, sha256: str) -> None: ...


class NullSink:
    """Writes nothing: a dry run only hashes."""

    fork_safe = True  # used in the render process as it is

    def add(self, path: str, data: bytes, mode: int, sha256: str) -> None:
        return None


class _PipeSink:
    """In the render process: hands each file to the caller's sink over the pipe."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    def add(self, path: str, data: bytes, mode: int, sha256: str) -> None:
        self.channel.send({"t": "file", "path": path, "mode": mode, "sha256": sha256}, data)


class _PipeProgress:
    """In the render process: progress for the caller, at most every 0.2 s and at the end."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - self._last >= 0.2:
            self._last = now
            self.channel.send({"t": "progress", "done": done, "total": total}, urgent=True)


def _is_templated(text: str) -> bool:
    """Whether a path or path segment holds Jinja markup (most names have no "{" at all)."""
    return "{" in text and any(marker in text for marker in _PATH_MARKERS)


def glob_matcher(patterns: Iterable[str]) -> Callable[[str], bool]:
    """A test for relative paths against `exclude` / `copy_without_render` globs, built once.

    A path matches a pattern as `fnmatchcase` matches it (`*` crosses folders); `**/x` also
    matches `x` at the top, and `dir/**` matches `dir` and everything below it.
    """
    alternatives: list[str] = []
    for pattern in patterns:
        alternatives.append(fnmatch.translate(pattern))
        if pattern.startswith("**/"):
            alternatives.append(fnmatch.translate(pattern[3:]))
        if pattern.endswith("/**"):
            alternatives.append(re.escape(pattern[:-3]) + r"\Z")
            alternatives.append(fnmatch.translate(pattern[:-3] + "/*"))
    if not alternatives:
        return lambda rel: False
    regex = re.compile("|".join(f"(?:{alternative})" for alternative in alternatives))
    return lambda rel: regex.match(rel) is not None


@dataclass
class _Entry:
    rel: str
    mode: int
    size: int
    render: bool
    is_binary: bool
    path_segments: list[str | Template] | None
    name: str
    digest: str | None = None  # of the source the compiled code comes from (rendered files)


def _digest(source: bytes) -> str:
    return hashlib.sha256(source).hexdigest()


class _FolderLoader(BaseLoader):
    """Loads template sources by server-generated names, never user text: `f<index>` is a
    template file's content, `s<index>` a templated path segment. Only `{% include %}` and
    friends go through it; the files themselves are compiled by `PreparedTemplate`."""

    def __init__(self, folder: Path, names: dict[str, str], segments: dict[str, str]) -> None:
        self.folder = folder
        self.names = names
        self.segments = segments

    def get_source(self, environment: Any, template: str) -> tuple[str, str | None, Callable[[], bool]]:
        if template in self.segments:
            return self.segments[template], template, lambda: True
        rel = self.names[template]
        with open(self.folder / rel, "rb") as handle:
            source = handle.read().decode("utf-8")
        return source, template, lambda: True


class PreparedTemplate:
    """A native template folder read, classified and compiled once per checksum.

    The native format's `PreparedVersion` (`apps/templates/services/formats`): native templates
    never run code."""

    format = "native"
    runs_code = False

    def __init__(self, folder: Path, manifest: TemplateManifest, checksum: str) -> None:
        self.folder = folder
        self.manifest = manifest
        self.checksum = checksum
        self.entries: list[_Entry] = []
        self._names: dict[str, str] = {}
        self._segment_sources: dict[str, str] = {}
        self._segment_templates: dict[str, Template] = {}
        self._compiled: dict[str, Template] = {}
        self.env: KilnSandbox = make_environment(
            loader=_FolderLoader(folder, self._names, self._segment_sources),
            cache_size=0,
        )
        self._globals: dict[str, Any] = dict(self.env.make_globals(None))
        self._keep_compiled = True
        self._helpers: CompileHelpers | None = None  # started ahead of a cold compile (see _scan)
        self.store_path = Path(settings.KILN_TEMPLATE_CACHE_DIR) / f"{checksum[:32]}.code"
        self._store: CompiledCodeStore | None = None
        self._scan()

    def _scan(self) -> None:
        manifest = self.manifest
        excluded = glob_matcher(manifest.exclude)
        copied = glob_matcher(manifest.copy_without_render)
        files = [f for f in iter_template_files(self.folder) if not excluded(f.rel)]
        if len(files) > settings.KILN_MAX_FILES:
            raise GenerationFailed(
                f"The template has {len(files)} files, above the limit of {settings.KILN_MAX_FILES}.",
                code="too_many_files",
                extra={"limit": settings.KILN_MAX_FILES},
            )
        self._keep_compiled = len(files) <= settings.KILN_TEMPLATE_MEMORY_CACHE_FILES
        store = self._store = CompiledCodeStore(self.store_path, in_memory=self._keep_compiled)
        pending: list[tuple[_Entry, str]] = []  # contents to compile, in file order
        # The first generation of a large template: start the compile helpers now, so that
        # they boot while this process reads and sniffs the files.
        cold = len(store) == 0 and len(files) >= settings.KILN_PARALLEL_COMPILE_MIN_FILES
        helpers = (
            CompileHelpers(settings.KILN_COMPILE_PROCESSES - 1, timeout=settings.KILN_RENDER_TIME_LIMIT)
            if cold and settings.KILN_COMPILE_PROCESSES > 1
            else None
        )
        prefix = os.path.join(os.fspath(self.folder), "")
        batch = _COMPILE_BATCH if self._keep_compiled else _COMPILE_BATCH_LARGE
        with store.writer() as writer, helpers or contextlib.nullcontext():
            self._helpers = helpers
            for index, info in enumerate(files):
                name = f"f{index}"
                self._names[name] = info.rel
                render = False
                is_binary = False
                source = ""
                if info.size <= settings.MAX_FILE_SIZE:
                    with open(prefix + info.rel, "rb") as handle:
                        data = handle.read() if info.size <= _READ_WHOLE else handle.read(SNIFF_BYTES)
                        is_binary = b"\0" in data[:SNIFF_BYTES]
                        if not is_binary and not copied(info.rel):
                            if info.size > _READ_WHOLE:
                                data += handle.read()
                            try:
                                source = data.decode("utf-8")
                            except UnicodeDecodeError:
                                is_binary = True
                            else:
                                render = any(marker in data for marker in JINJA_MARKERS)
                path_segments: list[str | Template] | None = None
                if _is_templated(info.rel):
                    path_segments = [
                        self._compile_path(segment, info.rel, writer) if _is_templated(segment) else segment
                        for segment in info.rel.split("/")
                    ]
                entry = _Entry(info.rel, info.mode, info.size, render, is_binary, path_segments, name)
                self.entries.append(entry)
                if render:
                    entry.digest = _digest(data)
                    if store.has(name, entry.digest):
                        if self._keep_compiled:
                            code = self._code(name, source, entry.digest, info.rel, None)
                            self._compiled[name] = self._template(code)
                    else:
                        pending.append((entry, source))
                        if len(pending) >= batch:
                            if helpers is not None:
                                helpers.refill = index + 1 < len(files)
                            self._compile_contents(pending, writer)
                            pending = []
            if helpers is not None:
                helpers.refill = False
            self._compile_contents(pending, writer)
        self._helpers = None  # any helper not given a share was stopped on leaving the block
        if writer.replaced and not self._keep_compiled:
            # Renders read code from the store: open the file just written, not the (empty or
            # stale) one read before compiling, or every render would compile every file again.
            store.close()
            self._store = CompiledCodeStore(self.store_path, in_memory=False)

    def _compile_contents(self, pending: list[tuple[_Entry, str]], writer: StoreWriter) -> None:
        """Compile a batch of file contents (on several cores when it is large) and store the code."""
        if not pending:
            return
        rels = {entry.name: entry.rel for entry, _ in pending}
        wide = len(pending) >= settings.KILN_PARALLEL_COMPILE_MIN_FILES
        codes = compile_many(
            [(entry.name, source) for entry, source in pending],
            lambda name, source: self._compile(lambda: self.env.compile(source, name, name), rels[name]),
            processes=settings.KILN_COMPILE_PROCESSES if wide else 1,
            timeout=settings.KILN_RENDER_TIME_LIMIT,
            started=self._helpers,
        )
        for entry, _ in pending:
            code = codes[entry.name]
            assert entry.digest is not None
            writer.add(entry.name, entry.digest, code)
            if self._keep_compiled:
                self._compiled[entry.name] = self._template(code)

    def _compile(self, build: Callable[[], CodeType], rel: str, *, path: bool = False) -> CodeType:
        try:
            return build()
        except TemplateSyntaxError as exc:
            where = f"the path of '{rel}'" if path else f"{rel}:{exc.lineno}"
            raise GenerationFailed(
                f"Template syntax error in {where}: {exc.message}",
                code="template_syntax_error",
                extra={"file": rel, "line": exc.lineno},
            ) from None
        except UnicodeDecodeError:
            raise GenerationFailed(f"{rel} is not valid UTF-8.", code="template_error", extra={"file": rel}) from None
        except (RecursionError, SyntaxError):
            # Jinja's parser recurses per nesting level and Python refuses code nested more than
            # 20 blocks or 100 indents: a template nested that deep cannot be compiled
            where = f"the path of '{rel}'" if path else rel
            raise GenerationFailed(
                f"Template syntax error in {where}: blocks or expressions are nested too deeply.",
                code="template_syntax_error",
                extra={"file": rel},
            ) from None

    def _template(self, code: CodeType) -> Template:
        # One plain dict of the sandbox's globals shared by every file of the template: Jinja's
        # default per-template ChainMap is copied key by key into each render's context.
        return self.env.template_class.from_code(self.env, code, self._globals, None)

    def _code(
        self, name: str, source: str, digest: str, rel: str, writer: StoreWriter | None, *, path: bool = False
    ) -> CodeType:
        """The compiled code of one source: from the store, else compiled (and stored)."""
        assert self._store is not None
        code = self._store.get(name, digest)
        if code is None:
            code = self._compile(lambda: self.env.compile(source, name, name), rel, path=path)
            if writer is not None:
                writer.add(name, digest, code)
        return code

    def _compile_path(self, segment: str, rel: str, writer: StoreWriter) -> Template:
        """Each distinct path segment is compiled once (and stored with the contents)."""
        compiled = self._segment_templates.get(segment)
        if compiled is None:
            name = f"s{len(self._segment_sources)}"
            self._segment_sources[name] = segment
            code = self._code(name, segment, _digest(segment.encode()), rel, writer, path=True)
            compiled = self._segment_templates[segment] = self._template(code)
        return compiled

    def render_here(
        self,
        parameters: dict[str, Any],
        sink: OutputSink,
        *,
        progress: Callable[[int, int], None] | None,
        seconds: float,
        at: Callable[[int], None] | None,
    ) -> GenerationResult:
        return _NativeRender(self).run(parameters, sink, progress=progress, seconds=seconds, at=at)

    def file_at(self, index: int) -> str | None:
        return self.entries[index].rel if 0 <= index < len(self.entries) else None

    def content_template(self, entry: _Entry) -> Template:
        compiled = self._compiled.get(entry.name)
        if compiled is not None:
            return compiled
        assert self._store is not None and entry.digest is not None
        code = self._store.get(entry.name, entry.digest)
        if code is None:  # the store was removed since prepare: compile from the file again
            with open(self.folder / entry.rel, "rb") as handle:
                source = handle.read().decode("utf-8")
            code = self._compile(lambda: self.env.compile(source, entry.name, entry.name), entry.rel)
        return self._template(code)


_CACHE: OrderedDict[tuple[str, str], PreparedTemplate] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 8


def prepare_template(folder: Path, manifest: TemplateManifest, checksum: str) -> PreparedTemplate:
    key = (str(folder), checksum)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            _CACHE.move_to_end(key)
            return cached
    prepared = PreparedTemplate(folder, manifest, checksum)
    with _CACHE_LOCK:
        _CACHE[key] = prepared
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return prepared


def clear_template_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


def _template_line(tb: TracebackType | None, name: str) -> int | None:
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == name:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _render_error(exc: BaseException, rel: str, name: str, *, path: bool) -> GenerationFailed:
    line = _template_line(exc.__traceback__, name)
    where = f"the path of '{rel}'" if path else (f"{rel}:{line}" if line else rel)
    extra: dict[str, Any] = {"file": rel}
    if line and not path:
        extra["line"] = line
    if isinstance(exc, ApplicationError):  # the sandbox's limits, objects that are not text
        return GenerationFailed(f"{exc.message} (in {where})", code=exc.code, extra=extra)
    if isinstance(exc, MemoryError):
        memory = settings.KILN_RENDER_MEMORY_LIMIT
        limit = f"the render memory limit of {memory // (1024 * 1024)} MiB" if memory > 0 else "the memory available"
        return GenerationFailed(
            f"Rendering needed more memory than {limit} (in {where}).",
            code="limit_exceeded",
            extra={**extra, "limit": memory},
        )
    if isinstance(exc, SecurityError):
        return GenerationFailed(
            f"The template tried an operation the sandbox forbids in {where}: {exc}",
            code="template_security_violation",
            extra=extra,
        )
    if isinstance(exc, UndefinedError):
        return GenerationFailed(
            f"Undefined variable in {where}: {exc.message}", code="template_variable_missing", extra=extra
        )
    if isinstance(exc, RecursionError):
        return GenerationFailed(f"The template recursed too deeply in {where}.", code="template_error", extra=extra)
    return GenerationFailed(
        f"Rendering failed in {where}: {type(exc).__name__}: {exc}", code="template_error", extra=extra
    )


class ProjectGenerator:
    """Renders one prepared template version, of any format, with one set of parameters into a sink.

    The catalog hands the version to its format (`apps.templates.services.formats.prepare`), which
    returns the prepared version; the generator decides where it renders and under which limits.
    """

    def __init__(self, prepared: PreparedVersion) -> None:
        self.prepared = prepared

    def render(
        self,
        parameters: dict[str, Any],
        sink: OutputSink,
        *,
        progress: Callable[[int, int], None] | None = None,
        time_limit: float | None = None,
    ) -> GenerationResult:
        """Render every file into `sink`, in a bounded child process (`core.bounded`).

        The child renders under KILN_RENDER_MEMORY_LIMIT and the time limit; a sink that can
        work in the child (`fork_safe`: a dry run's NullSink) is used there, any other (the
        job's blob writer, which talks to the database and the store) gets the files over the
        pipe. `progress` runs here, in the
        caller, so it may use the database and raise to cancel (the child is then killed).

        A version that runs its author's code (trusted Cookiecutter hooks, Copier tasks) renders
        in the caller: that code runs in the isolation runner, a sandbox with its own time, memory
        and process limits, which a forked child's inherited limits would only cut short.
        """
        prepared = self.prepared
        seconds = time_limit or settings.KILN_RENDER_TIME_LIMIT
        memory = 0 if prepared.runs_code else settings.KILN_RENDER_MEMORY_LIMIT

        def work(channel: Channel) -> dict[str, Any]:
            if isinstance(channel, LocalChannel):
                result = prepared.render_here(parameters, sink, progress=progress, seconds=seconds, at=None)
            else:
                target = sink if getattr(sink, "fork_safe", False) else _PipeSink(channel)
                report = _PipeProgress(channel) if progress is not None else None
                result = prepared.render_here(parameters, target, progress=report, seconds=seconds, at=channel.at)
            return result.as_json()

        def on_message(header: dict[str, Any], payload: bytes) -> None:
            if header["t"] == "file":
                sink.add(header["path"], payload, header["mode"], header["sha256"])
            elif header["t"] == "progress" and progress is not None:
                progress(header["done"], header["total"])

        def on_failure(failure: Failure) -> BaseException:
            rel = prepared.file_at(failure.index)
            where = f" (in {rel})" if rel else ""
            extra: dict[str, Any] = {"file": rel} if rel else {}
            if failure.kind == "memory":
                return GenerationFailed(
                    f"Rendering needed more memory than the render memory limit of {memory // (1024 * 1024)} MiB"
                    f"{where}.",
                    code="limit_exceeded",
                    extra={**extra, "limit": memory},
                )
            if failure.kind == "time":
                return GenerationFailed(
                    f"Rendering took longer than the render time limit{where}.", code="render_time_limit", extra=extra
                )
            logger.error("render process failed%s: %s", where, failure.detail)
            return ApplicationError(
                f"The render process failed{where}; the error was logged.", code="render_failed", status_code=500
            )

        value = run_bounded(
            work,
            memory=memory,
            seconds=seconds,
            on_message=on_message,
            on_failure=on_failure,
            error_class=GenerationFailed,
        )
        return GenerationResult.from_json(value)


class _NativeRender:
    """One render of a native template (`PreparedTemplate.render_here`)."""

    def __init__(self, prepared: PreparedTemplate) -> None:
        self.prepared = prepared

    def run(
        self,
        parameters: dict[str, Any],
        sink: OutputSink,
        *,
        progress: Callable[[int, int], None] | None,
        seconds: float,
        at: Callable[[int], None] | None,
    ) -> GenerationResult:
        context = plain_context(parameters)
        entries = self.prepared.entries
        total = len(entries)
        max_file = settings.MAX_FILE_SIZE
        max_total = settings.KILN_MAX_TOTAL_BYTES
        outputs = PathSet()  # names equal once normalised, a file where a folder is: duplicate_output_path
        sources: dict[str, str] = {}  # output path -> template file
        segments: dict[Template, str] = {}  # each templated path segment renders once per generation
        manifest: list[ManifestEntry] = []
        total_bytes = 0
        folder = self.prepared.folder
        with render_limits(seconds=seconds, max_bytes=max_file):
            for done, entry in enumerate(entries, start=1):
                if at is not None:
                    at(done - 1)
                path = self._render_path(entry, context, segments)
                if path is not None:
                    self._claim(outputs, sources, path, entry.rel)
                    if entry.render:
                        data = self._render_content(entry, context, max_file)
                    else:
                        if entry.size > max_file:
                            raise self._too_big(entry.rel, entry.size, max_file)
                        with open(folder / entry.rel, "rb") as handle:
                            data = handle.read(max_file + 1)
                        if len(data) > max_file:
                            raise self._too_big(entry.rel, len(data), max_file)
                    total_bytes += len(data)
                    if total_bytes > max_total:
                        raise GenerationFailed(
                            f"The generated files exceed the total size limit of {max_total} bytes.",
                            code="output_limit_exceeded",
                            extra={"limit": max_total},
                        )
                    digest = hashlib.sha256(data).hexdigest()
                    sink.add(path, data, entry.mode, digest)
                    manifest.append(ManifestEntry(path, len(data), digest, entry.mode, entry.is_binary))
                if progress is not None:
                    progress(done, total)
                check_deadline()
        manifest.sort(key=lambda e: e.path)
        return GenerationResult(files=manifest, total_bytes=total_bytes, content_sha256=manifest_sha256(manifest))

    @staticmethod
    def _claim(outputs: PathSet, sources: dict[str, str], path: str, rel: str) -> None:
        try:
            outputs.add(path)
        except DuplicatePath as exc:
            first = sources[exc.other]
            if exc.reason == "file_and_folder":
                message = (
                    f"The template files '{first}' and '{rel}' render to a file and a folder of the same path: "
                    f"{exc.message}"
                )
            else:
                message = f"Two template files render to the same path '{path}': '{first}' and '{rel}'. {exc.message}"
            raise GenerationFailed(
                message, code="duplicate_output_path", extra={"path": path, "sources": [first, rel]}
            ) from None
        sources[path] = rel

    @staticmethod
    def _too_big(rel: str, size: int, limit: int) -> GenerationFailed:
        return GenerationFailed(
            f"'{rel}' would be {size} bytes, above the file size limit of {limit} bytes.",
            code="output_limit_exceeded",
            extra={"file": rel, "limit": limit},
        )

    def _render_path(self, entry: _Entry, context: dict[str, Any], rendered: dict[Template, str]) -> str | None:
        if entry.path_segments is None:
            return entry.rel
        parts = []
        for segment in entry.path_segments:
            if isinstance(segment, str):
                parts.append(segment)
                continue
            value = rendered.get(segment)
            if value is None:
                try:
                    value = rendered[segment] = segment.render(context)
                except Exception as exc:  # every template error becomes a clear failure
                    raise _render_error(exc, entry.rel, "<template>", path=True) from None
            if not value.strip():
                return None  # a segment that renders empty: a conditional file or folder
            parts.append(value)
        try:
            return clean_relative_path("/".join(parts))
        except UnsafePath as exc:
            raise GenerationFailed(
                f"The template file '{entry.rel}' renders to an unsafe path: {exc.message}",
                code="unsafe_path",
                extra={"file": entry.rel, **exc.extra},
            ) from None

    def _render_content(self, entry: _Entry, context: dict[str, Any], max_file: int) -> bytes:
        template = self.prepared.content_template(entry)
        chunks: list[str] = []
        size = 0
        try:
            for index, chunk in enumerate(template.generate(context)):
                size += len(chunk)
                if size > max_file:
                    raise RenderLimitExceeded(f"'{entry.rel}' renders to more than {max_file} bytes.")
                chunks.append(chunk)
                if index & 0xFF == 0xFF:
                    check_deadline()
        except Exception as exc:
            raise _render_error(exc, entry.rel, entry.name, path=False) from None
        try:
            data = "".join(chunks).encode("utf-8")
        except UnicodeEncodeError:  # '%c' % 55296 or a '\ud800' literal: a lone surrogate
            raise GenerationFailed(
                f"'{entry.rel}' renders text that is not valid Unicode (a lone surrogate such as \\ud800).",
                code="template_error",
                extra={"file": entry.rel, "reason": "not_utf8"},
            ) from None
        if len(data) > max_file:
            raise self._too_big(entry.rel, len(data), max_file)
        return data


class ProgressThrottle:
    """Calls `report(done, total)` at most every `interval` seconds, and at the end."""

    def __init__(self, report: Callable[[int, int], None], interval: float = 0.5) -> None:
        self.report = report
        self.interval = interval
        self._last = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - self._last >= self.interval:
            self._last = now
            self.report(done, total)
