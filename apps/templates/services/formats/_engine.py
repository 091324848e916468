"""What the Cookiecutter and Copier formats share: reading a template folder, compiled code
kept per template version, the output with Kiln's limits, and the errors.

Each foreign format renders "exactly as the tool does" in Kiln's sandbox
(`core.sandbox`), so the two engines differ in their rules (which files, which paths,
which context) but not in how they compile, cache, bound and report. Compiled code goes
to the same per-version store as native templates (`code_store`), so a warm generation
neither reads nor compiles a template file again.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType
from typing import Any

from django.conf import settings
from jinja2 import BaseLoader, Template, TemplateNotFound, TemplateSyntaxError
from jinja2.loaders import split_template_path

from apps.projects.services.code_store import CompiledCodeStore
from apps.projects.services.project_generator import (
    GenerationFailed,
    GenerationResult,
    ManifestEntry,
    OutputSink,
    _render_error,
    manifest_sha256,
)
from apps.templates.services.formats import SourceInfo  # noqa: F401  (the engines import it from here)
from core.exceptions import ApplicationError
from core.safe_paths import UnsafePath, clean_relative_path
from core.sandbox import KilnSandbox, RenderLimitExceeded, RenderTimeExceeded, check_deadline

MAX_CONFIG_BYTES = 512 * 1024


class FormatInvalid(ApplicationError):
    """The template's own configuration is wrong (cookiecutter.json, copier.yml): 400."""

    status_code = 400
    default_code = "template_invalid"


class FormatUnsupported(ApplicationError):
    """The template needs something Kiln does not do (a non-built-in extension, ...): 400."""

    status_code = 400
    default_code = "template_unsupported"


class TemplateUntrusted(ApplicationError):
    status_code = 400
    default_code = "template_untrusted"


@dataclass(frozen=True)
class FileInfo:
    rel: str
    mode: int
    size: int


def walk_files(folder: Path) -> tuple[list[FileInfo], list[str]]:
    """Every regular file (sorted, paths relative to `folder`) and every folder below it.

    Like the native format's reader, a link, device or other special file makes the
    template invalid, and every name passes Kiln's safe-path check.
    """
    files: list[FileInfo] = []
    dirs: list[str] = []
    stack = [""]
    count = 0
    while stack:
        rel_dir = stack.pop()
        base = folder / rel_dir if rel_dir else folder
        with os.scandir(base) as it:
            entries = sorted(it, key=lambda e: e.name)
        subdirs = []
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            count += 1
            if count > settings.KILN_MAX_FILES * 2:
                raise GenerationFailed(
                    f"The template has more than {settings.KILN_MAX_FILES} files.",
                    code="too_many_files",
                    extra={"limit": settings.KILN_MAX_FILES},
                )
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                raise FormatInvalid(
                    f"The template contains a symbolic link '{rel}'; links are not allowed in templates.",
                    code="symlink_not_allowed",
                    extra={"path": rel},
                )
            try:
                clean_relative_path(rel)
            except UnsafePath as exc:
                raise FormatInvalid(f"Template file name not allowed: {exc.message}", code="unsafe_path") from exc
            if stat.S_ISDIR(st.st_mode):
                subdirs.append(rel)
                dirs.append(rel)
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
                raise FormatInvalid(
                    f"The template contains '{rel}', which is not a regular file.",
                    code="unsupported_file_type",
                    extra={"path": rel},
                )
            files.append(FileInfo(rel=rel, mode=0o755 if st.st_mode & stat.S_IXUSR else 0o644, size=st.st_size))
        stack.extend(reversed(subdirs))
    if len(files) > settings.KILN_MAX_FILES:
        raise GenerationFailed(
            f"The template has {len(files)} files, above the limit of {settings.KILN_MAX_FILES}.",
            code="too_many_files",
            extra={"limit": settings.KILN_MAX_FILES},
        )
    return files, dirs


