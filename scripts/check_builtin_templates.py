#!/usr/bin/env python3
"""Render every built-in template and run the generated project's own test suite.

Standalone on purpose: it needs only jinja2, PyYAML and jsonschema (no Django, no Kiln
code), and re-implements the native template rules so a template can be checked without
a database or a worker:

    .venv/bin/python scripts/check_builtin_templates.py [--only SLUG] [--keep DIR] [--no-run] [-v]

For every folder in apps/templates/builtin_templates/ it

1. validates template.yaml: the allowed and required keys, slug == folder name, a semver
   version, `parameters` is a valid JSON Schema object schema (checked with the
   validator its $schema names) with `additionalProperties: false` and a valid default
   for every property, and the glob lists;
2. renders the template with its defaults, with a non-default set (every boolean
   flipped, every enum moved to another value, other names) and with extra sets until
   every enum value has been rendered once. Rendering follows Kiln's rules: Jinja2
   ImmutableSandboxedEnvironment + StrictUndefined + keep_trailing_newline, no
   autoescape, the defaults-applied parameters as the context; the whole relative path
   is rendered (and must give the same result segment by segment, as Kiln's engine
   renders each segment); an empty or blank path or segment skips the file; `exclude`
   and `copy_without_render` are fnmatch globs (with Kiln's `**/` and `/**` handling);
   files that are binary (NUL byte or not UTF-8), listed in `copy_without_render` or
   free of `{{`, `{%`, `{#` are copied byte for byte; the executable bit is kept;
3. checks the output: rendering twice gives the same bytes, paths are safe, `.py` files
   compile, `.toml`/`.json`/`.yml` files parse, `.sh` files pass `bash -n`, and files
   starting with `#!` are executable;
4. runs the project's test commands (COMMANDS below) in a subprocess with this Python,
   inside a folder whose parent holds a hostile pytest.ini and conftest.py, the way
   generated projects sit inside Kiln's own checkout (generated-projects/), so a project
   that does not isolate its pytest configuration fails here too.

Exits with status 1 when anything fails.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jsonschema import FormatChecker, SchemaError
from jsonschema.validators import validator_for

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = ROOT / "apps" / "templates" / "builtin_templates"
PYTHON = sys.executable

MANIFEST_NAME = "template.yaml"
MANIFEST_KEYS = frozenset({"slug", "name", "description", "version", "parameters", "exclude", "copy_without_render"})
REQUIRED_KEYS = ("slug", "name", "description", "version", "parameters")
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$")
SEMVER_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$", re.ASCII)
IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MARKERS = ("{{", "{%", "{#")
SNIFF_BYTES = 8192
WINDOWS_UNSAFE = set('<>:"|?*\\')
COMMAND_TIMEOUT = 300

# Environment variables of the calling process that must not leak into a generated project.
SCRUBBED_ENV_PREFIXES = ("DJANGO_", "DATABASE_URL", "CELERY_", "KILN_", "PYTEST_", "PYTHONPATH", "VIRTUAL_ENV")


@dataclass(frozen=True)
class Step:
    """One check run in the generated project: a command, or a server that must answer."""

    argv: tuple[str, ...]
    http_path: str | None = None  # start argv with PORT=<free port>, GET this path, expect 200, stop it

    @property
    def label(self) -> str:
        shown = ["python" if arg == PYTHON else arg for arg in self.argv]
        text = " ".join(shown)
        return f"{text}  (then GET {self.http_path})" if self.http_path else text


PYTEST = (PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider")

COMMANDS: dict[str, list[Step]] = {
    "python-package": [
        Step(PYTEST),
        Step((PYTHON, "-m", "compileall", "-q", "src")),
        Step(("scripts/test.sh", "-q", "-p", "no:cacheprovider")),
    ],
    "django-rest-service": [
        Step((PYTHON, "manage.py", "check")),
        Step((PYTHON, "manage.py", "test", "-v", "1")),
        Step((PYTHON, "manage.py", "makemigrations", "--check", "--dry-run")),
    ],
    "fastapi-service": [
        Step(PYTEST),
        Step(("scripts/run.sh",), http_path="/health"),
    ],
}

# Non-default values for parameters that are neither booleans nor enums (those are flipped
# automatically). Chosen to exercise escaping and name derivation.
OVERRIDES: dict[str, dict[str, Any]] = {
    "python-package": {
        "project_name": "acme-text-tools",
        "description": 'Text tools with "quotes", back\\slashes & an apostrophe\'s worth of UTF-8: ünïcödé',
        "author_name": "Zoë O'Brien",
        "author_email": "zoe@example.org",
        "version": "2.0.0rc1",
        "year": "2031",
    },
    "django-rest-service": {
        "project_name": "inventory-api",
        "description": 'Stock keeping with "quotes" & ünïcödé',
        "app_name": "stock_items",
        "resource_name": "StockItem",
    },
    "fastapi-service": {
        "project_name": "orders-api",
        "description": 'Orders with "quotes", back\\slashes & ünïcödé',
        "version": "2.1.0",
        "port": 8080,
    },
}


class CheckFailed(Exception):
    """A rule of the template format or of the generated output was broken."""


@dataclass(frozen=True)
class Manifest:
    slug: str
    name: str
    description: str
    version: str
    parameters: dict[str, Any]
    exclude: tuple[str, ...]
    copy_without_render: tuple[str, ...]


@dataclass
class Report:
    failures: int = 0
    renders: int = 0
    commands: int = 0
    verbose: bool = False

    def ok(self, text: str) -> None:
        print(f"  ok    {text}", flush=True)

    def fail(self, text: str, detail: str = "") -> None:
        self.failures += 1
        print(f"  FAIL  {text}", flush=True)
        for line in detail.rstrip().splitlines():
            print(f"        | {line}", flush=True)


# --- template.yaml ---------------------------------------------------------------------------


def load_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST_NAME
    if not path.is_file() or path.is_symlink():
        raise CheckFailed(f"{MANIFEST_NAME} is missing or not a regular file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CheckFailed(f"{MANIFEST_NAME} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckFailed(f"{MANIFEST_NAME} must be a mapping")
    problems: list[str] = []
    unknown = sorted(set(map(str, data)) - MANIFEST_KEYS)
    if unknown:
        problems.append(f"unknown keys: {', '.join(unknown)}")
    problems += [f"'{key}' is required" for key in REQUIRED_KEYS if data.get(key) in (None, "")]
    for key in ("slug", "name", "description", "version"):
        if key in data and not isinstance(data[key], str):
            problems.append(f"'{key}' must be a string (quote it in YAML)")
    if problems:
        raise CheckFailed("; ".join(problems))

    slug, version = data["slug"], data["version"]
    if slug != folder.name:
        problems.append(f"slug '{slug}' does not equal the folder name '{folder.name}'")
    if not SLUG_RE.match(slug):
        problems.append(f"slug '{slug}' must be lowercase letters, digits and dashes")
    if not SEMVER_RE.match(version):
        problems.append(f"version '{version}' is not a semver string like 1.0.0")

    globs: dict[str, tuple[str, ...]] = {}
    for key in ("exclude", "copy_without_render"):
        value = data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            problems.append(f"'{key}' must be a list of glob patterns")
            value = []
        globs[key] = tuple(value)

    schema = data["parameters"]
    problems += check_parameter_schema(schema)
    if problems:
        raise CheckFailed("; ".join(problems))
    return Manifest(
        slug=slug,
        name=data["name"],
        description=data["description"],
        version=version,
        parameters=schema,
        exclude=globs["exclude"],
        copy_without_render=globs["copy_without_render"],
    )


def check_parameter_schema(schema: Any) -> list[str]:
    if not isinstance(schema, dict):
        return ["'parameters' must be a JSON Schema object"]
    problems: list[str] = []
    if schema.get("type") != "object":
        problems.append("'parameters' must have type: object")
    validator_class = validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except SchemaError as exc:
        return [*problems, f"'parameters' is not a valid JSON Schema: {exc.message}"]
    if schema.get("additionalProperties") is not False:
        problems.append("'parameters' must set additionalProperties: false")
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        return [*problems, "'parameters.properties' must be a non-empty mapping"]
    for name, prop in properties.items():
        if not IDENTIFIER_RE.match(str(name)):
            problems.append(f"parameter name '{name}' is not an identifier")
        if not isinstance(prop, dict):
            problems.append(f"parameter '{name}' must be a schema mapping")
            continue
        if "type" not in prop:
            problems.append(f"parameter '{name}' has no type")
        if not prop.get("description"):
            problems.append(f"parameter '{name}' has no description")
        if "default" not in prop:
            problems.append(f"parameter '{name}' has no default (templates must render with defaults only)")
            continue
        errors = list(validator_class(prop, format_checker=FormatChecker()).iter_errors(prop["default"]))
        if errors:
            problems.append(f"the default of '{name}' does not match its schema: {errors[0].message}")
    missing = [name for name in schema.get("required", []) if name not in properties]
    if missing:
        problems.append(f"required parameters without a property: {', '.join(missing)}")
    return problems


def apply_defaults(manifest: Manifest, params: dict[str, Any]) -> dict[str, Any]:
    """The render context: every default, then the given values; checked against the schema."""
    schema = manifest.parameters
    context = {name: prop["default"] for name, prop in schema["properties"].items()}
    context.update(params)
    validator = validator_for(schema)(schema, format_checker=FormatChecker())
    errors = sorted(validator.iter_errors(context), key=lambda e: list(e.absolute_path))
    if errors:
        where = "/".join(map(str, errors[0].absolute_path)) or "(root)"
        raise CheckFailed(f"parameters do not match the schema at {where}: {errors[0].message}")
    plain: dict[str, Any] = json.loads(json.dumps(context))  # Kiln hands templates plain JSON values
    return plain


def parameter_sets(manifest: Manifest) -> list[tuple[str, dict[str, Any]]]:
    """Defaults, everything flipped, then extra sets until every enum value was used once."""
    properties: dict[str, Any] = manifest.parameters["properties"]
    flipped: dict[str, Any] = {}
    for name, prop in properties.items():
        default = prop["default"]
        if prop.get("type") == "boolean":
            flipped[name] = not default
        elif len(prop.get("enum", [])) > 1:
            values = prop["enum"]
            flipped[name] = values[(values.index(default) + 1) % len(values)]
    flipped.update(OVERRIDES.get(manifest.slug, {}))
    sets: list[tuple[str, dict[str, Any]]] = [("defaults", {}), ("non-default", flipped)]
    uncovered = {
        name: [v for v in prop["enum"] if v not in (prop["default"], flipped.get(name))]
        for name, prop in properties.items()
        if "enum" in prop
    }
    for index in range(max((len(values) for values in uncovered.values()), default=0)):
        extra = {name: values[index] for name, values in uncovered.items() if index < len(values)}
        label = ", ".join(f"{name}={value}" for name, value in extra.items())
        sets.append((f"enums {label}", extra))
    return sets


# --- reading and rendering ----------------------------------------------------------------


def matches(rel: str, patterns: tuple[str, ...]) -> bool:
    """Kiln's glob rule: fnmatch on the POSIX path, `**/x` also matches `x` at the top."""
    for pattern in patterns:
        if fnmatchcase(rel, pattern):
            return True
        if pattern.startswith("**/") and fnmatchcase(rel, pattern[3:]):
            return True
        if pattern.endswith("/**") and (rel == pattern[:-3] or fnmatchcase(rel, pattern[:-3] + "/*")):
            return True
    return False


