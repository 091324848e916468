"""The Copier format: a template renders in Kiln exactly as copier 9.19.1's `run_copy` renders it
(`--defaults`, the answers as `data`).

Covered (`copier/_template.py`, `_user_data.py`, `_main.py`, `_jinja_ext.py`):

* `copier.yml` / `copier.yaml` with `!include` (globs inside the template) and several YAML
  documents, merged as Copier merges them; `_`-keys are settings, the rest questions.
* Questions: `type` (str, int, float, bool, json, yaml, path; inferred from the default),
  `choices` (list, mapping, YAML text, per-choice `validator`), `multiselect`, templated
  `default` (and `UNSET`), `when`, `ask`, `validator`, `secret` / `_secret_questions`, `help`
  and `placeholder` (descriptions). Answers are parsed, cast and validated with Copier's
  rules; failures are field errors.
* Settings: `_subdirectory` (templated), `_templates_suffix` (default `.jinja`; `""` renders
  every file, copying what is not UTF-8), `_exclude` (gitignore patterns, templated, with
  `_copier_operation`; Copier's default excludes when unset and there is no subdirectory),
  `_skip_if_exists`, `_answers_file` (templated), `_envops` (delimiters, whitespace,
  `undefined`), `_external_data` (empty on a first copy), `_min_copier_version`.
* The render context: answers, `_copier_answers` (what the answers file keeps: not secret,
  not hidden), `_copier_conf`, `_folder_name`, `_copier_phase`, `_src_path`, `_commit`.
* Paths: every part renders; an empty part drops the file or folder; `{% yield %}` makes one
  path per item with the item in the file's context; the templated answers-file name.
* `_tasks` run after rendering, in the isolation runner only (trusted versions).
  `_migrations` run on updates only; `_jinja_extensions` other than Jinja's `do` / `loopcontrols` and
  jinja2_time's `now` tag (`BUILTIN_EXTENSIONS`, provided by Kiln) are refused (`unsupported`).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import ChainMap, OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from django.conf import settings
from jinja2 import StrictUndefined, Undefined
from jinja2.exceptions import UndefinedError

from apps.projects.services.project_generator import GenerationFailed, GenerationResult, OutputSink
from apps.templates.services.formats import Description, VersionRef, register_format, untrusted_error
from apps.templates.services.formats import _engine as engine
from apps.templates.services.formats._engine import FileInfo, FormatInvalid, FormatUnsupported, SourceInfo
from apps.templates.services.formats.cookiecutter_ext import NowExtension
from apps.templates.services.formats.copier_ext import (
    AnsibleFiltersExtension,
    YieldExtension,
    pathjoin,
    reset_yield,
    yield_context,
)
from core.exceptions import ValidationFailed
from core.json_schema import json_shown
from core.safe_paths import MAX_GLOB_LENGTH, MAX_GLOBS, globs_too_large
from core.sandbox import KilnSandbox, make_environment, render_limits
from core.values import MAX_JSON_DEPTH

FORMAT = "copier"
TOOL_VERSION = "9.19.1"
DEFAULT_EXCLUDE: tuple[str, ...] = (
    "copier.yaml",
    "copier.yml",
    "~*",
    "*.py[co]",
    "__pycache__",
    ".git",
    ".DS_Store",
    ".svn",
)
DEFAULT_SUFFIX = ".jinja"
DEFAULT_ANSWERS_FILE = ".copier-answers.yml"
QUESTION_TYPES = ("bool", "float", "int", "json", "str", "yaml", "path")
MERGED_SETTINGS = ("_exclude", "_jinja_extensions", "_secret_questions", "_skip_if_exists")
ENVOPS: dict[str, type | tuple[type, ...]] = {
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
    "optimized": bool,
    "undefined": str,
}
# `_jinja_extensions` Kiln provides itself, with no template code: Jinja's own harmless extensions and
# the `now` tag of jinja2_time. Naming them is still `uses_code` (Copier itself asks for --trust for
# any `_jinja_extensions`); any other extension is template_unsupported, trusted or not.
BUILTIN_EXTENSIONS: dict[str, Any] = {
    "jinja2.ext.do": "jinja2.ext.do",
    "jinja2.ext.loopcontrols": "jinja2.ext.loopcontrols",
    "jinja2_time.TimeExtension": NowExtension,
}
MAX_INCLUDES = 200
MAX_YAML_NODES = 200_000


class UnsetError(UndefinedError):
    """`{{ UNSET }}` in a default: the question has no default (Copier's `UnsetError`)."""


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


# --- copier.yml ------------------------------------------------------------------------------------


def config_path(folder: Path) -> Path | None:
    found = [
        path
        for path in folder.glob("copier.*")
        if path.is_file() and not path.is_symlink() and re.match(r"\.ya?ml", path.suffix, re.IGNORECASE)
    ]
    if len(found) > 1:
        names = ", ".join(sorted(p.name for p in found))
        raise FormatInvalid(
            f"The template has several Copier configuration files ({names}); keep one.", extra={"files": names}
        )
    return found[0] if found else None


def detect(folder: Path) -> bool:
    return any((folder / name).is_file() for name in ("copier.yml", "copier.yaml"))


def _flatten(items: Any) -> list[Any]:
    """funcy's `lflatten` as Copier uses it: nested lists and tuples become one list."""
    result: list[Any] = []
    stack: list[Iterator[Any]] = [iter(items)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, (list, tuple)):
                stack.append(iter(item))
                break
            result.append(item)
        else:
            stack.pop()
    return result


def _yaml_error(name: str, exc: yaml.YAMLError) -> FormatInvalid:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    where = f"{name}:{line}" if line else name
    detail = str(getattr(exc, "problem", None) or exc).splitlines()[0]
    extra: dict[str, Any] = {"file": name}
    if line:
        extra["line"] = line
    return FormatInvalid(f"{where}: not valid YAML: {detail}", extra=extra)


def _check_size(data: Any, name: str) -> None:
    """Anchors and aliases may share nodes; refuse configurations that expand past a bound."""
    count = 0
    stack = [data]
    on_path: set[int] = set()
    while stack:
        item = stack.pop()
        count += 1
        if count > MAX_YAML_NODES:
            raise FormatInvalid(
                f"{name} expands to more than {MAX_YAML_NODES} values (YAML aliases?).", extra={"file": name}
            )
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            if id(item) in on_path and len(on_path) > 10_000:
                raise FormatInvalid(f"{name} is nested too deeply.", extra={"file": name})
            stack.extend(item)


def _check_events(text: str, name: str, *, aliases: bool = True) -> None:
    """Depth (and, for answers, aliases) checked on the parser's events before anything is built."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_JSON_DEPTH:
                    raise FormatInvalid(
                        f"{name} is nested more than {MAX_JSON_DEPTH} levels deep.", extra={"file": name}
                    )
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
            elif isinstance(event, yaml.AliasEvent) and not aliases:
                raise FormatInvalid(f"{name}: YAML aliases (*name) are not allowed here.", extra={"file": name})
    except yaml.YAMLError as exc:
        raise _yaml_error(name, exc) from None


def load_config(folder: Path, path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Copier's `load_template_config`: documents flattened, list settings merged, later wins."""
    texts: dict[str, str] = {}
    includes = {"count": 0}
    root = folder.resolve()

    class Loader(yaml.SafeLoader):
        pass

    def include(loader: yaml.Loader, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise FormatInvalid(f"{loader.name}: !include takes a file name or glob.", extra={"file": loader.name})
        pattern = str(loader.construct_scalar(node))
        if PurePosixPath(pattern).is_absolute():
            raise FormatInvalid(
                f"{loader.name}:{node.start_mark.line + 1}: !include paths must be relative.",
                extra={"file": loader.name, "line": node.start_mark.line + 1},
            )
        data: list[Any] = []
        for found in sorted(root.glob(pattern)):
            resolved = found.resolve()
            if not resolved.is_relative_to(root) or found.is_symlink() or not found.is_file():
                raise FormatInvalid(
                    f"{loader.name}:{node.start_mark.line + 1}: !include {pattern} reaches outside the template.",
                    extra={"file": loader.name, "line": node.start_mark.line + 1},
                )
            includes["count"] += 1
            if includes["count"] > MAX_INCLUDES:
                raise FormatInvalid(
                    f"{path.name}: more than {MAX_INCLUDES} !include files (a cycle?).", extra={"file": path.name}
                )
            data.extend(_flatten(filter(None, _load_all(found, resolved.relative_to(root).as_posix()))))
        return data

    Loader.add_constructor("!include", include)

    def _load_all(file: Path, name: str) -> list[Any]:
        raw = engine.read_config(file, what=name)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatInvalid(f"{name} is not valid UTF-8.", extra={"file": name}) from None
        texts.setdefault(name, text)
        _check_events(text, name)
        stream = Loader(text)
        stream.name = name
        try:
            documents = []
            while stream.check_data():
                documents.append(stream.get_data())
            return documents
        except yaml.YAMLError as exc:
            raise _yaml_error(name, exc) from None
        except RecursionError:
            raise FormatInvalid(f"{name} is nested too deeply.", extra={"file": name}) from None
        finally:
            stream.dispose()

    documents = _flatten(filter(None, _load_all(path, path.name)))
    for document in documents:
        if not isinstance(document, dict):
            raise FormatInvalid(
                f"{path.name}: each YAML document must be a mapping of questions and settings.",
                extra={"file": path.name},
            )
        _check_size(document, path.name)
    merged: dict[str, list[Any]] = {}
    for option in MERGED_SETTINGS:
        for document in documents:
            if option in document:
                value = document[option]
                if not isinstance(value, list):
                    raise FormatInvalid(
                        f"{path.name}: '{option}' must be a list.",
                        extra={"file": path.name, "line": _line(texts, option)},
                    )
                merged.setdefault(option, []).extend(value)
    return dict(ChainMap(merged, *reversed(documents))), texts


def _line(texts: Mapping[str, str], key: str) -> int | None:
    for text in texts.values():
        found = re.search(rf"^\s*{re.escape(key)}\s*:", text, re.M)
        if found:
            return engine.line_of(text, found.start())
    return None


@dataclass
class CopierSpec:
    folder: Path
    config_name: str
    texts: dict[str, str]
    settings: dict[str, Any]
    questions: OrderedDict[str, dict[str, Any]]
    envops: dict[str, Any]
    files: list[FileInfo]
    dirs: list[str]
    checksum: str
    uses_code: list[str] = field(default_factory=list)

    def line(self, key: str) -> int | None:
        return _line(self.texts, key)

    @property
    def subdirectory(self) -> str:
        return str(self.settings.get("subdirectory", "") or "")

    @property
    def suffix(self) -> str:
        value = self.settings.get("templates_suffix")
        return DEFAULT_SUFFIX if value is None else str(value)

    @property
    def exclude(self) -> tuple[str, ...]:
        default = DEFAULT_EXCLUDE if PurePosixPath(self.subdirectory) == PurePosixPath() else ()
        return tuple(str(item) for item in self.settings.get("exclude", default))

    @property
    def skip_if_exists(self) -> tuple[str, ...]:
        return tuple(str(item) for item in self.settings.get("skip_if_exists", ()))

    @property
    def answers_file(self) -> str:
        return str(self.settings.get("answers_file", DEFAULT_ANSWERS_FILE))

    @property
    def secret_questions(self) -> set[str]:
        found = {str(name) for name in self.settings.get("secret_questions", [])}
        found |= {name for name, details in self.questions.items() if details.get("secret")}
        return found

    @property
    def tasks(self) -> list[Any]:
        return list(self.settings.get("tasks") or [])


def _question_error(spec_texts: Mapping[str, str], name: str, message: str) -> FormatInvalid:
    config = next(iter(spec_texts), "copier.yml")
    line = _line(spec_texts, name)
    where = f"{config}:{line}" if line else config
    extra: dict[str, Any] = {"file": config, "question": name}
    if line:
        extra["line"] = line
    return FormatInvalid(f"{where}: question '{name}': {message}", extra=extra)


def load_spec(folder: Path, *, scan: bool = True) -> CopierSpec:
    """Read and check copier.yml (with its includes); with `scan`, also every file (and the checksum)."""
    path = config_path(folder)
    if path is None:
        raise FormatInvalid("The template has no copier.yml or copier.yaml.", extra={"file": "copier.yml"})
    raw, texts = load_config(folder, path)
    name = path.name
    config: dict[str, Any] = {}
    questions: OrderedDict[str, dict[str, Any]] = OrderedDict()
    for key, value in raw.items():
        key = str(key)
        if key.startswith("_"):
            config[key[1:]] = value
        else:
            questions[key] = value if isinstance(value, dict) else {"default": value}
    for secret in config.get("secret_questions", []) or []:
        if secret in questions:
            questions[secret]["secret"] = True
    for qname, details in questions.items():
        if qname in ("now", "make_secret"):
            raise _question_error(texts, qname, "this name is reserved by Copier.")
        _check_question(texts, qname, details)
    envops = config.get("envops") or {}
    if not isinstance(envops, dict):
        raise FormatInvalid(
            f"{name}: '_envops' must be a mapping.", extra={"file": name, "line": _line(texts, "_envops")}
        )
    for key, value in envops.items():
        expected = ENVOPS.get(key)
        if expected is None:
            raise FormatUnsupported(
                f"{name}:{_line(texts, key) or ''}: '_envops.{key}' is not an option Kiln supports (delimiters, "
                f"whitespace and undefined only: {', '.join(sorted(ENVOPS))}).",
                extra={"file": name, "line": _line(texts, key)},
            )
        if not isinstance(value, expected):
            raise FormatInvalid(
                f"{name}: '_envops.{key}' has a wrong type.", extra={"file": name, "line": _line(texts, key)}
            )
    if envops.get("undefined") not in (None, "jinja2.Undefined", "jinja2.StrictUndefined"):
        raise FormatInvalid(
            f"{name}: '_envops.undefined' must be jinja2.Undefined or jinja2.StrictUndefined (as in Copier).",
            extra={"file": name, "line": _line(texts, "undefined")},
        )
    minimum = config.get("min_copier_version")
    if minimum is not None:
        from packaging.version import InvalidVersion, Version

        try:
            too_new = Version(str(minimum)) > Version(TOOL_VERSION)
        except InvalidVersion:
            raise FormatInvalid(f"{name}: '_min_copier_version' is not a version.", extra={"file": name}) from None
        if too_new:
            raise FormatUnsupported(
                f"{name}: the template needs Copier {minimum}; Kiln renders as Copier {TOOL_VERSION}.",
                extra={"file": name, "line": _line(texts, "_min_copier_version")},
            )
    for key in ("exclude", "skip_if_exists", "secret_questions", "jinja_extensions"):
        value = config.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise FormatInvalid(
                f"{name}: '_{key}' must be a list of strings.", extra={"file": name, "line": _line(texts, "_" + key)}
            )
    for key in ("exclude", "skip_if_exists"):
        if globs_too_large(config.get(key, [])):  # gitignore patterns become regular expressions
            raise FormatInvalid(
                f"{name}: '_{key}' takes at most {MAX_GLOBS} patterns of at most {MAX_GLOB_LENGTH} characters.",
                extra={"file": name, "line": _line(texts, "_" + key)},
            )
    tasks = config.get("tasks") or []
    if not isinstance(tasks, list):
        raise FormatInvalid(f"{name}: '_tasks' must be a list.", extra={"file": name, "line": _line(texts, "_tasks")})
    for task in tasks:
        command = task.get("command") if isinstance(task, dict) else task
        if not isinstance(command, (str, list)):
            raise FormatInvalid(
                f"{name}: each of '_tasks' is a command (text or list) or has one.",
                extra={"file": name, "line": _line(texts, "_tasks")},
            )
    files, dirs = engine.walk_files(folder) if scan else ([], [])
    uses_code: list[str] = []
    if tasks:
        uses_code.append("_tasks")
    if config.get("migrations"):
        uses_code.append("_migrations")
    if config.get("jinja_extensions"):
        uses_code.append("_jinja_extensions")
    return CopierSpec(
        folder=folder,
        config_name=name,
        texts=texts,
        settings=config,
        questions=questions,
        envops=dict(envops),
        files=files,
        dirs=dirs,
        checksum=engine.folder_checksum(folder, files) if scan else "",
        uses_code=uses_code,
    )


def _check_question(texts: Mapping[str, str], name: str, details: dict[str, Any]) -> None:
    """What Copier's pydantic `Question` model refuses when it is built."""
    for key in ("help", "placeholder", "validator"):
        if key in details and not isinstance(details[key], str):
            raise _question_error(texts, name, f"'{key}' must be text.")
    for key in ("multiselect", "secret"):
        if key in details and not isinstance(details[key], bool):
            raise _question_error(texts, name, f"'{key}' must be true or false.")
    for key in ("when", "ask", "multiline"):
        if key in details and not isinstance(details[key], (str, bool)):
            raise _question_error(texts, name, f"'{key}' must be true, false or a template.")
    if "type" in details and not isinstance(details["type"], str):
        raise _question_error(texts, name, "'type' must be text.")
    choices = details.get("choices")
    if choices is not None and not isinstance(choices, (list, dict, str)):
        raise _question_error(texts, name, "'choices' must be a list, a mapping or a template.")
    if details.get("secret") and "default" not in details:
        raise _question_error(texts, name, "a secret question needs a default value (as in Copier).")


# --- casting (copier._tools / _user_data) ------------------------------------------------------


def cast_to_bool(value: Any) -> bool:
    try:
        return bool(float(value))
    except (TypeError, ValueError):
        pass
    if isinstance(value, str):
        lower = value.strip().lower()
        if not lower:
            return False
        if lower in {"y", "yes", "t", "true", "on"}:
            return True
        if lower in {"n", "no", "f", "false", "off", "~", "null", "none"}:
            return False
    return bool(value)


def cast_to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (float, int, Decimal)):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return value.decode()
    raise ValueError(f"Could not convert {value} to string")


def parse_yaml_string(text: str) -> Any:
    if not isinstance(text, str):
        raise TypeError("not a string")
    if len(text) > engine.MAX_CONFIG_BYTES:
        raise ValueError("the YAML text is too long")
    try:
        _check_events(text, "the answer", aliases=False)
        value = yaml.safe_load(text)
    except FormatInvalid as error:
        raise ValueError(error.message) from None
    except yaml.YAMLError as error:
        raise ValueError(str(error)) from None
    return value


def _json_loads(value: Any) -> Any:
    if not isinstance(value, (str, bytes, bytearray)):
        raise TypeError("not a string")
    if len(value) > engine.MAX_CONFIG_BYTES:
        raise ValueError("the JSON text is too long")
    return json.loads(value)


CAST: dict[str, Callable[[Any], Any]] = {
    "bool": cast_to_bool,
    "float": float,
    "int": int,
    "json": _json_loads,
    "str": cast_to_str,
    "yaml": parse_yaml_string,
    "path": str,
}


def parse_yaml_list(text: str) -> list[str]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(node, yaml.nodes.SequenceNode):
        raise TypeError(f"Not a YAML list: {text!r}")
    items = []
    for item in node.value:
        raw = text[item.start_mark.index : item.end_mark.index].strip()
        if (
            isinstance(item, yaml.nodes.ScalarNode)
            and item.tag == "tag:yaml.org,2002:str"
            and ((raw.startswith('"') and raw.endswith('"')) or (raw.startswith("'") and raw.endswith("'")))
        ):
            raw = raw[1:-1]
        items.append(raw)
    return items


class AnswerError(ValueError):
    """An answer Copier would refuse (a failed cast, an invalid choice, a validator's message)."""


# --- the environment and the answers ----------------------------------------------------------


def make_env(spec: CopierSpec, loader: Any = None) -> KilnSandbox:
    options = dict(spec.envops)
    options.setdefault("keep_trailing_newline", True)
    undefined = options.pop("undefined", None)
    options["undefined"] = StrictUndefined if undefined == "jinja2.StrictUndefined" else Undefined
    builtin = [
        BUILTIN_EXTENSIONS[name] for name in spec.settings.get("jinja_extensions") or [] if name in BUILTIN_EXTENSIONS
    ]
    env = make_environment(
        mutable=True, loader=loader, extensions=[AnsibleFiltersExtension, YieldExtension, *builtin], **options
    )
    env.globals["pathjoin"] = pathjoin
    return env


@dataclass
class _Choice:
    name: str
    value: Any
    disabled: str


class Question:
    """One question of copier.yml, evaluated as Copier's `Question` evaluates it."""

    def __init__(
        self, name: str, details: dict[str, Any], env: KilnSandbox, context: dict[str, Any], answers: _Answers
    ) -> None:
        self.name = name
        self.details = details
        self.env = env
        self.context = context
        self.answers = answers
        self.default = details.get("default", MISSING)
        self.multiselect = bool(details.get("multiselect", False))
        self.secret = bool(details.get("secret", False))
        self.validator = details.get("validator", "")
        self.when = details.get("when", True)
        self.ask = details.get("ask", True)
        declared = details.get("type", "")
        if declared == "":
            type_name = type(self.default).__name__
            declared = type_name if type_name in CAST else "yaml"
        self.type = declared
        self._choices: list[_Choice] | None = None

    def render_value(self, value: Any, extra: dict[str, Any] | None = None) -> Any:
        if not isinstance(value, str):
            return [self.render_value(item) for item in value] if isinstance(value, list) else value
        template = engine.from_string(self.env, value)
        try:
            return template.render({**self.context, **(extra or {})})
        except UnsetError:
            raise
        except UndefinedError as error:
            raise AnswerError(str(error)) from None

    def type_name(self) -> str:
        name = self.render_value(self.type)
        if name not in CAST:
            raise AnswerError(f'Unsupported type "{name}" in question "{self.name}"')
        return str(name)

    def cast(self, answer: Any) -> Any:
        type_name = self.type_name()
        function = CAST[type_name]
        if answer is None and type_name not in {"json", "yaml"}:
            raise AnswerError(
                f'Invalid answer "{answer}" of type "{type(answer)}" to question "{self.name}" of type "{type_name}"'
            )
        try:
            if self.multiselect and isinstance(answer, list):
                return [function(item) for item in answer]
            return function(answer)
        except (TypeError, AttributeError):
            if type_name in {"json", "yaml"}:
                return answer
            raise AnswerError(
                f'Invalid answer {json.dumps(answer, default=str)} to question "{self.name}" of type "{type_name}"'
            ) from None
        except (ValueError, OverflowError) as exc:
            shown = json.dumps(answer, default=str)
            raise AnswerError(
                f'Invalid answer {shown} to question "{self.name}" of type "{type_name}": {exc}'
            ) from None

    def choices(self) -> list[_Choice]:
        if self._choices is not None:
            return self._choices
        result = []
        raw = self.details.get("choices") or []
        if isinstance(raw, str):
            raw = parse_yaml_string(self.render_value(raw))
        if isinstance(raw, dict):
            raw = list(raw.items())
        for choice in raw or []:
            if isinstance(choice, (tuple, list)):
                if len(choice) != 2:
                    raise AnswerError(f"A choice of '{self.name}' is a list that is not a (name, value) pair.")
                name, value = choice
            else:
                name = value = choice
            name = str(self.render_value(name))
            disabled = ""
            if isinstance(choice, (tuple, list)) and isinstance(value, dict):
                if "value" not in value:
                    raise AnswerError(f"A choice of '{self.name}' needs a 'value'.")
                if "validator" in value and not isinstance(value["validator"], str):
                    raise AnswerError(f"The 'validator' of a choice of '{self.name}' must be text.")
                disabled = self.render_value(value.get("validator", ""))
                value = value["value"]
            value = self.render_value(value)
            if value is None:
                value = name
            self.cast(value)
            result.append(_Choice(name, value, disabled))
        self._choices = result
        return result

    def parse(self, answer: Any) -> Any:
        if self.multiselect:
            if isinstance(answer, str):
                try:
                    answer = parse_yaml_list(answer)
                except TypeError as exc:
                    raise AnswerError(str(exc)) from None
            if not isinstance(answer, list):
                raise AnswerError(f"The answer to '{self.name}' must be a list of choices.")
            answer = [self._parse_one(item) for item in answer]
            values = (self.cast(choice.value) for choice in self.choices())
            return [value for value in values if value in answer]
        return self._parse_one(answer)

    def _parse_one(self, answer: Any) -> Any:
        cast = self.cast(answer)
        choices = self.choices()
        if not choices:
            return cast
        error = ""
        valid = []
        for choice in choices:
            value = self.cast(choice.value)
            if not choice.disabled:
                valid.append(value)
            if cast == value:
                if not choice.disabled:
                    return cast
                if not error:
                    error = choice.disabled
        reason = error or f"{json_shown(cast)} is not one of {json_shown(valid)}"
        raise AnswerError(f"Invalid choice for '{self.name}': {reason}")

    def validate(self, answer: Any) -> None:
        try:
            message = self.render_value(self.validator, {self.name: answer})
            message = message.strip() if isinstance(message, str) else str(message)
        except GenerationFailed:
            raise
        except Exception as error:
            message = getattr(error, "message", None) or str(error)
        if message:
            raise AnswerError(f"Validation error for question '{self.name}': {message}")

    def get_when(self) -> bool:
        return cast_to_bool(self.render_value(self.when))

    def get_ask(self) -> bool:
        return cast_to_bool(self.render_value(self.ask))

    def get_default(self) -> Any:
        if self.name in self.answers.init:
            result = self.answers.init[self.name]
        else:
            try:
                result = self.render_value(self.default, {"UNSET": StrictUndefined("UNSET", exc=UnsetError)})
            except UnsetError:
                return MISSING
            if result is MISSING:
                return MISSING
        result = self.parse(result)
        if self.get_when() and not self.secret:
            self.validate(result)
        return result


@dataclass
class _Answers:
    init: dict[str, Any]
    metadata: dict[str, Any]
    external: dict[str, Any]
    user: dict[str, Any] = field(default_factory=dict)
    hidden: set[str] = field(default_factory=set)

    def combined(self) -> dict[str, Any]:
        return dict(ChainMap(self.user, self.init, self.metadata, {}, {}, {"_external_data": self.external}))


@dataclass
class Resolved:
    """The outcome of the questionnaire: what the render context and the answers file need."""

    answers: _Answers
    remember: dict[str, Any]

    @property
    def values(self) -> dict[str, Any]:
        return self.answers.combined()


def _plain(value: Any) -> Any:
    """Answers as JSON values (a YAML answer may hold dates, sets...): Copier renders str() of them."""
    return json.loads(json.dumps(value, default=str))


def _answers_to_remember(spec: CopierSpec, answers: _Answers) -> dict[str, Any]:
    remembered: dict[str, Any] = {}
    for key in ("_commit", "_src_path"):
        if answers.metadata.get(key) is not None:
            remembered[key] = answers.metadata[key]
    secrets = spec.secret_questions
    for key, value in answers.combined().items():
        if (
            not key.startswith("_")
            and key not in answers.hidden
            and key not in secrets
            and key in spec.questions
            and isinstance(value, (str, int, float, bool, list, dict, type(None)))
        ):
            remembered[key] = value
    return remembered


def render_context(
    spec: CopierSpec,
    answers: _Answers,
    source: SourceInfo,
    *,
    phase: str,
    answers_file: str = "",
    trusted: bool = False,
) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "src_path": source.repo_dir,
        "dst_path": f"{source.output_dir}/{source.folder_name}" if source.output_dir else source.folder_name,
        "answers_file": answers_file,
        "vcs_ref": source.checkout,
        "vcs_ref_hash": source.commit_hash,
        "data": answers.init,
        "settings": {"defaults": {}, "trust": []},
        "exclude": [],
        "use_prereleases": False,
        "skip_if_exists": [],
        "cleanup_on_error": True,
        "defaults": True,
        "user_defaults": {},
        "overwrite": False,
        "pretend": False,
        "quiet": True,
        "conflict": "inline",
        "context_lines": 3,
        "unsafe": trusted,
        "skip_answered": False,
        "skip_tasks": False,
        "sep": "/",
        "os": "linux",
    }
    context = dict(
        **answers.combined(),
        _copier_answers=_answers_to_remember(spec, answers),
        _copier_conf=conf,
        _folder_name=source.folder_name,
        _copier_python=_python(),
        _copier_phase=phase,
    )
    return _plain(context)  # type: ignore[no-any-return]


