"""The Cookiecutter format: a template renders in Kiln exactly as cookiecutter 2.7.1 renders it.

What "exactly" covers (cookiecutter's `main`, `generate`, `prompt`, `hooks`, `find` modules,
run with `--no-input` and the answers as extra context):

* `cookiecutter.json` is read in order; each answer overrides its variable as cookiecutter's
  `apply_overwrites_to_context` does (a choice moves to the front, a dict merges, "yes"/"no"
  become booleans), then every variable renders as Jinja over the earlier ones (`_x` kept
  raw, `__x` rendered, dicts in a second pass). `__prompts__` become descriptions.
* The project is the contents of the one top-level folder whose name contains `cookiecutter`
  and the variable delimiters; each file's whole relative path renders, a file whose name
  renders empty is skipped, a folder whose name renders empty is the tool's error.
* `_copy_without_render` (fnmatch globs on the unrendered path) copies contents verbatim; a
  matching folder is copied with its files' names as written. Binary files (`binaryornot`)
  are copied. Text files render and are written with the line ending of their first line
  (Python's universal-newline reading), or `_new_lines`.
* The built-in extensions only (`cookiecutter_ext`), `jinja2_time.TimeExtension` as an alias
  of the `now` tag, `jinja2.ext.do` / `loopcontrols`; `_jinja2_env_vars` for delimiters and
  whitespace options; `templates/` beside the project folder for include/extends.
* Hooks (`pre_prompt`, `pre_gen_project`, `post_gen_project`, Python or shell, rendered with
  Jinja first) run only in the isolation runner, and only for a trusted version.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import posixpath
import re
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from django.conf import settings
from jinja2 import Template

from apps.projects.services.project_generator import GenerationFailed, GenerationResult, OutputSink
from apps.templates.services.formats import Description, VersionRef, register_format, untrusted_error
from apps.templates.services.formats import _engine as engine
from apps.templates.services.formats._engine import FileInfo, FormatInvalid, FormatUnsupported, SourceInfo
from apps.templates.services.formats.cookiecutter_ext import CookiecutterExtension
from core.exceptions import ValidationFailed
from core.safe_paths import MAX_GLOB_LENGTH, MAX_GLOBS, globs_too_large
from core.sandbox import KilnSandbox, make_environment, render_limits
from core.values import UntrustedValueError, load_untrusted_json

FORMAT = "cookiecutter"
TOOL_VERSION = "2.7.1"
CONFIG = "cookiecutter.json"
HOOKS = ("pre_prompt", "pre_gen_project", "post_gen_project")

# `_extensions` entries Kiln provides: the five defaults cookiecutter always loads (naming them
# again is a no-op), the common alias of the `now` tag, and Jinja's own harmless extensions.
BUILTIN_EXTENSIONS: dict[str, str | None] = {
    "cookiecutter.extensions.JsonifyExtension": None,
    "cookiecutter.extensions.RandomStringExtension": None,
    "cookiecutter.extensions.SlugifyExtension": None,
    "cookiecutter.extensions.TimeExtension": None,
    "cookiecutter.extensions.UUIDExtension": None,
    "jinja2_time.TimeExtension": None,
    "jinja2.ext.do": "jinja2.ext.do",
    "jinja2.ext.loopcontrols": "jinja2.ext.loopcontrols",
}
# `_jinja2_env_vars` a template may set: syntax and whitespace only (never a loader, an
# undefined class, a finalizer or extensions).
ENV_VAR_OPTIONS: dict[str, type | tuple[type, ...]] = {
    "block_start_string": str,
    "block_end_string": str,
    "variable_start_string": str,
    "variable_end_string": str,
    "comment_start_string": str,
    "comment_end_string": str,
    "line_statement_prefix": (str, type(None)),
    "line_comment_prefix": (str, type(None)),
    "trim_blocks": bool,
    "lstrip_blocks": bool,
    "newline_sequence": str,
    "keep_trailing_newline": bool,
    "autoescape": bool,
}
YES = frozenset({"1", "true", "t", "yes", "y", "on"})
NO = frozenset({"0", "false", "f", "no", "n", "off"})


# --- reading the template ----------------------------------------------------------------------


@dataclass
class CookiecutterSpec:
    """A Cookiecutter template folder read and checked once (per version)."""

    folder: Path
    text: str
    config: OrderedDict[str, Any]
    template_dir: str
    env_options: dict[str, Any]
    jinja_extensions: list[str]
    local_extensions: list[str]
    hooks: dict[str, list[str]]
    files: list[FileInfo]
    dirs: list[str]
    checksum: str
    uses_code: list[str] = field(default_factory=list)

    @property
    def copy_without_render(self) -> list[str]:
        value = self.config.get("_copy_without_render") or []
        return [str(item) for item in value] if isinstance(value, list) else []


def detect(folder: Path) -> bool:
    return (folder / CONFIG).is_file()


def _config_error(
    text: str, message: str, *, line: int | None = None, code: str = "template_invalid", **extra: Any
) -> FormatInvalid:
    where = f"{CONFIG}:{line}" if line else CONFIG
    details: dict[str, Any] = {"file": CONFIG, **extra}
    if line:
        details["line"] = line
    error = FormatInvalid(f"{where}: {message}", extra=details)
    error.code = code
    return error


def _line_of_key(text: str, key: str) -> int | None:
    found = text.find(json.dumps(key))
    return engine.line_of(text, found) if found >= 0 else None


def parse_config(raw: bytes) -> tuple[str, OrderedDict[str, Any]]:
    """cookiecutter.json, read as Kiln reads any JSON a person supplies (`core.values`: bounded depth,
    no NUL, lone surrogates or non-finite numbers); a syntax error names its line and column."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatInvalid(f"{CONFIG} is not valid UTF-8.", extra={"file": CONFIG}) from None
    try:
        data = load_untrusted_json(text)
    except UntrustedValueError as exc:
        if exc.reason == "invalid":
            try:
                json.loads(text)
            except json.JSONDecodeError as syntax:
                raise FormatInvalid(
                    f"{CONFIG}:{syntax.lineno}:{syntax.colno}: not valid JSON: {syntax.msg}.",
                    extra={"file": CONFIG, "line": syntax.lineno, "column": syntax.colno},
                ) from None
        raise FormatInvalid(f"{CONFIG}: {exc.message}", extra={"file": CONFIG, "reason": exc.reason}) from None
    if not isinstance(data, dict):
        raise FormatInvalid(f"{CONFIG} must be a JSON object of variables.", extra={"file": CONFIG, "line": 1})
    return text, OrderedDict(data)