def check_path(path: str, *, what: str) -> None:
    """The path rules Kiln applies to template files and rendered output names."""
    if not path:
        raise CheckFailed(f"{what} is empty")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in path) or "\\" in path or path.startswith("/"):
        raise CheckFailed(f"{what} '{path}' has a control character, a backslash or is absolute")
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise CheckFailed(f"{what} '{path}' has an empty, '.' or '..' segment")
        if segment.casefold() == ".git":
            raise CheckFailed(f"{what} '{path}' is inside .git/")
        if segment.endswith((" ", ".")):
            raise CheckFailed(f"{what} '{path}' has a segment ending in a dot or space")
        if len(segment.encode("utf-8")) > 255:
            raise CheckFailed(f"{what} '{path}' has a segment longer than 255 bytes")


def template_files(folder: Path) -> list[tuple[str, int]]:
    """(relative path, 0o755 or 0o644) of every template file, sorted; links are errors."""
    found: list[tuple[str, int]] = []
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        with os.scandir(folder / rel_dir if rel_dir else folder) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    raise CheckFailed(f"'{rel}' is a symbolic link; templates may not contain links")
                if stat.S_ISDIR(st.st_mode):
                    if entry.name == ".git":
                        raise CheckFailed(f"'{rel}/' is a .git folder")
                    stack.append(rel)
                    continue
                if not stat.S_ISREG(st.st_mode):
                    raise CheckFailed(f"'{rel}' is not a regular file")
                if rel == MANIFEST_NAME:
                    continue
                check_path(rel, what="template file")
                if WINDOWS_UNSAFE & set(rel.replace("/", "")):
                    raise CheckFailed(f"template file '{rel}' has a character Windows cannot check out (<>:\"|?*\\)")
                found.append((rel, 0o755 if st.st_mode & stat.S_IXUSR else 0o644))
    return sorted(found)


