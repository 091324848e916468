"""Template formats: a registry, one module per format (like the export providers).

A format turns a template folder into what the catalog records and what the generator renders:

* `detect(folder)`: whether the folder is a template of this format (its configuration file at
  the top: `template.yaml`, `copier.yml`/`copier.yaml`, `cookiecutter.json`, `blueprint.yaml`);
* `describe(folder)` → `Description`: the parameters as JSON Schema, `uses_code` (hooks, tasks,
  migrations, Jinja extensions: code written by the template's author), the exclude and
  copy-verbatim rules, the checksum of the files; every problem is a coded 400 naming the file
  (and line) where it applies;
* `validate(version, parameters)`: the answers checked with the format's own rules (field errors),
  returning what the generation records;
* `prepare(version)` → a `PreparedVersion` (cached per version and process, its compiled code on
  disk per version) that `ProjectGenerator` renders: the one generator for every format.

The catalog hands a `VersionRef` (the folder and what was recorded about the version: format,
checksum, parameters, whether its code is trusted, where it came from) and never looks inside a
format. Formats are imported on first use, so a format module may import the generator (which
imports the native format) without an import cycle. A new format is a module here with a class
decorated by `@register_format`, named in `FORMAT_MODULES` (see the README, "Adding a format").
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from core.exceptions import ApplicationError

if TYPE_CHECKING:
    from apps.projects.services.project_generator import GenerationResult, OutputSink

# In detection order: the first format whose configuration file is at the top wins.
FORMAT_MODULES: tuple[str, ...] = ("native", "copier", "cookiecutter", "blueprint")


class FormatNotDetected(ApplicationError):
    status_code = 400
    default_code = "template_invalid"


class UnknownFormat(ApplicationError):
    status_code = 400
    default_code = "template_unsupported"


@dataclass(frozen=True)
class SourceInfo:
    """Where the template came from and where the project goes, as the tools would see it.

    Cookiecutter puts `_template`, `_output_dir`, `_repo_dir` and `_checkout` in its context;
    Copier puts `_src_path` and `_commit` in the answers file and `_folder_name` and
    `_copier_conf` in its context. Kiln fills them from the template's source (its git URL and
    `git describe` of the version's commit) and the paths the isolation runner shows to
    template code, so that hooks and the answers file see stable values.
    """

    url: str = ""
    commit: str | None = None
    commit_hash: str | None = None
    checkout: str | None = None
    output_dir: str = "/output"
    repo_dir: str = "/template"
    folder_name: str = "project"


@dataclass(frozen=True)
class Description:
    """What the catalog records about one version of a template, as its format reads it."""

    format: str
    parameters: dict[str, Any]  # JSON Schema (type object), x-* keywords where JSON Schema has no word
    checksum: str
    file_count: int
    total_bytes: int
    uses_code: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    copy_without_render: tuple[str, ...] = ()
    # From the template's own manifest; "" where the format has none (Cookiecutter, Copier): the
    # caller names the template (upload/git registration) and labels the version (tag, upload).
    slug: str = ""
    name: str = ""
    description: str = ""
    version: str = ""


@dataclass(frozen=True)
class VersionRef:
    """One recorded template version, as the catalog hands it to a format."""

    folder: Path
    format: str
    checksum: str
    slug: str
    version: str
    parameters: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    description: str = ""
    exclude: tuple[str, ...] = ()
    copy_without_render: tuple[str, ...] = ()
    uses_code: tuple[str, ...] = ()
    trusted: bool = False
    source: SourceInfo | None = None


class PreparedVersion(Protocol):
    """A version read, classified and compiled once; what `ProjectGenerator` renders."""

    format: str
    checksum: str

    @property
    def runs_code(self) -> bool:
        """True when rendering runs the template's own code (trusted hooks or tasks, isolated)."""
        ...

    def render_here(
        self,
        parameters: dict[str, Any],
        sink: OutputSink,
        *,
        progress: Callable[[int, int], None] | None,
        seconds: float,
        at: Callable[[int], None] | None,
    ) -> GenerationResult:
        """Render every file into `sink` in this process (the generator decides which process)."""
        ...

    def file_at(self, index: int) -> str | None:
        """The template file being rendered at `index` (named in a memory or time failure)."""
        ...