def _find_template_dir(folder: Path, start: str, end: str) -> str:
    """Cookiecutter's `find_template`: the top-level entry named like `{{cookiecutter.x}}`."""
    candidates = sorted(
        entry.name
        for entry in folder.iterdir()
        if "cookiecutter" in entry.name and start in entry.name and end in entry.name and entry.is_dir()
    )
    if not candidates:
        raise FormatInvalid(
            "The Cookiecutter template has no project folder: one top-level folder's name must contain "
            "'cookiecutter' inside the variable delimiters, such as '{{cookiecutter.project_slug}}'.",
            extra={"file": CONFIG},
        )
    return candidates[0]


def load_spec(folder: Path, *, scan: bool = True) -> CookiecutterSpec:
    """Read and check cookiecutter.json and the hooks; with `scan`, also every file (and the checksum)."""
    text, config = parse_config(engine.read_config(folder / CONFIG, what=CONFIG))
    for key in config:
        if "\0" in key:
            raise _config_error(text, "variable names must not contain NUL characters.")
    if "template" in config or "templates" in config:
        raise _config_error(
            text,
            "nested templates ('templates' / 'template' keys choosing a sub-template) are not supported; "
            "register each sub-template's folder as its own template (git 'subdirectory').",
            line=_line_of_key(text, "templates" if "templates" in config else "template"),
            code="template_unsupported",
        )
    env_vars = config.get("_jinja2_env_vars") or {}
    if not isinstance(env_vars, dict):
        raise _config_error(text, "'_jinja2_env_vars' must be an object.", line=_line_of_key(text, "_jinja2_env_vars"))
    env_options: dict[str, Any] = {}
    for key, value in env_vars.items():
        expected = ENV_VAR_OPTIONS.get(key)
        if expected is None:
            raise _config_error(
                text,
                f"'_jinja2_env_vars' sets '{key}', which Kiln does not allow (only delimiters and whitespace "
                f"options: {', '.join(sorted(ENV_VAR_OPTIONS))}).",
                line=_line_of_key(text, key),
                code="template_unsupported",
            )
        if not isinstance(value, expected) or (isinstance(value, str) and not value and key.endswith("string")):
            raise _config_error(text, f"'_jinja2_env_vars.{key}' has a wrong type.", line=_line_of_key(text, key))
        env_options[key] = value
    for key in ("_copy_without_render", "_extensions"):
        value = config.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(item, str) for item in value)):
            raise _config_error(text, f"'{key}' must be a list of strings.", line=_line_of_key(text, key))
    if globs_too_large(config.get("_copy_without_render") or []):  # fnmatch: quadratic in '['
        raise _config_error(
            text,
            f"'_copy_without_render' takes at most {MAX_GLOBS} patterns of at most {MAX_GLOB_LENGTH} characters.",
            line=_line_of_key(text, "_copy_without_render"),
        )
    new_lines = config.get("_new_lines")
    if new_lines not in (None, False, "", "\n", "\r\n", "\r"):
        raise _config_error(
            text, '\'_new_lines\' must be "\\n", "\\r\\n" or "\\r".', line=_line_of_key(text, "_new_lines")
        )
    jinja_extensions: list[str] = []
    local_extensions: list[str] = []
    for name in config.get("_extensions") or []:
        if name in BUILTIN_EXTENSIONS:
            import_name = BUILTIN_EXTENSIONS[name]
            if import_name and import_name not in jinja_extensions:
                jinja_extensions.append(import_name)
            continue
        module = name.split(".", 1)[0]
        if (folder / f"{module}.py").is_file() or (folder / module / "__init__.py").is_file():
            local_extensions.append(name)
            continue
        raise _config_error(
            text,
            f"the extension '{name}' is not one Kiln provides. Kiln renders Cookiecutter's built-in "
            "extensions (jsonify, random_ascii_string, slugify, uuid4, the now tag; jinja2_time.TimeExtension "
            "as its alias; jinja2.ext.do and jinja2.ext.loopcontrols) and never imports other modules.",
            line=_line_of_key(text, name),
            code="template_unsupported",
            extension=name,
        )
    start = env_options.get("variable_start_string", "{{")
    end = env_options.get("variable_end_string", "}}")
    template_dir = _find_template_dir(folder, start, end)
    hooks: dict[str, list[str]] = {}
    hooks_dir = folder / "hooks"
    if hooks_dir.is_dir() and not hooks_dir.is_symlink():
        for entry in sorted(hooks_dir.iterdir(), key=lambda p: p.name):
            base = os.path.splitext(entry.name)[0]
            if base in HOOKS and not entry.name.endswith("~") and entry.is_file():
                hooks.setdefault(base, []).append(f"hooks/{entry.name}")
    files, dirs = engine.walk_files(folder) if scan else ([], [])
    uses_code = [path for name in HOOKS for path in hooks.get(name, [])]
    uses_code += [f"_extensions: {name}" for name in local_extensions]
    return CookiecutterSpec(
        folder=folder,
        text=text,
        config=config,
        template_dir=template_dir,
        env_options=env_options,
        jinja_extensions=jinja_extensions,
        local_extensions=local_extensions,
        hooks=hooks,
        files=files,
        dirs=dirs,
        checksum=engine.folder_checksum(folder, files) if scan else "",
        uses_code=uses_code,
    )