def make_environment() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)


def render_path(env: ImmutableSandboxedEnvironment, rel: str, context: dict[str, Any]) -> str | None:
    """The output path of `rel`, or None when the file is skipped (an empty path or segment)."""
    if not any(marker in rel for marker in MARKERS):
        return rel
    try:
        whole = env.from_string(rel).render(context)
    except TemplateError as exc:
        raise CheckFailed(f"the path of '{rel}' does not render: {type(exc).__name__}: {exc}") from exc
    segments: list[str] = []
    try:
        for segment in rel.split("/"):
            value = env.from_string(segment).render(context) if any(m in segment for m in MARKERS) else segment
            segments.append(value)
    except TemplateError as exc:
        raise CheckFailed(
            f"the path of '{rel}' renders as a whole but not segment by segment, as Kiln's engine renders it "
            f"({type(exc).__name__}: {exc}); keep every {{% %}} block inside one path segment"
        ) from exc
    skipped = not whole.strip() or any(not segment.strip() for segment in whole.split("/"))
    by_segment = None if any(not value.strip() for value in segments) else "/".join(segments)
    if (None if skipped else whole) != by_segment:
        raise CheckFailed(
            f"the path of '{rel}' renders to {whole!r} as a whole but to {by_segment!r} segment by segment "
            "(Kiln's engine renders each segment); keep every {% %} block inside one segment"
        )
    if skipped:
        return None
    check_path(whole, what=f"the rendered path of '{rel}'")
    return whole


