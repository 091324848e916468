"""The native format: a folder with `template.yaml` (see `parse_manifest`) and the files to render.

The manifest names the template, labels the version and declares the parameters as JSON Schema,
`exclude` and `copy_without_render` globs (and `update` / `migrations` for template updates).
Contents and path segments are Jinja in Kiln's sandbox; a segment that renders empty skips the
file; binaries and files without Jinja markers are copied. Native templates never run code.
Reading a folder never follows a link: symbolic links, devices and other special files make the
template invalid. The renderer is `PreparedTemplate` in `apps/projects/services/project_generator.py`.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from apps.templates.services.formats import Description, VersionRef, register_format
from apps.templates.services.update_spec import parse_update_spec
from core.exceptions import ApplicationError, ValidationFailed
from core.json_schema import MissingProperty, UserSchemaError, check_user_schema, iter_user_schema_errors
from core.safe_paths import MAX_GLOB_LENGTH, MAX_GLOBS, UnsafePath, clean_relative_path, globs_too_large
from core.values import UntrustedValueError, load_untrusted_yaml, refuse_unstorable_value

if TYPE_CHECKING:
    from apps.projects.services.project_generator import PreparedTemplate

FORMAT = "native"
MANIFEST_NAME = "template.yaml"
MAX_MANIFEST_BYTES = 256 * 1024
MANIFEST_KEYS = frozenset(
    {"slug", "name", "description", "version", "parameters", "exclude", "copy_without_render", "update", "migrations"}
)
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$")
VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,49}$")


class TemplateInvalid(ApplicationError):
    status_code = 400
    default_code = "template_invalid"


@dataclass(frozen=True)
class TemplateManifest:
    slug: str
    name: str
    description: str
    version: str
    parameters: dict[str, Any]
    exclude: tuple[str, ...] = ()
    copy_without_render: tuple[str, ...] = ()


@dataclass(frozen=True)
class TemplateFileInfo:
    rel: str
    mode: int
    size: int


@dataclass
class ScannedTemplate:
    folder: Path
    manifest: TemplateManifest
    files: list[TemplateFileInfo] = field(default_factory=list)
    checksum: str = ""

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def slugify_name(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:100].strip("-") or "template"


def parameters_checked(value: Any, *, where: str) -> dict[str, Any]:
    """A template's `parameters` (JSON Schema, type object): Kiln's schema limits, identifier
    names, defaults that match their schema; every problem is a `TemplateInvalid` naming the key.
    (The native manifest's rule; the blueprint format's `blueprint.yaml` uses it too.)"""
    parameters = value or {"type": "object", "properties": {}}
    if not isinstance(parameters, dict):
        raise TemplateInvalid(f"{where}: 'parameters' must be a JSON Schema object.", extra={"key": "parameters"})
    parameters.setdefault("type", "object")
    if parameters.get("type") != "object":
        raise TemplateInvalid(f"{where}: 'parameters' must have type: object.", extra={"key": "parameters"})
    try:
        check_user_schema(parameters)
    except UserSchemaError as exc:
        raise TemplateInvalid(
            f"{where}: 'parameters': {exc}",
            extra={"key": "parameters", "pointer": f"/parameters{exc.pointer}", "reason": exc.reason},
        ) from None
    properties = parameters.get("properties", {})
    if not isinstance(properties, dict):
        raise TemplateInvalid(f"{where}: 'parameters.properties' must be a mapping.", extra={"key": "parameters"})
    for prop, schema in properties.items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", str(prop)):
            raise TemplateInvalid(
                f"{where}: parameter name '{prop}' must be a valid identifier (letters, digits, _).",
                extra={"key": f"parameters.properties.{prop}"},
            )
        if isinstance(schema, dict) and "default" in schema:
            # through the whole schema, so that references to #/$defs/... resolve
            try:
                errors = [
                    error
                    for error in iter_user_schema_errors(parameters, {prop: schema["default"]})
                    if list(error.absolute_path)[:1] == [prop]
                ]
            except UserSchemaError as exc:  # the default is too deep or costly to check
                raise TemplateInvalid(
                    f"{where}: the default of parameter '{prop}' cannot be checked: {exc}",
                    extra={"key": f"parameters.properties.{prop}.default", "reason": exc.reason},
                ) from None
            if errors:
                raise TemplateInvalid(
                    f"{where}: the default of parameter '{prop}' does not match its schema: {errors[0].message}",
                    extra={"key": f"parameters.properties.{prop}.default"},
                )
    return parameters


def parse_manifest(raw: bytes, *, where: str = MANIFEST_NAME) -> TemplateManifest:
    """Validate `template.yaml`; every problem is a `TemplateInvalid` naming the key."""
    if len(raw) > MAX_MANIFEST_BYTES:
        raise TemplateInvalid(f"{where} is larger than {MAX_MANIFEST_BYTES} bytes.")
    try:
        data = load_untrusted_yaml(raw.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise TemplateInvalid(f"{where} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    except UntrustedValueError as exc:  # too deep, aliases, a date or .nan, a NUL or a lone surrogate
        raise TemplateInvalid(f"{where}: {exc.message}", extra={"reason": exc.reason}) from None
    if not isinstance(data, dict):
        raise TemplateInvalid(f"{where} must be a mapping with name, version and parameters.")
    unknown = sorted(set(map(str, data)) - MANIFEST_KEYS)
    if unknown:
        raise TemplateInvalid(
            f"{where} has unknown keys: {', '.join(unknown)}. Kiln templates never run code (no hooks, tasks "
            "or extensions); allowed keys are " + ", ".join(sorted(MANIFEST_KEYS)) + ".",
            extra={"keys": unknown},
        )

    def text(key: str, *, required: bool, limit: int) -> str:
        value = data.get(key)
        if value is None:
            if required:
                raise TemplateInvalid(f"{where}: '{key}' is required.", extra={"key": key})
            return ""
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise TemplateInvalid(f"{where}: '{key}' must be a string.", extra={"key": key})
        value = str(value).strip()
        if len(value) > limit:
            raise TemplateInvalid(f"{where}: '{key}' is longer than {limit} characters.", extra={"key": key})
        return value

    name = text("name", required=True, limit=200)
    version = text("version", required=True, limit=50)
    if not VERSION_RE.match(version):
        raise TemplateInvalid(
            f"{where}: 'version' must be a version label such as 1.2.3 or 2024.06-rc1 "
            "(letters, digits, '.', '+', '_', '-'; starting with a letter or digit).",
            extra={"key": "version"},
        )
    slug = text("slug", required=False, limit=100) or slugify_name(name)
    if not SLUG_RE.match(slug):
        raise TemplateInvalid(f"{where}: 'slug' must be lowercase letters, digits and dashes.", extra={"key": "slug"})
    parameters = parameters_checked(data.get("parameters"), where=where)

    def globs(key: str) -> tuple[str, ...]:
        value = data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            raise TemplateInvalid(f"{where}: '{key}' must be a list of glob patterns.", extra={"key": key})
        if globs_too_large(value):  # they become one Python regular expression
            raise TemplateInvalid(
                f"{where}: '{key}' takes at most {MAX_GLOBS} glob patterns of at most {MAX_GLOB_LENGTH} characters.",
                extra={"key": key, "reason": "too_large"},
            )
        return tuple(value)

    parse_update_spec(data, where=where)  # `update` and `migrations`: checked here, applied by updates
    return TemplateManifest(
        slug=slug,
        name=name,
        description=text("description", required=False, limit=2000),
        version=version,
        parameters=parameters,
        exclude=globs("exclude"),
        copy_without_render=globs("copy_without_render"),
    )


def iter_template_files(folder: Path) -> Iterator[TemplateFileInfo]:
    """Every file of the template below `folder`, sorted; links and special files are errors."""
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        base = folder / rel_dir if rel_dir else folder
        with os.scandir(base) as it:
            entries = sorted(it, key=lambda e: e.name)
        subdirs = []
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                raise TemplateInvalid(
                    f"The template contains a symbolic link '{rel}'; links are not allowed in templates.",
                    code="symlink_not_allowed",
                    extra={"path": rel},
                )
            if stat.S_ISDIR(st.st_mode):
                subdirs.append(rel)
                continue
            if not stat.S_ISREG(st.st_mode):
                raise TemplateInvalid(
                    f"The template contains '{rel}', which is not a regular file.",
                    code="unsupported_file_type",
                    extra={"path": rel},
                )
            if rel == MANIFEST_NAME:
                continue
            if st.st_nlink > 1:
                raise TemplateInvalid(
                    f"The template file '{rel}' is a hard link; links are not allowed in templates.",
                    code="symlink_not_allowed",
                    extra={"path": rel},
                )
            try:
                clean_relative_path(rel)
            except UnsafePath as exc:
                raise TemplateInvalid(f"Template file name not allowed: {exc.message}", code="unsafe_path") from exc
            mode = 0o755 if st.st_mode & stat.S_IXUSR else 0o644
            yield TemplateFileInfo(rel=rel, mode=mode, size=st.st_size)
        stack.extend(reversed(subdirs))


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def scan_template(folder: Path) -> ScannedTemplate:
    """Read and check a template folder and compute its checksum."""
    manifest_path = folder / MANIFEST_NAME
    try:
        st = os.lstat(manifest_path)
    except FileNotFoundError as exc:
        raise TemplateInvalid(f"The template has no {MANIFEST_NAME} at its top level.") from exc
    if not stat.S_ISREG(st.st_mode):
        raise TemplateInvalid(f"{MANIFEST_NAME} must be a regular file.", code="symlink_not_allowed")
    raw = manifest_path.read_bytes()
    manifest = parse_manifest(raw)
    digest = hashlib.sha256(b"kiln-template-v1\0" + hashlib.sha256(raw).digest())
    files = []
    for info in iter_template_files(folder):
        files.append(info)
        digest.update(f"{info.rel}\0{info.mode:o}\0{_file_sha256(folder / info.rel)}\n".encode())
    return ScannedTemplate(folder=folder, manifest=manifest, files=files, checksum=digest.hexdigest())


def validate_parameters(schema: dict[str, Any] | None, parameters: Any, *, slug: str) -> dict[str, Any]:
    """Apply defaults and validate against the version's JSON Schema (400 with field errors)."""
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        raise ValidationFailed(
            "parameters must be a JSON object.", extra={"fields": {"parameters": ["Expected an object."]}}
        )
    refuse_unstorable_value(parameters, field="parameters")  # callers other than the API's parsers too
    schema = schema or {"type": "object"}
    properties = schema.get("properties", {})
    unknown = sorted(set(parameters) - set(properties))
    errors: dict[str, list[str]] = {}
    for name in unknown:
        errors[f"parameters.{name}"] = [
            f"Unknown parameter; '{slug}' accepts: {', '.join(sorted(properties)) or 'none'}."
        ]
    values = dict(parameters)
    for name, prop in properties.items():
        if name not in values and isinstance(prop, dict) and "default" in prop:
            values[name] = prop["default"]
    try:
        found = sorted(iter_user_schema_errors(schema, values), key=lambda e: list(e.absolute_path))
    except UserSchemaError as exc:  # stored before the upload checks, or a value too costly to validate
        raise TemplateInvalid(
            f"The parameters cannot be validated against template '{slug}': {exc}",
            extra={"reason": exc.reason, "pointer": exc.pointer},
        ) from None
    for error in found:
        if error.validator == "additionalProperties" and unknown:
            continue
        path = ".".join(str(p) for p in error.absolute_path)
        if isinstance(error, MissingProperty):
            path = ".".join([*(str(p) for p in error.absolute_path), error.name])
        key = f"parameters.{path}" if path else "parameters"
        errors.setdefault(key, []).append(error.message)
    if errors:
        first_key = next(iter(errors))
        raise ValidationFailed(
            f"Invalid parameters for template '{slug}': {first_key}: {errors[first_key][0]}",
            extra={"fields": errors},
        )
    return values