def make_env(spec: CookiecutterSpec, loader: Any = None) -> KilnSandbox:
    options = dict(spec.env_options)
    return make_environment(
        mutable=True,
        loader=loader,
        extensions=[CookiecutterExtension, *spec.jinja_extensions],
        **options,
    )


# --- parameters ------------------------------------------------------------------------------------


def _has_markup(value: Any, env: KilnSandbox | None = None) -> bool:
    text = json.dumps(value)
    starts = (
        ("{{", "{%", "{#")
        if env is None
        else (env.variable_start_string, env.block_start_string, env.comment_start_string)
    )
    return any(start in text for start in starts)


def parameters_schema(spec: CookiecutterSpec) -> dict[str, Any]:
    """cookiecutter.json as JSON Schema: one property per visible variable, in order.

    A default that is a template over earlier answers (`{{ cookiecutter.x }}`) is given as
    `x-default-template`, since its value depends on the answers; `__prompts__` give the
    descriptions and the choice labels (`x-enum-labels`, parallel to `enum`).
    """
    prompts = spec.config.get("__prompts__")
    prompts = prompts if isinstance(prompts, dict) else {}
    properties: dict[str, Any] = {}
    for key, raw in spec.config.items():
        if key.startswith("_"):
            continue
        prop: dict[str, Any]
        label = prompts.get(key)
        if isinstance(raw, bool):
            prop = {"type": "boolean", "default": raw}
        elif isinstance(raw, list):
            prop = {"enum": list(raw)}
            if raw:
                prop["default"] = raw[0]
            if isinstance(label, dict):
                prop["x-enum-labels"] = [
                    str(label[option]) if isinstance(option, str) and option in label else str(option) for option in raw
                ]
        elif isinstance(raw, dict):
            prop = {"type": "object", "default": raw}
        elif raw is None:
            prop = {"type": "null", "default": None}
        else:
            prop = {"type": "string" if isinstance(raw, str) else ["string", "number"], "default": raw}
        if "default" in prop and _has_markup(prop["default"]):
            prop["x-default-template"] = prop.pop("default")
        if isinstance(label, str):
            prop["description"] = label
        elif isinstance(label, dict) and isinstance(label.get("__prompt__"), str):
            prop["description"] = label["__prompt__"]
        properties[key] = prop
    return {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "x-format": FORMAT,
        "x-order": list(properties),  # cookiecutter.json's order (JSON objects stored as jsonb lose it)
    }


def _yes_no(value: str) -> bool | None:
    lowered = value.strip().lower()
    if lowered in YES:
        return True
    if lowered in NO:
        return False
    return None