def _python() -> str:
    from apps.templates.services.isolation import IsolationUnavailable, python

    try:
        return python()
    except IsolationUnavailable:
        return "python3"


def resolve_answers(spec: CopierSpec, env: KilnSandbox, data: Any, source: SourceInfo) -> Resolved:
    """Copier's `_ask` for `--defaults --data ...`: every answer parsed, cast and validated."""
    if not isinstance(data, dict):
        raise ValidationFailed(
            "parameters must be a JSON object.", extra={"fields": {"parameters": ["Expected an object."]}}
        )
    errors: dict[str, list[str]] = {}
    for key in data:
        if not isinstance(key, str) or key.startswith("_"):
            errors.setdefault(f"parameters.{key}", []).append(
                "Names starting with '_' are Copier's settings and cannot be answers."
            )
    if errors:
        raise _answer_errors(errors)
    metadata: dict[str, Any] = {"_src_path": source.url}
    if source.commit:
        metadata["_commit"] = source.commit
    external: dict[str, Any] = {str(name): {} for name in (spec.settings.get("external_data") or {})}
    answers = _Answers(init=dict(data), metadata=metadata, external=external)
    for name, details in spec.questions.items():
        question = Question(name, details, env, render_context(spec, answers, source, phase="prompt"), answers)
        try:
            ask = question.get_ask()
            if not question.get_when():
                answers.hidden.add(name)
                if question.get_default() is MISSING:
                    continue
            if name in answers.init:
                answer = question.parse(answers.init[name])
                question.validate(answer)
                answers.user[name] = answer
                continue
            answer = question.get_default()
            if not ask:
                if answer is not MISSING:
                    answers.user[name] = answer
                continue
            if answer is MISSING:
                errors.setdefault(f"parameters.{name}", []).append(
                    f'Question "{name}" is required (it has no default).'
                )
                continue
            answers.user[name] = answer
        except AnswerError as exc:
            errors.setdefault(f"parameters.{name}", []).append(str(exc))
            if name in answers.init or name in answers.user:
                # later questions see the answer as given, as they would in Copier's next prompt
                continue
        except UnsetError:
            errors.setdefault(f"parameters.{name}", []).append(f'Question "{name}" is required (its default is UNSET).')
    if errors:
        raise _answer_errors(errors)
    return Resolved(answers=answers, remember=_answers_to_remember(spec, answers))


