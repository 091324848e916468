"""The blueprint format: a structure document and the project Kiln scaffolded from it.

A blueprint version is a folder Kiln writes when a document is registered
(`apps/blueprints/services/blueprints.py`, `POST /templates/ {"blueprint": ...}`):

    blueprint.yaml   kiln_blueprint: 1, the document's title, the start command, `parameters`
                     (JSON Schema: project_name and what the stack needs, e.g. database_url)
    blueprint.md     the document, as given (kept with the version; not rendered)
    project/...      the scaffold: the project's files, Jinja only where parameters go

The scaffold is made once, when the version is recorded, so a version keeps its content even
when Kiln's scaffold engine changes: generating version 1.0.0 again renders the same files.
`project/` renders with the native renderer (`PreparedTemplate`, Kiln's sandbox; no code runs),
so generations, dry runs, exports, updates and the MCP tools treat a blueprint like any other
version. The version label is not in the folder: the same document has the same checksum
whatever it is called (the caller labels versions, as for Cookiecutter and Copier).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from apps.templates.services.formats import Description, VersionRef, register_format
from apps.templates.services.formats import _engine as engine
from apps.templates.services.formats._engine import FormatInvalid
from apps.templates.services.formats.native import (
    MANIFEST_NAME,
    TemplateInvalid,
    manifest_of,
    parameters_checked,
    validate_parameters,
)
from core.safe_paths import SafeWriter
from core.values import UntrustedValueError, load_untrusted_yaml

if TYPE_CHECKING:
    from apps.projects.services.project_generator import PreparedTemplate

FORMAT = "blueprint"
CONFIG = "blueprint.yaml"
DOCUMENT = "blueprint.md"
PROJECT = "project"
SCHEMA_VERSION = 1
CONFIG_KEYS = frozenset({"kiln_blueprint", "title", "start_command", "parameters"})
RESERVED = MANIFEST_NAME  # at the project's top the native renderer reads it as its manifest


def folder_write(
    folder: Path,
    *,
    document: str,
    title: str,
    start_command: str,
    parameters: dict[str, Any],
    files: Iterable[tuple[str, bytes, int]],
) -> None:
    """Write a blueprint version's folder (see the module docstring) into the empty `folder`.
    `files` are the project's (path, content, mode); `template.yaml` at the project's top is
    refused (the native renderer reads that name as its manifest)."""
    writer = SafeWriter(folder)
    config = {
        "kiln_blueprint": SCHEMA_VERSION,
        "title": title,
        "start_command": start_command,
        "parameters": parameters,
    }
    writer.write(CONFIG, yaml.safe_dump(config, sort_keys=False, allow_unicode=True).encode("utf-8"), 0o644)
    writer.write(DOCUMENT, document.encode("utf-8"), 0o644)
    for path, content, mode in files:
        if path == RESERVED:
            raise TemplateInvalid(
                f"The project cannot hold '{RESERVED}' at its top: Kiln's template format reserves that name.",
                extra={"path": path},
            )
        writer.write(f"{PROJECT}/{path}", content, mode)


def _config(folder: Path) -> dict[str, Any]:
    raw = engine.read_config(folder / CONFIG, what=CONFIG)
    try:
        data = load_untrusted_yaml(raw.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise FormatInvalid(f"{CONFIG} is not valid YAML: {str(exc).splitlines()[0]}", extra={"file": CONFIG}) from exc
    except UntrustedValueError as exc:
        raise FormatInvalid(f"{CONFIG}: {exc.message}", extra={"file": CONFIG, "reason": exc.reason}) from None
    if not isinstance(data, dict) or data.get("kiln_blueprint") != SCHEMA_VERSION:
        raise FormatInvalid(
            f"{CONFIG} must be a mapping with kiln_blueprint: {SCHEMA_VERSION} (a folder Kiln wrote for a blueprint).",
            extra={"file": CONFIG},
        )
    unknown = sorted(set(map(str, data)) - CONFIG_KEYS)
    if unknown:
        raise FormatInvalid(
            f"{CONFIG} has unknown keys: {', '.join(unknown)} (allowed: {', '.join(sorted(CONFIG_KEYS))}).",
            extra={"file": CONFIG, "keys": unknown},
        )
    for key in ("title", "start_command"):
        if not isinstance(data.get(key, ""), str):
            raise FormatInvalid(f"{CONFIG}: '{key}' must be a string.", extra={"file": CONFIG, "key": key})
    return data


@register_format
class BlueprintFormat:
    id = FORMAT
    config_files = (CONFIG,)

    def detect(self, folder: Path) -> bool:
        return (folder / CONFIG).is_file()

    def describe(self, folder: Path) -> Description:
        config = _config(folder)
        parameters = parameters_checked(config.get("parameters"), where=CONFIG)
        files, _dirs = engine.walk_files(folder)
        project: list[engine.FileInfo] = []
        for info in files:
            if info.rel.startswith(f"{PROJECT}/"):
                if info.rel == f"{PROJECT}/{RESERVED}":
                    raise FormatInvalid(
                        f"'{info.rel}': Kiln's template format reserves that name.", extra={"path": info.rel}
                    )
                project.append(info)
            elif info.rel not in (CONFIG, DOCUMENT):
                raise FormatInvalid(
                    f"A blueprint holds {CONFIG}, {DOCUMENT} and the project's files below {PROJECT}/, "
                    f"not '{info.rel}'.",
                    extra={"path": info.rel},
                )
        if not (folder / DOCUMENT).is_file():
            raise FormatInvalid(f"The blueprint has no {DOCUMENT} (its structure document).", extra={"file": DOCUMENT})
        return Description(
            format=FORMAT,
            parameters=parameters,
            checksum=engine.folder_checksum(folder, files),
            file_count=len(project),
            total_bytes=sum(info.size for info in project),
            description=str(config.get("title") or "")[:2000],
        )

    def validate(self, version: VersionRef, parameters: Any) -> dict[str, Any]:
        return validate_parameters(version.parameters, parameters, slug=version.slug)

    def prepare(self, version: VersionRef) -> PreparedTemplate:
        from apps.projects.services.project_generator import prepare_template

        manifest = dataclasses.replace(manifest_of(version), exclude=(), copy_without_render=())
        return prepare_template(version.folder / PROJECT, manifest, version.checksum)