def _apply_overwrites(
    context: dict[str, Any], overwrite: dict[str, Any], errors: dict[str, list[str]], *, prefix: str, nested: bool
) -> None:
    """cookiecutter's `apply_overwrites_to_context`, with its ValueErrors as field errors."""
    for variable, value in overwrite.items():
        key = f"{prefix}{variable}"
        if variable not in context:
            if not nested:
                errors.setdefault(key, []).append("Unknown parameter: cookiecutter.json has no such variable.")
                continue
            context[variable] = value
        current = context[variable]
        if isinstance(current, list):
            if nested:
                context[variable] = value
            elif isinstance(value, list):
                try:
                    subset = all(item in current for item in value)
                except TypeError:
                    subset = False
                if subset:
                    context[variable] = value
                else:
                    errors.setdefault(key, []).append(f"{value} is not a selection of the choices {current}.")
            elif value in current:
                current.remove(value)
                current.insert(0, value)
            else:
                errors.setdefault(key, []).append(
                    f"{json.dumps(value)} is not one of the choices {json.dumps(current)}."
                )
        elif isinstance(current, dict):
            if isinstance(value, dict):
                _apply_overwrites(current, value, errors, prefix=f"{key}.", nested=True)
            else:
                errors.setdefault(key, []).append("Expected an object (a dict variable; given keys replace its keys).")
        elif isinstance(current, bool):
            if isinstance(value, bool):
                context[variable] = value
            elif isinstance(value, str) and _yes_no(value) is not None:
                context[variable] = _yes_no(value)
            else:
                errors.setdefault(key, []).append(
                    f"{json.dumps(value)} could not be converted to a boolean (true/false, yes/no, y/n, on/off, 1/0)."
                )
        elif nested or (isinstance(value, (str, int, float)) and not isinstance(value, bool)):
            context[variable] = value
        else:
            errors.setdefault(key, []).append("Expected a string (or a number).")


def _render_variable(env: KilnSandbox, cache: dict[str, Template], raw: Any, cc: dict[str, Any], key: str) -> Any:
    """cookiecutter's `render_variable`: strings (and str() of numbers) render over `cc`."""
    if raw is None or isinstance(raw, bool):
        return raw
    if isinstance(raw, dict):
        return {
            _render_variable(env, cache, k, cc, key): _render_variable(env, cache, v, cc, key) for k, v in raw.items()
        }
    if isinstance(raw, list):
        return [_render_variable(env, cache, v, cc, key) for v in raw]
    if not isinstance(raw, str):
        raw = str(raw)
    template = cache.get(raw)
    if template is None:
        try:
            template = env.from_string(raw)
        except Exception as exc:
            raise _variable_error(key, exc) from None
        if len(cache) < 4096:
            cache[raw] = template
    try:
        return engine.render_text(template, {"cookiecutter": cc}, f"{CONFIG}: '{key}'", "<template>", path=True)
    except GenerationFailed as exc:
        raise _variable_error(key, exc) from None


def _variable_error(key: str, exc: Exception) -> ValidationFailed:
    message = getattr(exc, "message", None) or str(exc)
    return ValidationFailed(
        f"Unable to render variable '{key}' of {CONFIG}: {message}",
        code="template_variable_missing" if "undefined" in message.lower() else "template_error",
        extra={"file": CONFIG, "variable": key, "fields": {f"parameters.{key}": [message]}},
    )


def resolve_context(
    spec: CookiecutterSpec, env: KilnSandbox, answers: dict[str, Any], source: SourceInfo, cache: dict[str, Template]
) -> dict[str, Any]:
    """The `{cookiecutter, _cookiecutter}` context cookiecutter builds for `--no-input` runs."""
    if not isinstance(answers, dict):
        raise ValidationFailed(
            "parameters must be a JSON object.", extra={"fields": {"parameters": ["Expected an object."]}}
        )
    raw = copy.deepcopy(spec.config)
    errors: dict[str, list[str]] = {}
    for key in answers:
        if str(key).startswith("_"):
            errors.setdefault(f"parameters.{key}", []).append(
                "Variables starting with '_' are the template's own settings and cannot be set."
            )
    _apply_overwrites(
        raw,
        {k: v for k, v in answers.items() if not str(k).startswith("_")},
        errors,
        prefix="parameters.",
        nested=False,
    )
    if errors:
        first = next(iter(errors))
        raise ValidationFailed(
            f"Invalid parameters for this Cookiecutter template: {first}: {errors[first][0]}",
            extra={"fields": errors},
        )
    original = {k: copy.deepcopy(v) for k, v in raw.items() if not k.startswith("_")}
    raw.pop("__prompts__", None)
    cc: OrderedDict[str, Any] = OrderedDict()
    for key, value in raw.items():
        if key.startswith("_") and not key.startswith("__"):
            cc[key] = value
            continue
        if key.startswith("__"):
            cc[key] = _render_variable(env, cache, value, cc, key)
            continue
        if isinstance(value, list):
            options = [_render_variable(env, cache, option, cc, key) for option in value]
            if not options:
                raise ValidationFailed(
                    f"{CONFIG}: the list of choices of '{key}' is empty.",
                    code="template_invalid",
                    extra={"file": CONFIG, "line": _line_of_key(spec.text, key)},
                )
            cc[key] = options[0]
        elif isinstance(value, bool):
            cc[key] = value
        elif not isinstance(value, dict):
            cc[key] = _render_variable(env, cache, value, cc, key)
    for key, value in raw.items():
        if key.startswith("_") and not key.startswith("__"):
            continue
        if isinstance(value, dict):
            cc[key] = _render_variable(env, cache, value, cc, key)
    final: OrderedDict[str, Any] = OrderedDict(raw)
    final.update(cc)
    final["_template"] = source.url
    final["_output_dir"] = source.output_dir
    final["_repo_dir"] = source.repo_dir
    final["_checkout"] = source.checkout
    return {"cookiecutter": final, "_cookiecutter": original}