def _answer_errors(errors: dict[str, list[str]]) -> ValidationFailed:
    first = next(iter(errors))
    return ValidationFailed(
        f"Invalid parameters for this Copier template: {first}: {errors[first][0]}", extra={"fields": errors}
    )


# --- JSON Schema ---------------------------------------------------------------------------------


_JSON_TYPES = {"str": "string", "path": "string", "int": "integer", "float": "number", "bool": "boolean"}


def _templated(value: Any) -> bool:
    return any(marker in json.dumps(value, default=str) for marker in ("{{", "{%", "{#", "[[", "[%"))


def parameters_schema(spec: CopierSpec) -> dict[str, Any]:
    """copier.yml questions as JSON Schema (x-when / x-validator where JSON Schema has no word)."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, details in spec.questions.items():
        default = details.get("default", MISSING)
        declared = details.get("type", "")
        if declared == "":
            type_name = type(default).__name__
            declared = type_name if type_name in CAST else "yaml"
        prop: dict[str, Any] = {}
        json_type = _JSON_TYPES.get(str(declared))
        choices = details.get("choices")
        values: list[Any] | None = None
        if isinstance(choices, (list, dict)):
            values = []
            labels: list[str] = []
            validators: list[str] = []
            items = list(choices.items()) if isinstance(choices, dict) else list(choices)
            for choice in items:
                label, value = choice if isinstance(choice, (tuple, list)) and len(choice) == 2 else (choice, choice)
                validator = ""
                if isinstance(value, dict):
                    validator = str(value.get("validator", ""))
                    value = value.get("value")
                values.append(value)
                labels.append(str(label))
                validators.append(validator)
            if _templated(values) or _templated(labels):
                values = None
                prop["x-choices-template"] = choices
            else:
                if labels != [str(value) for value in values]:
                    prop["x-enum-labels"] = labels
                if any(validators):
                    prop["x-enum-validators"] = validators
        elif isinstance(choices, str):
            prop["x-choices-template"] = choices
        if details.get("multiselect"):
            prop["type"] = "array"
            prop["items"] = {"enum": values} if values is not None else ({"type": json_type} if json_type else {})
            prop["uniqueItems"] = True
        else:
            if json_type:
                prop["type"] = json_type
            if values is not None:
                prop["enum"] = values
        if default is not MISSING:
            if _templated(default):
                prop["x-default-template"] = default
            else:
                try:
                    value = (
                        CAST[str(declared)](default)
                        if isinstance(default, str) and declared in ("json", "yaml")
                        else default
                    )
                    prop["default"] = _plain(value)
                except (ValueError, TypeError):
                    prop["x-default-template"] = default
        if isinstance(details.get("help"), str):
            prop["description"] = details["help"]
        if isinstance(details.get("placeholder"), str):
            prop["x-placeholder"] = details["placeholder"]
        when = details.get("when", True)
        if when is not True:
            prop["x-when"] = when
        if details.get("validator"):
            prop["x-validator"] = details["validator"]
        if name in spec.secret_questions:
            prop["writeOnly"] = True
            prop["x-secret"] = True
        if details.get("multiline"):
            prop["x-multiline"] = details["multiline"]
        if declared in ("json", "yaml"):
            prop["x-copier-type"] = declared
        properties[name] = prop
        if default is MISSING and when is True and details.get("ask", True) is True:
            required.append(name)
    # the questions' order, as Copier asks them (JSON objects stored as jsonb lose it)
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "x-format": FORMAT,
        "x-order": list(properties),
    }
    if required:
        schema["required"] = required
    return schema


# --- preparing and rendering ----------------------------------------------------------------------


@dataclass
class _Source:
    rel: str  # relative to the template folder
    copy_rel: str  # relative to the subdirectory (the copy root)
    info: FileInfo | None  # None for a folder
    is_template: bool
    parts: tuple[str, ...]
    static: bool = False  # no part is templated (set by the prepared template)


class PreparedCopier:
    """A Copier template read and compiled once per version and process.

    Which files and folders lie below the copy root, which are templates, and the compiled code of
    every templated path part and file are kept as the version's plan beside its code store, so a
    warm generation in a new process reads only the files it copies.
    """

    def __init__(self, spec: CopierSpec, checksum: str) -> None:
        self.spec = spec
        self.folder = spec.folder
        self.checksum = checksum
        self.known: set[str] = set()
        self.known_dirs: set[str] = set()
        self.env = make_env(spec, engine.SourceLoader(spec.folder, self.known, [""]))
        self.code = engine.CodeCache(self.env, engine.store_path(FORMAT, checksum))
        self.part_names: dict[str, str] = {}
        self.content_names: dict[str, str] = {}
        self._sources: dict[str, list[_Source]] = {}
        self._scanned = False
        plan = engine.read_plan(FORMAT, checksum)
        if plan is None or not self._load(plan):
            self._scan()
            if not self._templated(spec.subdirectory):
                self.sources_for(_copy_root(spec.subdirectory, spec))  # compiled now; a templated one on first use

    def _load(self, plan: dict[str, Any]) -> bool:
        if not self.code.adopt(plan["digests"], plan.get("errors")):
            return False
        self.known.update(plan["known"])
        self.known_dirs.update(plan["known_dirs"])
        self.part_names.update(plan["part_names"])
        self.content_names.update(plan["content_names"])
        for root, items in plan["roots"].items():
            self._sources[root] = [
                _Source(rel, copy_rel, FileInfo(rel, info[0], info[1]) if info else None, is_template, tuple(parts))
                for rel, copy_rel, info, is_template, parts in items
            ]
            self._mark_static(self._sources[root])
        return True

    def _scan(self) -> None:
        files, dirs = engine.walk_files(self.folder)
        self.spec.files, self.spec.dirs = files, dirs
        self.known.update(info.rel for info in files)
        self.known_dirs.update(dirs)
        self._scanned = True

    def _save(self) -> None:
        engine.write_plan(
            FORMAT,
            self.checksum,
            {
                "digests": self.code.digests,
                "errors": self.code.errors,
                "known": sorted(self.known),
                "known_dirs": sorted(self.known_dirs),
                "part_names": self.part_names,
                "content_names": self.content_names,
                "roots": {
                    root: [
                        [
                            src.rel,
                            src.copy_rel,
                            [src.info.mode, src.info.size] if src.info else None,
                            src.is_template,
                            list(src.parts),
                        ]
                        for src in sources
                    ]
                    for root, sources in self._sources.items()
                },
            },
        )

    def _exists(self, rel: str) -> bool:
        return rel in self.known or rel in self.known_dirs

    def sources_for(self, root: str) -> list[_Source]:
        """The files and folders below the copy root, classified (and compiled) once per root."""
        found = self._sources.get(root)
        if found is not None:
            return found
        if not self._scanned:
            self._scan()
        suffix = self.spec.suffix
        prefix = f"{root}/" if root else ""
        sources: list[_Source] = []
        entries = [(rel, None) for rel in self.spec.dirs] + [(info.rel, info) for info in self.spec.files]
        for rel, info in sorted(entries, key=lambda item: item[0]):
            if not rel.startswith(prefix) or rel == root:
                continue
            copy_rel = rel[len(prefix) :]
            is_template = copy_rel.rsplit("/", 1)[-1].endswith(suffix)
            if suffix and self._exists(f"{rel}{suffix}"):
                continue  # a templated sibling wins
            path = PurePosixPath(copy_rel)
            if suffix and is_template:
                path = path.with_suffix("")
            sources.append(_Source(rel, copy_rel, info, is_template, path.parts))
        self._compile_sources(sources)
        self._mark_static(sources)
        self._sources[root] = sources
        self._save()
        return sources

    def _mark_static(self, sources: list[_Source]) -> None:
        for source in sources:
            source.static = not any(part in self.part_names for part in source.parts)

    def _compile_sources(self, sources: list[_Source]) -> None:
        added = False
        for source in sources:
            for part in source.parts:
                if part not in self.part_names and self._templated(part):
                    name = f"p{len(self.part_names)}"
                    self.part_names[part] = name
                    self.code.add(name, part, source.rel, path=True)
                    added = True
            info = source.info
            if (
                info is None
                or not source.rel.rsplit("/", 1)[-1].endswith(self.spec.suffix)
                or source.rel in self.content_names
            ):
                continue
            if info.size > settings.MAX_FILE_SIZE:
                raise GenerationFailed(
                    f"'{info.rel}' is larger than the file size limit of {settings.MAX_FILE_SIZE} bytes.",
                    code="output_limit_exceeded",
                    extra={"file": info.rel, "limit": settings.MAX_FILE_SIZE},
                )
            data = (self.folder / info.rel).read_bytes()
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                if not self.spec.suffix:
                    continue  # Copier copies it as it is
                line = data.count(b"\n", 0, exc.start) + 1
                raise GenerationFailed(
                    f"{info.rel}:{line}: the file is not valid UTF-8, so Copier cannot render it.",
                    code="template_error",
                    extra={"file": info.rel, "line": line},
                ) from None
            name = f"c{len(self.content_names)}"
            self.content_names[source.rel] = name
            self.code.add(name, text, info.rel)
            added = True
        if added:
            self.code.compile_all()

    def _templated(self, text: str) -> bool:
        env = self.env
        markers = (
            env.variable_start_string,
            env.block_start_string,
            env.comment_start_string,
            env.line_statement_prefix,
            env.line_comment_prefix,
        )
        return any(marker and marker in text for marker in markers)

    def render_string(self, text: str, context: dict[str, Any], *, where: str) -> str:
        if not self._templated(text):
            return text
        return engine.render_string(self.env, text, context, where=where)


def _normal(path: str) -> str:
    """The path as Copier's `Path` sees it (`a//b`, `./a`); most paths are already normal."""
    if "//" in path or path.startswith("./") or "/./" in path or path.endswith(("/", "/.")):
        return str(PurePosixPath(path))
    return path