def manifest_of(version: VersionRef) -> TemplateManifest:
    return TemplateManifest(
        slug=version.slug,
        name=version.name,
        description=version.description,
        version=version.version,
        parameters=version.parameters,
        exclude=tuple(version.exclude),
        copy_without_render=tuple(version.copy_without_render),
    )


@register_format
class NativeFormat:
    id = FORMAT
    config_files = (MANIFEST_NAME,)

    def detect(self, folder: Path) -> bool:
        return (folder / MANIFEST_NAME).is_file()

    def describe(self, folder: Path) -> Description:
        scanned = scan_template(folder)
        manifest = scanned.manifest
        return Description(
            format=FORMAT,
            parameters=manifest.parameters,
            checksum=scanned.checksum,
            file_count=len(scanned.files),
            total_bytes=scanned.total_bytes,
            exclude=manifest.exclude,
            copy_without_render=manifest.copy_without_render,
            slug=manifest.slug,
            name=manifest.name,
            description=manifest.description,
            version=manifest.version,
        )

    def validate(self, version: VersionRef, parameters: Any) -> dict[str, Any]:
        return validate_parameters(version.parameters, parameters, slug=version.slug)

    def prepare(self, version: VersionRef) -> PreparedTemplate:
        # imported here: the generator imports this module (the manifest, the file walk)
        from apps.projects.services.project_generator import prepare_template

        return prepare_template(version.folder, manifest_of(version), version.checksum)