# --- preparing and rendering --------------------------------------------------------------------


@dataclass
class _File:
    infile: str  # relative to the project folder, as cookiecutter names it
    rel: str  # relative to the template folder
    mode: int
    copy_only: bool
    binary: bool = False
    newline: str | None = None
    content: str | None = None  # the compiled content template's name (None: copied or plain text)
    path: str | None = None  # the compiled path template's name (None: the path has no markup)
    folder: str | None = None  # or: the compiled template of the folder part, when only it has markup
    name: str = ""  # the file name, when `folder` is set


@dataclass
class _Step:
    kind: str  # "dir" | "copydir" | "file"
    rel: str
    file: _File | None = None
    copied: list[tuple[str, str, int]] = field(default_factory=list)  # copydir: (path below it, rel, mode)
    path: str | None = None


_NEWLINE = re.compile(r"\r\n|\r|\n")


def _detect_newline(path: Path) -> str | None:
    """cookiecutter reads one line in text mode and takes `newlines` (the first if several)."""
    with open(path, encoding="utf-8") as handle:
        handle.readline()
        found = handle.newlines
    return found[0] if isinstance(found, tuple) else found


def _normal(path: str) -> str:
    """The path as the file system sees it (`a//b`, `./a`, `a/`); most paths are already normal."""
    if "//" in path or path.startswith("./") or "/./" in path or path.endswith(("/", "/.")) or path == ".":
        normal = posixpath.normpath(path)
        return "" if normal == "." else normal
    return path