def _copy_root(subdirectory: str, spec: CopierSpec) -> str:
    root = str(PurePosixPath(subdirectory)) if subdirectory else ""
    if root == ".":
        return ""
    if root.startswith("/") or ".." in PurePosixPath(root).parts:
        raise GenerationFailed(
            f"{spec.config_name}: '_subdirectory' is '{subdirectory}', outside the template.",
            code="unsafe_path",
            extra={"file": spec.config_name},
        )
    return root


def _path_matcher(patterns: list[str]) -> Callable[[str], bool]:
    from pathspec import PathSpec  # Copier's gitignore matching; imported when a Copier version renders

    normalized = [unicodedata.normalize("NFD", pattern) for pattern in patterns]
    spec = PathSpec.from_lines("gitignore", normalized)
    return spec.match_file  # type: ignore[no-any-return]


def inspect(folder: Path) -> CopierSpec:
    return load_spec(folder)


def prepare(folder: Path, checksum: str | None = None) -> PreparedCopier:
    """The prepared template of a version (cached per process; `checksum` of an immutable version
    folder, or computed here when not given)."""
    if checksum is None:
        files, _ = engine.walk_files(folder)
        checksum = engine.folder_checksum(folder, files)
    final = checksum
    return engine.cached_prepare(  # type: ignore[no-any-return]
        FORMAT, folder, final, lambda: PreparedCopier(load_spec(folder, scan=False), final)
    )