def is_binary(data: bytes) -> bool:
    if b"\0" in data[:SNIFF_BYTES]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


@dataclass(frozen=True)
class Output:
    data: bytes
    mode: int
    source: str
    rendered: bool


def render_template(folder: Path, manifest: Manifest, context: dict[str, Any]) -> dict[str, Output]:
    env = make_environment()
    outputs: dict[str, Output] = {}
    seen: dict[str, str] = {}
    for rel, mode in template_files(folder):
        if matches(rel, manifest.exclude):
            continue
        path = render_path(env, rel, context)
        if path is None:
            continue
        if path.casefold() in seen:
            raise CheckFailed(f"'{seen[path.casefold()]}' and '{rel}' both render to '{path}'")
        seen[path.casefold()] = rel
        data = (folder / rel).read_bytes()
        render = (
            not is_binary(data)
            and not matches(rel, manifest.copy_without_render)
            and any(marker.encode() in data for marker in MARKERS)
        )
        if render:
            try:
                data = env.from_string(data.decode("utf-8")).render(context).encode("utf-8")
            except TemplateError as exc:
                line = getattr(exc, "lineno", None)
                where = f"{rel}:{line}" if line else rel
                raise CheckFailed(f"{where} does not render: {type(exc).__name__}: {exc}") from exc
        outputs[path] = Output(data=data, mode=mode, source=rel, rendered=render)
    return outputs


def content_sha256(outputs: dict[str, Output]) -> str:
    """Kiln's manifest hash: path, mode and content hash of every file, sorted by path."""
    digest = hashlib.sha256(b"kiln-manifest-v1\n")
    for path in sorted(outputs):
        out = outputs[path]
        digest.update(f"{path}\0{out.mode:o}\0{hashlib.sha256(out.data).hexdigest()}\n".encode())
    return digest.hexdigest()