class PreparedCookiecutter:
    """A Cookiecutter template read, classified and compiled once per version and process.

    The classification (the walk order, copied folders, binary files, each file's line ending,
    which paths and contents hold markup) is kept as the version's plan beside its compiled code,
    so a warm generation in a new process opens only the files it copies.
    """

    def __init__(self, spec: CookiecutterSpec, checksum: str) -> None:
        self.spec = spec
        self.folder = spec.folder
        self.checksum = checksum
        self.env = make_env(spec, engine.SourceLoader(spec.folder, set(), [spec.template_dir, "templates"]))
        self.code = engine.CodeCache(self.env, engine.store_path(FORMAT, checksum))
        self.variable_cache: dict[str, Template] = {}
        self.markers = tuple(
            m
            for m in (
                self.env.variable_start_string,
                self.env.block_start_string,
                self.env.comment_start_string,
                self.env.line_statement_prefix,
                self.env.line_comment_prefix,
            )
            if m
        )
        self.steps: list[_Step] = []
        self.top: str | None = None
        self._names = 0
        plan = engine.read_plan(FORMAT, checksum)
        if plan is None or not self._load(plan):
            self._build()

    # --- the plan ---

    def _load(self, plan: dict[str, Any]) -> bool:
        if not self.code.adopt(plan["digests"], plan.get("errors")):
            return False
        self.loader_known(plan["known"])
        self.top = plan["top"]
        for item in plan["steps"]:
            entry = item.get("file")
            self.steps.append(
                _Step(
                    kind=item["kind"],
                    rel=item["rel"],
                    path=item.get("path"),
                    copied=[tuple(c) for c in item.get("copied", [])],  # type: ignore[misc]
                    file=_File(**entry) if entry else None,
                )
            )
        return True

    def loader_known(self, known: list[str]) -> None:
        loader = self.env.loader
        assert isinstance(loader, engine.SourceLoader)
        loader.known = set(known)

    def _build(self) -> None:
        files, dirs = engine.walk_files(self.folder)
        self.spec.files, self.spec.dirs = files, dirs
        self.loader_known([info.rel for info in files])
        self.top = self._path_template(self.spec.template_dir)
        self._plan(files, dirs)
        self.code.compile_all()
        engine.write_plan(
            FORMAT,
            self.checksum,
            {
                "digests": self.code.digests,
                "errors": self.code.errors,
                "known": [info.rel for info in files],
                "top": self.top,
                "steps": [
                    {
                        "kind": step.kind,
                        "rel": step.rel,
                        "path": step.path,
                        "copied": step.copied,
                        "file": dataclasses.asdict(step.file) if step.file else None,
                    }
                    for step in self.steps
                ],
            },
        )

    def _name(self, prefix: str) -> str:
        self._names += 1
        return f"{prefix}{self._names}"

    def _templated(self, text: str) -> bool:
        return any(marker in text for marker in self.markers)

    def _path_template(self, rel: str) -> str | None:
        if not self._templated(rel):
            return None
        name = self._name("p")
        self.code.add(name, rel, rel, path=True)
        return name

    def _plan(self, files: list[FileInfo], dirs: list[str]) -> None:
        top = self.spec.template_dir
        prefix = top + "/"
        children: dict[str, tuple[list[str], list[FileInfo]]] = {"": ([], [])}
        for rel in dirs:
            if rel.startswith(prefix):
                inner = rel[len(prefix) :]
                children[inner] = ([], [])
                parent = inner.rsplit("/", 1)[0] if "/" in inner else ""
                children[parent][0].append(inner)
        for info in files:
            if info.rel.startswith(prefix):
                inner = info.rel[len(prefix) :]
                parent = inner.rsplit("/", 1)[0] if "/" in inner else ""
                children[parent][1].append(info)
        patterns = self.spec.copy_without_render
        folder_templates: dict[str, str | None] = {}

        def copy_only(path: str) -> bool:
            return any(fnmatch(path, pattern) for pattern in patterns)

        def walk(root: str) -> None:
            subdirs, here = children[root]
            render_dirs = []
            for sub in sorted(subdirs):
                if copy_only(sub):
                    step = _Step("copydir", sub, path=self._path_template(sub))
                    below = prefix + sub + "/"
                    step.copied = [
                        (info.rel[len(below) :], info.rel, info.mode) for info in files if info.rel.startswith(below)
                    ]
                    self.steps.append(step)
                else:
                    render_dirs.append(sub)
            for sub in render_dirs:
                self.steps.append(_Step("dir", sub, path=self._path_template(sub)))
            for info in sorted(here, key=lambda i: i.rel.rsplit("/", 1)[-1]):
                inner = info.rel[len(prefix) :]
                self.steps.append(
                    _Step("file", inner, file=self._classify(inner, info, copy_only(inner), folder_templates))
                )
            for sub in render_dirs:
                walk(sub)

        walk("")

    def _classify(self, infile: str, info: FileInfo, copy_only: bool, folders: dict[str, str | None]) -> _File:
        entry = _File(infile=infile, rel=info.rel, mode=info.mode, copy_only=copy_only)
        folder, _, name = infile.rpartition("/")
        if folder and self._templated(folder) and not self._templated(name) and self._compiles(folder):
            # Rendering "dir/name" is rendering "dir" then appending "/name" when only the folder
            # part holds markup (and compiles on its own): each folder renders once per generation.
            if folder not in folders:
                folders[folder] = self._path_template(folder)
            entry.folder, entry.name = folders[folder], name
        else:
            entry.path = self._path_template(infile)
        if copy_only:
            return entry
        from binaryornot.check import is_binary  # cookiecutter's own test; imported when a version is first read

        full = self.folder / info.rel
        entry.binary = is_binary(str(full))
        if entry.binary:
            return entry
        if info.size > settings.MAX_FILE_SIZE:
            raise GenerationFailed(
                f"'{info.rel}' is larger than the file size limit of {settings.MAX_FILE_SIZE} bytes.",
                code="output_limit_exceeded",
                extra={"file": info.rel, "limit": settings.MAX_FILE_SIZE},
            )
        data = full.read_bytes()
        try:
            source = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise GenerationFailed(
                f"{info.rel}:{line}: the file is not valid UTF-8 and not binary, so Cookiecutter cannot render it "
                "(add it to _copy_without_render).",
                code="template_error",
                extra={"file": info.rel, "line": line},
            ) from None
        entry.newline = _detect_newline(full)
        if self._templated(source):
            entry.content = self._name("c")
            self.code.add(entry.content, source, info.rel)
        return entry

    def _compiles(self, text: str) -> bool:
        try:
            self.env.parse(text)
        except Exception:
            return False
        return True

    # --- rendering ---

    def _render_path(self, name: str | None, rel: str, context: dict[str, Any], cache: dict[str, str]) -> str:
        if name is None:
            return rel
        found = cache.get(name)
        if found is None:
            found = cache[name] = engine.render_text(self.code.get(name), context, rel, "<template>", path=True)
        return found

    def render_files(
        self, context: dict[str, Any], output: engine.Output, progress: Callable[[int, int], None] | None
    ) -> None:
        new_lines = context["cookiecutter"].get("_new_lines") or None
        created: set[str] = set()
        top = self.spec.template_dir
        total = len(self.steps)
        paths: dict[str, str] = {}
        folder = self.folder
        for done, step in enumerate(self.steps, start=1):
            if step.kind == "dir" or step.kind == "copydir":
                rendered = self._render_path(step.path, step.rel, context, paths)
                normal = _normal(rendered)
                exists = normal in created
                if not rendered or rendered.endswith("/") or normal == "" or (exists and step.kind == "dir"):
                    raise GenerationFailed(
                        f"The folder '{top}/{step.rel}' renders to an empty or existing name "
                        f"('{rendered}'); Cookiecutter stops here too (directory already exists). Put the condition "
                        "on the files inside instead, or remove the folder in a post_gen_project hook.",
                        code="template_error",
                        extra={"file": f"{top}/{step.rel}", "rendered": rendered},
                    )
                _add_parents(created, normal, include_self=True)
                if step.kind == "copydir":
                    output.remove_below(normal)  # cookiecutter removes the folder before copying it
                    for below, rel, mode in step.copied:
                        data = (folder / rel).read_bytes()
                        output.add(f"{normal}/{below}", data, mode, source=rel, is_binary=b"\0" in data[:8192])
                        _add_parents(created, f"{normal}/{below}", include_self=False)
            else:
                entry = step.file
                assert entry is not None
                if entry.folder is not None:
                    rendered = self._render_path(entry.folder, entry.infile, context, paths) + "/" + entry.name
                else:
                    rendered = self._render_path(entry.path, entry.infile, context, paths)
                normal = _normal(rendered)
                if not entry.copy_only and (
                    not rendered or rendered.endswith("/") or normal == "" or normal in created
                ):
                    continue  # cookiecutter: "The resulting file name is empty"
                if entry.copy_only or entry.binary:
                    output.add(
                        normal, (folder / entry.rel).read_bytes(), entry.mode, source=entry.rel, is_binary=entry.binary
                    )
                    continue
                if entry.content is not None:
                    text = engine.render_text(self.code.get(entry.content), context, entry.rel, entry.content)
                else:
                    text = _NEWLINE.sub("\n", (folder / entry.rel).read_bytes().decode("utf-8"))
                newline = new_lines or entry.newline
                if newline and newline != "\n":
                    text = text.replace("\n", newline)
                output.add(normal, engine.encode(text, entry.rel), entry.mode, source=entry.rel)
            if progress is not None:
                progress(done, total)

    def project_name(self, context: dict[str, Any]) -> str:
        rendered = self._render_path(self.top, self.spec.template_dir, context, {})
        return rendered.strip("/") or "project"