def validate(prepared: PreparedCopier, answers: Any, source: SourceInfo | None = None) -> Resolved:
    with render_limits(seconds=settings.KILN_DRY_RUN_TIME_LIMIT, max_bytes=settings.MAX_FILE_SIZE):
        return _resolve(prepared, answers, source or SourceInfo())


def _resolve(prepared: PreparedCopier, answers: Any, source: SourceInfo) -> Resolved:
    try:
        return resolve_answers(prepared.spec, prepared.env, answers, source)
    except GenerationFailed as exc:
        raise ValidationFailed(
            f"{prepared.spec.config_name}: {exc.message}",
            code=exc.code,
            extra={"file": prepared.spec.config_name, **exc.extra},
        ) from None


TaskRunner = Callable[..., Any]


def unsupported(spec: CopierSpec) -> FormatUnsupported | None:
    """What Kiln never runs, trusted or not: Jinja extensions it does not provide itself."""
    foreign = [name for name in spec.settings.get("jinja_extensions") or [] if name not in BUILTIN_EXTENSIONS]
    if not foreign:
        return None
    return FormatUnsupported(
        f"{spec.config_name}: the template loads Jinja extensions ({', '.join(foreign)}); Kiln renders "
        "templates in its sandbox and does not import template code into it (it provides "
        f"{', '.join(sorted(BUILTIN_EXTENSIONS))} itself).",
        extra={"file": spec.config_name, "line": spec.line("_jinja_extensions"), "extensions": foreign},
    )