def folder_checksum(folder: Path, files: list[FileInfo]) -> str:
    digest = hashlib.sha256(b"kiln-foreign-template-v1\0")
    for info in files:
        with open(folder / info.rel, "rb") as handle:
            content = hashlib.file_digest(handle, "sha256").hexdigest()
        digest.update(f"{info.rel}\0{info.mode:o}\0{content}\n".encode())
    return digest.hexdigest()


def read_config(path: Path, *, what: str) -> bytes:
    """A template's own configuration file, size-capped."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise FormatInvalid(f"The template has no {what}.", extra={"file": what}) from None
    if not stat.S_ISREG(st.st_mode):
        raise FormatInvalid(f"{what} must be a regular file.", code="symlink_not_allowed", extra={"file": what})
    if st.st_size > MAX_CONFIG_BYTES:
        raise FormatInvalid(f"{what} is larger than {MAX_CONFIG_BYTES} bytes.", extra={"file": what})
    return path.read_bytes()


class SourceLoader(BaseLoader):
    """Serves `{% include %}` / `{% extends %}` from the scanned template files only.

    `roots` are folders (relative to the template folder) searched in order, as the tools'
    `FileSystemLoader` search paths; a name is split like Jinja splits it (no `..`), and
    only files found by the scan are served, so a link or a file outside the template
    can never be read.
    """

    def __init__(self, folder: Path, known: set[str], roots: list[str]) -> None:
        self.folder = folder
        self.known = known
        self.roots = roots

    def get_source(self, environment: Any, template: str) -> tuple[str, str | None, Callable[[], bool]]:
        pieces = split_template_path(template)
        for root in self.roots:
            rel = "/".join([*([root] if root else []), *pieces])
            if rel in self.known:
                data = (self.folder / rel).read_bytes()
                try:
                    source = data.decode("utf-8")
                except UnicodeDecodeError:
                    raise GenerationFailed(
                        f"{rel} is not valid UTF-8.", code="template_error", extra={"file": rel}
                    ) from None
                return source, rel, lambda: True
        raise TemplateNotFound(template)


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class CodeCache:
    """Compiled templates of one prepared template: in memory, and in the version's code store.

    Cold (first use of a version): sources are `add`ed and compiled, and the code goes to the
    store. Warm in a new process: the version's plan (see `read_plan`) names each template and
    the digest of its source, and `adopt` takes the code from the store without reading or
    compiling the source. Names are made by Kiln (`c<n>` contents, `p<n>` paths), never user text.
    """

    def __init__(self, env: KilnSandbox, store_path: Path) -> None:
        self.env = env
        self.store_path = store_path
        self.globals: dict[str, Any] = dict(env.make_globals(None))
        self.digests: dict[str, str] = {}
        self.errors: dict[str, dict[str, Any]] = {}  # name -> the compile error, raised when it renders
        self._templates: dict[str, Template] = {}
        self._pending: list[tuple[str, str, str, bool]] = []

    def add(self, name: str, source: str, rel: str, *, path: bool = False) -> None:
        self._pending.append((name, source, rel, path))

    def compile_all(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        store = CompiledCodeStore(self.store_path, in_memory=True)
        try:
            with store.writer() as writer:
                for name, source, rel, path in pending:
                    digest = digest_of(source)
                    code = store.get(name, digest)
                    if code is None:
                        try:
                            code = compile_source(self.env, source, name, rel, path=path)
                        except GenerationFailed as exc:
                            # The tools compile a file when they render it: one they skip (an empty
                            # name, an exclusion) may be broken without failing the generation.
                            self.errors[name] = {"message": exc.message, "code": exc.code, "extra": exc.extra}
                            continue
                        writer.add(name, digest, code)
                    self.digests[name] = digest
                    self._templates[name] = self._template(code)
        finally:
            store.close()

    def adopt(self, digests: dict[str, str], errors: dict[str, dict[str, Any]] | None = None) -> bool:
        """Take every named template's code from the store; False if any is missing (recompile)."""
        self.errors.update(errors or {})
        store = CompiledCodeStore(self.store_path, in_memory=True)
        try:
            loaded = {}
            for name, digest in digests.items():
                code = store.get(name, digest)
                if code is None:
                    return False
                loaded[name] = self._template(code)
        finally:
            store.close()
        self._templates.update(loaded)
        self.digests.update(digests)
        return True

    def _template(self, code: CodeType) -> Template:
        return self.env.template_class.from_code(self.env, code, self.globals, None)

    def get(self, name: str) -> Template:
        found = self._templates.get(name)
        if found is None:
            error = self.errors[name]
            raise GenerationFailed(error["message"], code=error["code"], extra=error["extra"])
        return found