def write_outputs(outputs: dict[str, Output], dest: Path) -> None:
    for path, out in outputs.items():
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(out.data)
        os.chmod(target, out.mode)


# --- checks on the rendered project ---------------------------------------------------------


def static_problems(outputs: dict[str, Output]) -> list[str]:
    problems: list[str] = []
    bash = shutil.which("bash")
    for path, out in sorted(outputs.items()):
        if is_binary(out.data):
            continue
        text = out.data.decode("utf-8")
        suffix = Path(path).suffix
        try:
            if suffix == ".py":
                compile(text, path, "exec", dont_inherit=True)
            elif suffix == ".toml":
                tomllib.loads(text)
            elif suffix == ".json":
                json.loads(text)
            elif suffix in (".yml", ".yaml"):
                yaml.safe_load(text)
        except (SyntaxError, ValueError, yaml.YAMLError) as exc:
            problems.append(f"{path} does not parse: {type(exc).__name__}: {exc}")
        if text and not text.endswith("\n"):
            problems.append(f"{path} does not end with a newline")
        trailing = [n for n, line in enumerate(text.splitlines(), 1) if line != line.rstrip()]
        if trailing:
            problems.append(f"{path} has trailing whitespace on line(s) {trailing[:5]}")
        if text.startswith("#!") and out.mode != 0o755:
            problems.append(f"{path} starts with #! but is not executable (chmod 755 '{out.source}')")
        if suffix == ".sh":
            if out.mode != 0o755:
                problems.append(f"{path} is a shell script without the executable bit")
            if bash:
                result = subprocess.run([bash, "-n"], input=text, capture_output=True, text=True, check=False)
                if result.returncode:
                    problems.append(f"{path}: bash -n: {result.stderr.strip()}")
    return problems