def render(
    prepared: PreparedCopier,
    answers: dict[str, Any],
    sink: OutputSink,
    *,
    source: SourceInfo | None = None,
    progress: Callable[[int, int], None] | None = None,
    time_limit: float | None = None,
    run_tasks: TaskRunner | None = None,
    existing: dict[str, tuple[bytes, int]] | None = None,
    overwrite: bool = False,
) -> GenerationResult:
    """Generate the project's files into `sink` as `copier copy --defaults --data ...` would.

    `existing` are files already in the destination (an update renders over the project);
    with `overwrite`, a rendered file replaces a different existing one unless it matches
    `_skip_if_exists`. Tasks run through `run_tasks` (the isolation runner), for trusted versions.
    """
    source = source or SourceInfo()
    spec = prepared.spec
    refused = unsupported(spec)
    if refused is not None:
        raise refused
    if spec.tasks and run_tasks is None:
        raise engine.TemplateUntrusted(
            "This template version runs code (" + ", ".join(spec.uses_code) + "); a staff user must trust the "
            "version before it can be generated (POST /templates/{slug}/versions/{version}/trust/).",
            extra={"uses_code": spec.uses_code},
        )
    with render_limits(seconds=time_limit or settings.KILN_RENDER_TIME_LIMIT, max_bytes=settings.MAX_FILE_SIZE):
        resolved = _resolve(prepared, answers, source)
        output = engine.Output()
        for path, (data, mode) in (existing or {}).items():
            output.add(path, data, mode, source=path)
        context = render_context(spec, resolved.answers, source, phase="render", trusted=run_tasks is not None)
        _render_tree(prepared, context, output, progress, existing=set(existing or {}), overwrite=overwrite)
        if spec.tasks:
            assert run_tasks is not None
            task_context = render_context(spec, resolved.answers, source, phase="tasks", trusted=True)
            extra = {"_stage": "task", "_copier_operation": "copy"}
            commands = []
            for task in spec.tasks:
                details = task if isinstance(task, dict) else {"command": task}
                condition = details.get("when", "true" if isinstance(task, dict) else True)
                merged = {**task_context, **extra}
                if isinstance(condition, str):
                    condition = prepared.render_string(condition, merged, where=f"{spec.config_name}: _tasks when")
                if not cast_to_bool(condition):
                    continue
                command = details["command"]
                if isinstance(command, str):
                    argv = [
                        "/bin/sh",
                        "-c",
                        prepared.render_string(command, merged, where=f"{spec.config_name}: _tasks"),
                    ]
                else:
                    argv = [
                        prepared.render_string(str(part), merged, where=f"{spec.config_name}: _tasks")
                        for part in command
                    ]
                cwd = prepared.render_string(
                    str(details.get("working_directory", ".")), merged, where=f"{spec.config_name}: _tasks"
                )
                commands.append({"argv": argv, "cwd": cwd, "env": {"STAGE": "task", "COPIER_OPERATION": "copy"}})
            if commands:
                secrets = [
                    str(value)
                    for name, value in resolved.answers.combined().items()
                    if name in spec.secret_questions and value not in (None, "")
                ]
                output = run_tasks(
                    commands=commands,
                    files=output,
                    project=source.folder_name,
                    template=prepared.folder,
                    secrets=secrets,
                )
        return output.emit(sink)