PLAN_VERSION = 2


def plan_path(kind: str, checksum: str) -> Path:
    return Path(settings.KILN_TEMPLATE_CACHE_DIR) / f"{kind}-{checksum[:32]}.plan.json"


def read_plan(kind: str, checksum: str) -> dict[str, Any] | None:
    """A version's classification (which file renders, is binary, its line ending, ...) kept
    beside its compiled code, so a warm generation reads no template file it does not output.
    Kiln's own cache folder; a missing, stale or unreadable plan is just rebuilt."""
    try:
        data = json.loads(plan_path(kind, checksum).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("v") != PLAN_VERSION or data.get("checksum") != checksum:
        return None
    return data


def write_plan(kind: str, checksum: str, data: dict[str, Any]) -> None:
    path = plan_path(kind, checksum)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps({**data, "v": PLAN_VERSION, "checksum": checksum}), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written only costs speed


def compile_source(env: KilnSandbox, source: str, name: str, rel: str, *, path: bool = False) -> CodeType:
    try:
        return env.compile(source, name, name)  # type: ignore[no-any-return]
    except TemplateSyntaxError as exc:
        where = f"the path of '{rel}'" if path else f"{rel}:{exc.lineno}"
        extra: dict[str, Any] = {"file": rel}
        if not path:
            extra["line"] = exc.lineno
        raise GenerationFailed(
            f"Template syntax error in {where}: {exc.message}", code="template_syntax_error", extra=extra
        ) from None


def render_text(template: Template, context: dict[str, Any], rel: str, name: str, *, path: bool = False) -> str:
    """Render with Kiln's output cap and deadline; every template error names the file."""
    limit = settings.MAX_FILE_SIZE
    chunks: list[str] = []
    size = 0
    try:
        for index, chunk in enumerate(template.generate(context)):
            size += len(chunk)
            if size > limit:
                raise RenderLimitExceeded(f"'{rel}' renders to more than {limit} bytes.")
            chunks.append(chunk)
            if index & 0xFF == 0xFF:
                check_deadline()
    except GenerationFailed:
        raise
    except Exception as exc:  # every template error becomes a clear failure
        failure = _render_error(exc, rel, name, path=path)
        if isinstance(exc, ApplicationError) and not isinstance(exc, (RenderLimitExceeded, RenderTimeExceeded)):
            failure.code = exc.code  # e.g. a filter Kiln does not offer: template_unsupported
            failure.message = f"{exc.message} (in {rel})"
        raise failure from None
    return "".join(chunks)


_STRING_CACHE_SIZE = 2048


def from_string(env: KilnSandbox, source: str) -> Template:
    """`env.from_string`, compiled once per environment and source (defaults, validators, globs
    and commands render at every generation; the environment belongs to one prepared version)."""
    cache: dict[str, Template] | None = getattr(env, "_kiln_strings", None)
    if cache is None:
        cache = {}
        env._kiln_strings = cache  # type: ignore[attr-defined]
    template = cache.get(source)
    if template is None:
        template = env.from_string(source)
        if len(cache) < _STRING_CACHE_SIZE:
            cache[source] = template
    return template


def encode(text: str, rel: str) -> bytes:
    """Rendered text as UTF-8; a lone surrogate (`{{ '%c' % 55296 }}`) is the template's error."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise GenerationFailed(
            f"'{rel}' renders to text that is not valid Unicode (a lone surrogate).",
            code="template_error",
            extra={"file": rel, "reason": "not_utf8"},
        ) from None


def render_string(env: KilnSandbox, source: str, context: dict[str, Any], *, where: str) -> str:
    """A small template of the configuration (a default, a validator, a task command)."""
    try:
        template = from_string(env, source)
    except TemplateSyntaxError as exc:
        raise GenerationFailed(
            f"Template syntax error in {where}: {exc.message}", code="template_syntax_error", extra={"where": where}
        ) from None
    return render_text(template, context, where, "<template>", path=True)


@dataclass
class Output:
    """The generated files, with Kiln's limits; a later file of the same path replaces an earlier
    one (both tools overwrite), and every path passes the safe-path check."""

    files: OrderedDict[str, tuple[bytes, int, bool]] = field(default_factory=OrderedDict)
    total: int = 0

    def add(self, path: str, data: bytes, mode: int, *, source: str, is_binary: bool = False) -> None:
        try:
            path = clean_relative_path(path)
        except UnsafePath as exc:
            raise GenerationFailed(
                f"The template file '{source}' renders to an unsafe path: {exc.message}",
                code="unsafe_path",
                extra={"file": source, **exc.extra},
            ) from None
        limit = settings.MAX_FILE_SIZE
        if len(data) > limit:
            raise GenerationFailed(
                f"'{source}' would be {len(data)} bytes, above the file size limit of {limit} bytes.",
                code="output_limit_exceeded",
                extra={"file": source, "limit": limit},
            )
        previous = self.files.pop(path, None)
        if previous is not None:
            self.total -= len(previous[0])
        self.total += len(data)
        if self.total > settings.KILN_MAX_TOTAL_BYTES:
            raise GenerationFailed(
                f"The generated files exceed the total size limit of {settings.KILN_MAX_TOTAL_BYTES} bytes.",
                code="output_limit_exceeded",
                extra={"limit": settings.KILN_MAX_TOTAL_BYTES},
            )
        if len(self.files) >= settings.KILN_MAX_FILES:
            raise GenerationFailed(
                f"The template generates more than {settings.KILN_MAX_FILES} files.",
                code="too_many_files",
                extra={"limit": settings.KILN_MAX_FILES},
            )
        self.files[path] = (data, mode, is_binary)

    def remove_below(self, folder: str) -> None:
        prefix = folder.rstrip("/") + "/"
        for name in [name for name in self.files if name.startswith(prefix)]:
            self.total -= len(self.files.pop(name)[0])

    def emit(self, sink: OutputSink) -> GenerationResult:
        manifest: list[ManifestEntry] = []
        for path in sorted(self.files):
            data, mode, is_binary = self.files[path]
            digest = hashlib.sha256(data).hexdigest()
            sink.add(path, data, mode, digest)
            manifest.append(ManifestEntry(path, len(data), digest, mode, is_binary))
        return GenerationResult(files=manifest, total_bytes=self.total, content_sha256=manifest_sha256(manifest))

    def items(self) -> Iterator[tuple[str, bytes, int]]:
        for path, (data, mode, _) in self.files.items():
            yield path, data, mode


_CACHE: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 8


def cached_prepare(kind: str, folder: Path, checksum: str, build: Callable[[], Any]) -> Any:
    """One prepared template per (format, folder, checksum) and process, like native ones."""
    key = (kind, str(folder), checksum)
    with _CACHE_LOCK:
        found = _CACHE.get(key)
        if found is not None:
            _CACHE.move_to_end(key)
            return found
    prepared = build()
    with _CACHE_LOCK:
        _CACHE[key] = prepared
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return prepared


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


def store_path(kind: str, checksum: str) -> Path:
    return Path(settings.KILN_TEMPLATE_CACHE_DIR) / f"{kind}-{checksum[:32]}.code"


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1