def project_env(root: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(SCRUBBED_ENV_PREFIXES)}
    env["PYTHONPATH"] = str(root / "src") if (root / "src").is_dir() else str(root)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHON"] = PYTHON  # the interpreter scripts/*.sh in generated projects use
    env["PATH"] = os.pathsep.join([str(Path(PYTHON).parent), env.get("PATH", "")])
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_step(step: Step, root: Path) -> tuple[bool, str]:
    env = project_env(root)
    if step.http_path is None:
        try:
            result = subprocess.run(
                step.argv, cwd=root, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired as exc:
            partial = b"".join(
                part if isinstance(part, bytes) else (part or "").encode() for part in (exc.stdout, exc.stderr)
            )
            return False, f"timed out after {COMMAND_TIMEOUT}s\n{partial.decode(errors='replace')}"
        except OSError as exc:
            return False, f"could not start: {exc}"
        return result.returncode == 0, (result.stdout + result.stderr)
    return run_server_step(step, root, env)


def run_server_step(step: Step, root: Path, env: dict[str, str]) -> tuple[bool, str]:
    port = free_port()
    env = {**env, "PORT": str(port), "HOST": "127.0.0.1"}
    url = f"http://127.0.0.1:{port}{step.http_path}"
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(
            step.argv, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        answer = ""
        ok = False
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    with urllib.request.urlopen(url, timeout=2) as response:
                        answer = f"GET {step.http_path} -> {response.status} {response.read(500).decode()}"
                        ok = response.status == 200
                        break
                except urllib.error.HTTPError as exc:
                    answer = f"GET {step.http_path} -> {exc.code}"
                    break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    time.sleep(0.2)
            else:
                answer = f"no answer from {url} (server exited with {process.poll()})"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.seek(0)
        return ok, f"{answer}\n{log.read()}"


@contextlib.contextmanager
def hostile_parent(keep: Path | None) -> Iterator[Path]:
    """A folder whose pytest.ini and conftest.py break any project that does not isolate itself."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        parent = keep
        cleanup = None
    else:
        cleanup = tempfile.TemporaryDirectory(prefix="kiln-template-check-")
        parent = Path(cleanup.name)
    (parent / "pytest.ini").write_text(
        "[pytest]\n# Stands in for Kiln's own pytest.ini above generated-projects/.\n"
        "addopts = --generated-project-picked-up-a-parent-pytest-ini\n"
    )
    (parent / "conftest.py").write_text(
        'raise RuntimeError("a generated project loaded a conftest.py from outside its own folder")\n'
    )
    try:
        yield parent
    finally:
        if cleanup is not None:
            cleanup.cleanup()


# --- driver ------------------------------------------------------------------------------------


def check_template(folder: Path, parent: Path, report: Report, *, run: bool, write: bool) -> None:
    print(f"\n{folder.name}", flush=True)
    try:
        manifest = load_manifest(folder)
        files = template_files(folder)
    except CheckFailed as exc:
        report.fail("template.yaml / files", str(exc))
        return
    count = len(manifest.parameters["properties"])
    report.ok(f"template.yaml valid (version {manifest.version}, {count} parameters, {len(files)} template files)")
    steps = COMMANDS.get(manifest.slug)
    if steps is None:
        report.fail(f"no test commands known for '{manifest.slug}': add it to COMMANDS in this script")
        return

    for label, params in parameter_sets(manifest):
        report.renders += 1
        shown = json.dumps(params, ensure_ascii=False, sort_keys=True) if params else "{}"
        try:
            context = apply_defaults(manifest, params)
            outputs = render_template(folder, manifest, context)
            again = render_template(folder, manifest, context)
        except CheckFailed as exc:
            report.fail(f"[{label}] render {shown}", str(exc))
            continue
        digest = content_sha256(outputs)
        if digest != content_sha256(again):
            report.fail(f"[{label}] rendering twice gave different output")
            continue
        problems = static_problems(outputs)
        if problems:
            report.fail(f"[{label}] static checks", "\n".join(problems))
            continue
        raw = sum(1 for out in outputs.values() if not out.rendered)
        report.ok(
            f"[{label}] rendered {len(outputs)} files ({raw} copied as-is), content sha256 {digest[:12]}; "
            f"params {shown}"
        )
        if report.verbose:
            for path, out in sorted(outputs.items()):
                print(f"          {out.mode:o} {path}")
        if not (run or write):
            continue
        dest = parent / f"{manifest.slug}--{report.renders:02d}"
        if dest.exists():
            shutil.rmtree(dest)
        write_outputs(outputs, dest)
        if not run:
            continue
        for step in steps:
            report.commands += 1
            started = time.monotonic()
            ok, output = run_step(step, dest)
            took = time.monotonic() - started
            if ok:
                report.ok(f"[{label}] {step.label}  ({took:.1f}s)")
                if report.verbose:
                    for line in output.rstrip().splitlines()[-15:]:
                        print(f"        | {line}")
            else:
                where = str(dest) if write else "a temporary folder (use --keep DIR to inspect it)"
                report.fail(f"[{label}] {step.label}  ({took:.1f}s) in {where}", "\n".join(output.splitlines()[-60:]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--templates-dir", type=Path, default=TEMPLATES_DIR)
    parser.add_argument("--only", action="append", metavar="SLUG", help="check only this template (repeatable)")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="render into DIR and keep the projects")
    parser.add_argument("--no-run", action="store_true", help="validate and render only; run no project tests")
    parser.add_argument("-v", "--verbose", action="store_true", help="list rendered files and command output")
    args = parser.parse_args(argv)

    folders = sorted(p for p in args.templates_dir.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    if args.only:
        unknown = set(args.only) - {p.name for p in folders}
        if unknown:
            parser.error(f"no such template: {', '.join(sorted(unknown))}")
        folders = [p for p in folders if p.name in args.only]
    if not folders:
        print(f"no templates found in {args.templates_dir}")
        return 1

    report = Report(verbose=args.verbose)
    started = time.monotonic()
    print(f"Checking {len(folders)} template(s) in {args.templates_dir} with {PYTHON}")
    with hostile_parent(args.keep) as parent:
        for folder in folders:
            check_template(folder, parent, report, run=not args.no_run, write=args.keep is not None)
    took = time.monotonic() - started
    verdict = "all passed" if report.failures == 0 else f"{report.failures} FAILED"
    print(
        f"\n{len(folders)} templates, {report.renders} renders, {report.commands} project commands "
        f"in {took:.1f}s: {verdict}"
    )
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