def _render_tree(
    prepared: PreparedCopier,
    context: dict[str, Any],
    output: engine.Output,
    progress: Callable[[int, int], None] | None,
    *,
    existing: set[str],
    overwrite: bool,
) -> None:
    spec = prepared.spec
    subdirectory = prepared.render_string(spec.subdirectory, context, where=f"{spec.config_name}: _subdirectory") or ""
    root = _copy_root(subdirectory, spec)
    if root and root not in prepared.known_dirs:
        raise GenerationFailed(
            f"{spec.config_name}: '_subdirectory' renders to '{subdirectory}', which is not a folder of the template.",
            code="template_invalid",
            extra={"file": spec.config_name},
        )
    answers_conf = {**context, "_copier_conf": {**context["_copier_conf"], "answers_file": ""}}
    answers_path = prepared.render_string(spec.answers_file, answers_conf, where=f"{spec.config_name}: _answers_file")
    context["_copier_conf"]["answers_file"] = answers_path
    answers_path = str(PurePosixPath(answers_path))
    operation = {"_copier_operation": "copy"}
    exclusions: list[str] = []
    for pattern in spec.exclude:
        rendered = prepared.render_string(pattern, {**context, **operation}, where=f"{spec.config_name}: _exclude")
        exclusions.extend(re.split(r"\r\n|\r|\n", rendered))
    if globs_too_large(exclusions):
        raise GenerationFailed(
            f"{spec.config_name}: '_exclude' renders to more than {MAX_GLOBS} patterns or one longer than "
            f"{MAX_GLOB_LENGTH} characters.",
            code="template_invalid",
            extra={"file": spec.config_name},
        )
    excluded = _path_matcher(exclusions)
    skip_patterns = [
        prepared.render_string(p, context, where=f"{spec.config_name}: _skip_if_exists") for p in spec.skip_if_exists
    ]
    if globs_too_large(skip_patterns):
        raise GenerationFailed(
            f"{spec.config_name}: '_skip_if_exists' renders to a pattern longer than {MAX_GLOB_LENGTH} characters.",
            code="template_invalid",
            extra={"file": spec.config_name},
        )
    skipped = _path_matcher(skip_patterns)
    sources = prepared.sources_for(root)
    total = len(sources)
    written: set[str] = set()
    part_cache: dict[tuple[str, str], tuple[str, Any]] = {}
    for done, source in enumerate(sources, start=1):
        for dst, extra in _render_parts(prepared, source, context, answers_path, part_cache):
            if excluded(dst) or source.info is None:
                continue
            _render_file(
                prepared,
                source,
                dst,
                {**context, **extra} if extra else context,
                output,
                written,
                existing,
                overwrite,
                skipped,
                answers_path,
            )
        if progress is not None:
            progress(done, total)