def _add_parents(created: set[str], path: str, *, include_self: bool) -> None:
    parts = path.split("/")
    for index in range(1, len(parts) + (1 if include_self else 0)):
        created.add("/".join(parts[:index]))


def inspect(folder: Path) -> CookiecutterSpec:
    return load_spec(folder)


def prepare(folder: Path, checksum: str | None = None) -> PreparedCookiecutter:
    """The prepared template of a version (cached per process; `checksum` of an immutable version
    folder, or computed here when not given)."""
    if checksum is None:
        files, _ = engine.walk_files(folder)
        checksum = engine.folder_checksum(folder, files)
    final = checksum
    return engine.cached_prepare(  # type: ignore[no-any-return]
        FORMAT, folder, final, lambda: PreparedCookiecutter(load_spec(folder, scan=False), final)
    )


def validate(prepared: PreparedCookiecutter, answers: Any, source: SourceInfo | None = None) -> dict[str, Any]:
    """Check answers by cookiecutter's rules (field errors); returns the context they give."""
    with render_limits(seconds=settings.KILN_DRY_RUN_TIME_LIMIT, max_bytes=settings.MAX_FILE_SIZE):
        return resolve_context(prepared.spec, prepared.env, answers, source or SourceInfo(), prepared.variable_cache)


HookRunner = Callable[..., Any]


def unsupported(spec: CookiecutterSpec) -> FormatUnsupported | None:
    """What Kiln never runs, trusted or not: the template's own Jinja extensions (local_extensions.py)."""
    if not spec.local_extensions:
        return None
    return FormatUnsupported(
        f"{CONFIG}: the template loads its own Jinja extensions ({', '.join(spec.local_extensions)}); "
        "Kiln renders templates in its sandbox and does not import template code into it.",
        extra={
            "file": CONFIG,
            "line": _line_of_key(spec.text, spec.local_extensions[0]),
            "extensions": spec.local_extensions,
        },
    )


def render(
    prepared: PreparedCookiecutter,
    answers: dict[str, Any],
    sink: OutputSink,
    *,
    source: SourceInfo | None = None,
    progress: Callable[[int, int], None] | None = None,
    time_limit: float | None = None,
    run_hooks: HookRunner | None = None,
) -> GenerationResult:
    """Generate the project's files into `sink`, as `cookiecutter --no-input` would.

    Hooks run through `run_hooks` (the isolation runner) when the version has any; the caller
    decides whether the version is trusted before passing it.
    """
    source = source or SourceInfo()
    work: Path | None = None
    try:
        with render_limits(seconds=time_limit or settings.KILN_RENDER_TIME_LIMIT, max_bytes=settings.MAX_FILE_SIZE):
            if prepared.spec.hooks.get("pre_prompt"):
                if run_hooks is None:
                    raise _untrusted(prepared.spec)
                prepared, work = _after_pre_prompt(prepared, run_hooks)
            return _render(prepared, answers, sink, source, progress, run_hooks)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