class TemplateFormat(Protocol):
    id: str
    config_files: tuple[str, ...]  # the file names at the top of a template that identify the format

    def detect(self, folder: Path) -> bool: ...

    def describe(self, folder: Path) -> Description: ...

    def validate(self, version: VersionRef, parameters: Any) -> dict[str, Any]: ...

    def prepare(self, version: VersionRef) -> PreparedVersion: ...


_FORMATS: dict[str, TemplateFormat] = {}
_LOADED = False
_LOAD_LOCK = threading.Lock()


def register_format(cls: type[Any]) -> type[Any]:
    """Class decorator: one instance of the format, under its `id`."""
    _FORMATS[cls.id] = cls()
    return cls


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    with _LOAD_LOCK:
        if not _LOADED:
            for name in FORMAT_MODULES:
                importlib.import_module(f"{__name__}.{name}")
            _LOADED = True


def all_formats() -> list[TemplateFormat]:
    """Every registered format, in detection order."""
    _load()
    order = {name: index for index, name in enumerate(FORMAT_MODULES)}
    return sorted(_FORMATS.values(), key=lambda fmt: order.get(fmt.id, len(order)))


def format_ids() -> list[str]:
    return [fmt.id for fmt in all_formats()]


def get(format_id: str) -> TemplateFormat:
    _load()
    found = _FORMATS.get(format_id)
    if found is None:
        raise UnknownFormat(
            f"Template format '{format_id}' is not one Kiln renders ({', '.join(format_ids())}).",
            extra={"format": format_id},
        )
    return found


def config_files() -> tuple[str, ...]:
    """Every format's identifying file names (an upload's top folder holds one of them)."""
    return tuple(name for fmt in all_formats() for name in fmt.config_files)


def detect(folder: Path) -> TemplateFormat:
    """The format of a template folder; 400 `template_invalid` naming the files looked for."""
    for fmt in all_formats():
        if fmt.detect(folder):
            return fmt
    raise FormatNotDetected(
        "The template has none of " + ", ".join(config_files()) + " at its top level: Kiln cannot tell its format.",
        extra={"looked_for": list(config_files())},
    )


def describe(folder: Path, format_id: str | None = None) -> Description:
    """Read and check a template folder (its format detected unless given)."""
    fmt = get(format_id) if format_id else detect(folder)
    return fmt.describe(folder)


def validate(version: VersionRef, parameters: Any) -> dict[str, Any]:
    """The answers checked by the version's format (400 with field errors); what is recorded."""
    return get(version.format).validate(version, parameters)


def prepare(version: VersionRef) -> PreparedVersion:
    """The prepared version the generator renders (cached per version and process)."""
    return get(version.format).prepare(version)


def untrusted_error(uses_code: tuple[str, ...] | list[str]) -> ApplicationError:
    """400 `template_untrusted`: the version runs its author's code and no staff user trusted it."""
    from apps.templates.services.formats._engine import TemplateUntrusted

    return TemplateUntrusted(
        "This template version runs code (" + ", ".join(uses_code) + "); a staff user must trust the version "
        "before it can be generated (POST /api/v1/templates/{slug}/versions/{version}/trust/).",
        extra={"uses_code": list(uses_code)},
    )


__all__ = [
    "FORMAT_MODULES",
    "Description",
    "FormatNotDetected",
    "PreparedVersion",
    "SourceInfo",
    "TemplateFormat",
    "UnknownFormat",
    "VersionRef",
    "all_formats",
    "config_files",
    "describe",
    "detect",
    "format_ids",
    "get",
    "prepare",
    "register_format",
    "untrusted_error",
    "validate",
]