def _render_parts(
    prepared: PreparedCopier,
    source: _Source,
    context: dict[str, Any],
    answers_path: str,
    cache: dict[tuple[str, str], tuple[str, Any]],
) -> Iterator[tuple[str, dict[str, Any]]]:
    suffix = prepared.spec.suffix
    if source.static and answers_path not in source.parts:
        path = "/".join(source.parts)
        if source.is_template or not prepared._exists(f"{path}{suffix}"):
            yield path, {}
        return

    def render_part(part: str, extra: dict[str, Any]) -> tuple[str, Any]:
        name = prepared.part_names.get(part)
        if name is None:
            return part, None
        key = (part, json.dumps(extra, sort_keys=True, default=str)) if extra else (part, "")
        found = cache.get(key)
        if found is not None:
            return found
        yielded = reset_yield()
        text = engine.render_text(
            prepared.code.get(name), {**context, **extra} if extra else context, source.rel, "<template>", path=True
        )
        result = (text, (yielded.name, list(yielded.iterable or ())) if yielded.name else None)
        reset_yield()
        cache[key] = result
        return result

    def walk(
        parts: tuple[str, ...], rendered: tuple[str, ...], extra: dict[str, Any]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        if not parts:
            path = "/".join(rendered)
            if source.is_template or not prepared._exists(f"{path}{suffix}"):
                yield path, extra
            return
        part, rest = parts[0], parts[1:]
        text, yielded = render_part(part, extra)
        if yielded is not None:
            loop_name, iterable = yielded
            for value in iterable:
                inner = {**extra, loop_name: value}
                text, _ = render_part(part, inner)
                if text == answers_path:
                    yield answers_path, inner
                    continue
                if not text:
                    continue
                yield from walk(rest, (*rendered, text), inner)
            return
        if not text:
            return
        if text == answers_path:
            yield answers_path, extra
            return
        yield from walk(rest, (*rendered, text), extra)

    yield from walk(source.parts, (), {})


def _render_file(
    prepared: PreparedCopier,
    source: _Source,
    dst: str,
    context: dict[str, Any],
    output: engine.Output,
    written: set[str],
    existing: set[str],
    overwrite: bool,
    skipped: Callable[[str], bool],
    answers_path: str,
) -> None:
    info = source.info
    assert info is not None
    name = prepared.content_names.get(source.rel)
    if name is not None:
        reset_yield()
        text = engine.render_text(prepared.code.get(name), context, source.rel, name)
        if yield_context().name:
            reset_yield()
            raise GenerationFailed(
                f"{source.rel} contains a yield tag, which Copier allows in path names only.",
                code="template_error",
                extra={"file": source.rel},
            )
        data = engine.encode(text, source.rel)
    else:
        data = (prepared.folder / source.rel).read_bytes()
    dst = _normal(dst)
    if dst in output.files:
        previous, previous_mode, _ = output.files[dst]
        same = previous == data and (previous_mode & 0o111) == (info.mode & 0o111)
        if same:
            written.add(dst)
            return
        if skipped(dst):
            written.add(dst)
            return
        if not (overwrite or dst == answers_path or (dst in existing and dst not in written and overwrite)):
            raise GenerationFailed(
                f"Two template files render to '{dst}' with different contents; Copier would ask whether to "
                "overwrite (and fails without a terminal).",
                code="duplicate_output_path",
                extra={"path": dst, "file": source.rel},
            )
    output.add(dst, data, info.mode, source=source.rel, is_binary=name is None and b"\0" in data[:8192])
    written.add(dst)


def secret_parameters(spec: CopierSpec) -> set[str]:
    return set(spec.secret_questions)


# --- the format, as the registry sees it --------------------------------------------------------

# A secret answer as the generation records it: encrypted like provider tokens (Fernet), never
# in plain text (and, as in Copier, never in the answers file).
SEALED_KEY = "$kiln_secret"


def seal_secrets(spec: CopierSpec, answers: dict[str, Any]) -> dict[str, Any]:
    from apps.projects.services.secrets import encrypt_secret

    return {
        name: {SEALED_KEY: encrypt_secret(json.dumps(value))}
        if name in spec.secret_questions and not _is_sealed(value)
        else value
        for name, value in answers.items()
    }


def _is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {SEALED_KEY} and isinstance(value[SEALED_KEY], str)


def open_secrets(spec: CopierSpec, answers: dict[str, Any]) -> dict[str, Any]:
    from apps.projects.services.secrets import SecretUnreadable, decrypt_secret

    opened = {}
    for name, value in answers.items():
        if name in spec.secret_questions and _is_sealed(value):
            try:
                value = json.loads(decrypt_secret(value[SEALED_KEY]))
            except SecretUnreadable:
                raise GenerationFailed(
                    f"The recorded answer to the secret question '{name}' cannot be decrypted with this "
                    "installation's KILN_FERNET_KEY.",
                    code="secret_unreadable",
                    extra={"question": name},
                ) from None
        opened[name] = value
    return opened


@dataclass
class CopierVersion:
    """A prepared Copier version for `ProjectGenerator` (`formats.PreparedVersion`)."""

    prepared: PreparedCopier
    version: VersionRef
    format: str = FORMAT

    @property
    def checksum(self) -> str:
        return self.prepared.checksum

    @property
    def runs_code(self) -> bool:
        return self.version.trusted and bool(self.prepared.spec.tasks)

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
            open_secrets(self.prepared.spec, parameters),
            sink,
            source=self.version.source,
            progress=progress,
            time_limit=seconds,
            run_tasks=isolation.copier_tasks if self.version.trusted else None,
        )

    def file_at(self, index: int) -> str | None:
        return None


@register_format
class CopierFormat:
    id = FORMAT
    config_files = ("copier.yml", "copier.yaml")

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
            exclude=spec.exclude,
        )

    def validate(self, version: VersionRef, parameters: Any) -> dict[str, Any]:
        """Copier's own rules (types, choices, validators, `when`); the answers as given are what the
        generation records, secret ones encrypted."""
        prepared = prepare(version.folder, version.checksum)
        refused = unsupported(prepared.spec)
        if refused is not None:
            raise refused
        if prepared.spec.uses_code and not version.trusted:
            raise untrusted_error(prepared.spec.uses_code)
        if parameters is None:
            parameters = {}
        validate(
            prepared,
            open_secrets(prepared.spec, parameters) if isinstance(parameters, dict) else parameters,
            version.source,
        )
        return seal_secrets(prepared.spec, dict(parameters))

    def prepare(self, version: VersionRef) -> CopierVersion:
        return CopierVersion(prepare(version.folder, version.checksum), version)