def _render(
    prepared: PreparedCookiecutter,
    answers: dict[str, Any],
    sink: OutputSink,
    source: SourceInfo,
    progress: Callable[[int, int], None] | None,
    run_hooks: HookRunner | None,
) -> GenerationResult:
    context = resolve_context(prepared.spec, prepared.env, answers, source, prepared.variable_cache)
    output = engine.Output()
    project = prepared.project_name(context)
    hooks = prepared.spec.hooks
    if (hooks.get("pre_gen_project") or hooks.get("post_gen_project")) and run_hooks is None:
        raise _untrusted(prepared.spec)
    refused = unsupported(prepared.spec)
    if refused is not None:
        raise refused
    for script in hooks.get("pre_gen_project", []):
        assert run_hooks is not None
        output = run_hooks(
            stage="pre_gen_project",
            script=script,
            text=_render_hook(prepared, script, context),
            files=output,
            project=project,
            template=prepared.folder,
        )
    prepared.render_files(context, output, progress)
    for script in hooks.get("post_gen_project", []):
        assert run_hooks is not None
        output = run_hooks(
            stage="post_gen_project",
            script=script,
            text=_render_hook(prepared, script, context),
            files=output,
            project=project,
            template=prepared.folder,
        )
    return output.emit(sink)


def _untrusted(spec: CookiecutterSpec) -> Exception:
    return engine.TemplateUntrusted(
        "This template version runs code (" + ", ".join(spec.uses_code) + "); a staff user must trust the "
        "version before it can be generated (POST /templates/{slug}/versions/{version}/trust/).",
        extra={"uses_code": spec.uses_code},
    )


def _render_hook(prepared: PreparedCookiecutter, script: str, context: dict[str, Any]) -> str:
    raw = (prepared.folder / script).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise GenerationFailed(f"{script} is not valid UTF-8.", code="template_error", extra={"file": script}) from None
    env = make_env(prepared.spec)
    template = env.from_string(text) if prepared._templated(text) else None
    if template is None:
        return text
    return engine.render_text(template, context, script, "<template>")


def _after_pre_prompt(prepared: PreparedCookiecutter, run_hooks: HookRunner) -> tuple[PreparedCookiecutter, Path]:
    """`pre_prompt` runs in a copy of the template and may rewrite it (cookiecutter.json above all);
    the rewritten copy is what renders (the caller removes the returned folder afterwards)."""
    work = Path(tempfile.mkdtemp(prefix="kiln-pre-prompt-", dir=settings.KILN_TEMPLATE_CACHE_DIR))
    try:
        tree = engine.Output()
        files, _ = engine.walk_files(prepared.folder)
        for info in files:
            tree.add(info.rel, (prepared.folder / info.rel).read_bytes(), info.mode, source=info.rel)
        for script in prepared.spec.hooks.get("pre_prompt", []):
            tree = run_hooks(
                stage="pre_prompt",
                script=script,
                text=(prepared.folder / script).read_text(encoding="utf-8"),
                files=tree,
                project=prepared.folder.name,
                template=prepared.folder,
            )
        folder = work / "template"
        for path, data, mode in tree.items():
            target = folder / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            target.chmod(mode)
        spec = load_spec(folder)
        spec.hooks.pop("pre_prompt", None)
        return PreparedCookiecutter(spec, spec.checksum), work
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


# --- the format, as the registry sees it --------------------------------------------------------


@dataclass
class CookiecutterVersion:
    """A prepared Cookiecutter version for `ProjectGenerator` (`formats.PreparedVersion`)."""

    prepared: PreparedCookiecutter
    version: VersionRef
    format: str = FORMAT

    @property
    def checksum(self) -> str:
        return self.prepared.checksum

    @property
    def runs_code(self) -> bool:
        return self.version.trusted and bool(self.prepared.spec.hooks)

    def render_here(
        self,
        parameters: dict[str, Any],
        sink: OutputSink,
        *,
        progress: Callable[[int, int], None] | None,
        seconds: float,
        at: Callable[[int], None] | None,
    ) -> GenerationResult:
        from apps.templates.services import isolation

        return render(
            self.prepared,
            parameters,
            sink,
            source=self.version.source,
            progress=progress,
            time_limit=seconds,
            run_hooks=isolation.cookiecutter_hook if self.version.trusted else None,
        )

    def file_at(self, index: int) -> str | None:
        return None


@register_format
class CookiecutterFormat:
    id = FORMAT
    config_files = (CONFIG,)

    def detect(self, folder: Path) -> bool:
        return detect(folder)

    def describe(self, folder: Path) -> Description:
        spec = load_spec(folder)
        return Description(
            format=FORMAT,
            parameters=parameters_schema(spec),
            checksum=spec.checksum,
            file_count=len(spec.files),
            total_bytes=sum(info.size for info in spec.files),
            uses_code=tuple(spec.uses_code),
            copy_without_render=tuple(spec.copy_without_render),
        )

    def validate(self, version: VersionRef, parameters: Any) -> dict[str, Any]:
        """cookiecutter's own rules (choices, booleans, dict merges, every default rendered); the
        answers as given are what the generation records (the defaults render again with them)."""
        prepared = prepare(version.folder, version.checksum)
        refused = unsupported(prepared.spec)
        if refused is not None:
            raise refused
        if prepared.spec.uses_code and not version.trusted:
            raise untrusted_error(prepared.spec.uses_code)
        if parameters is None:
            parameters = {}
        validate(prepared, parameters, version.source)
        return dict(parameters)

    def prepare(self, version: VersionRef) -> CookiecutterVersion:
        return CookiecutterVersion(prepare(version.folder, version.checksum), version)
