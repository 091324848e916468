"""Blueprint → the files of a runnable project (as a native template: Jinja only for parameters).

`scaffold(blueprint)` returns every file of the project: each path of the document, plus
what makes it run (package `__init__.py` files, tests, `requirements.txt`, `Procfile`,
`README.md`, `.env.example`, `pytest.ini`, Alembic's files where the stack has Alembic,
Django's `manage.py`/urls/wsgi where it is Django). Each file's content comes from its
role (`roles.py`): one writer per role, looked up in `WRITERS`.

Parameters appear as sentinels while the files are written and become Jinja expressions
at the end (`{{ project_name }}`, `{{ database_url }}`); any Jinja marker that came from the
document's text is escaped, so rendering reproduces it literally.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from apps.blueprints.services.parser import Blueprint, Entry, default_project_name
from apps.blueprints.services.roles import ROUTER_DIRS, alembic_dir, app_module, source_root
from apps.blueprints.services.scaffold import django_stack, files, modules
from apps.blueprints.services.scaffold.imports import sort_imports
from apps.blueprints.services.scaffold.names import (
    SOURCE_ROOT,
    camel,
    docstring,
    is_importable,
    model_names,
    module_path,
    plural,
    route_slug,
    singular,
    snake,
)
from apps.blueprints.services.scaffold.pins import PINS
from apps.blueprints.services.scaffold.texts import ALEMBIC_INI, ALEMBIC_SCRIPT_MAKO, GITIGNORE

PROJECT_NAME = "\x00PROJECT_NAME\x00"
PROJECT_SLUG = "\x00PROJECT_SLUG\x00"  # the name as a distribution name (pyproject.toml)
DATABASE_URL = "\x00DATABASE_URL\x00"
SENTINELS = {
    PROJECT_NAME: "{{ project_name }}",
    PROJECT_SLUG: "{{ project_name | lower | replace(' ', '-') }}",
    DATABASE_URL: "{{ database_url }}",
}
_JINJA_MARKERS = re.compile(r"\{[{%#]")
# folders whose name says nothing about the routes inside (`app/routes.py` serves "items")
GENERIC_FOLDERS = {"app", "src", "backend", "server", "web", "core", "service", "services", "v1", "v2"}


@dataclass
class ScaffoldFile:
    content: str
    mode: int = 0o644
    extra: bool = False  # not named by the document


@dataclass
class Model:
    module: str
    cls: str
    table: str


@dataclass
class Router:
    path: str
    module: str
    alias: str
    slug: str
    prefix: str
    func: str
    model: Model | None = None
    is_package: bool = False


@dataclass
class Scaffold:
    files: dict[str, ScaffoldFile]
    parameters: dict[str, Any]
    start_command: str
    install: list[str]  # requirement files to install, in order
    test_command: list[str] = field(default_factory=lambda: ["python", "-m", "pytest", "-q"])

    def rendered(self, values: dict[str, Any]) -> dict[str, tuple[bytes, int]]:
        """The files with parameters filled in (what Kiln's generator renders from the template)."""
        from jinja2 import Environment, StrictUndefined

        env = Environment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)  # noqa: S701
        out: dict[str, tuple[bytes, int]] = {}
        for path, item in self.files.items():
            text = item.content
            if _JINJA_MARKERS.search(text):
                text = env.from_string(text).render(**values)
            out[path] = (text.encode("utf-8"), item.mode)
        return out


def _escape(text: str) -> str:
    """Document text goes into files literally: `{{` and friends are escaped for Jinja."""
    if not _JINJA_MARKERS.search(text):
        return text
    return text.replace("{", "{{ '{' }}")


def _finish(text: str) -> str:
    text = _escape(text)
    for sentinel, expression in SENTINELS.items():
        text = text.replace(sentinel, expression)
    return text


def _base(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _dir(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def _invalid_module_name(path: str, files: dict[str, ScaffoldFile]) -> bool:
    """Whether ruff's N999 flags the module: a module of a package whose name is not lowercase snake case,
    except migration names (`0001_initial`) in migrations/ and versions/ folders."""
    stem = _base(path)[:-3]
    if f"{_dir(path)}/__init__.py" not in files:
        return False
    if _base(_dir(path)) in {"migrations", "versions"} and re.match(r"^\d+_[a-z0-9_]*$", stem):
        return False
    return bool(re.search(r"[A-Z]", stem)) or not stem.isidentifier()


class Scaffolder:
    def __init__(self, blueprint: Blueprint) -> None:
        self.bp = blueprint
        self.stack = blueprint.stack
        self.framework = self.stack.framework
        self.orm = self.stack.orm
        self.orm_async = self.stack.orm_async and self.framework == "fastapi"
        self.entries = {entry.path: entry for entry in blueprint.entries}
        self.files: dict[str, ScaffoldFile] = {}
        self.roles: dict[str, str] = {}  # file path → role, including the files the scaffold adds
        self.needs: set[str] = {"pytest"}
        self.env_vars: dict[str, str] = {"PROJECT_NAME": PROJECT_NAME, "LOG_LEVEL": "INFO"}
        self.models: list[Model] = []
        self.routers: list[Router] = []
        self.tests: list[str] = []
        self.bp_source = ""
        self.app_path = ""
        self.app_folder = ""
        self.config_path = ""
        self.database_path = ""
        self.alembic_location = "alembic"
        self.settings_path = ""
        self.django_project = ""
        self.django_apps: list[str] = []
        self.unit_tests: dict[str, str] = {}  # module path → test functions that exercise it (modules.py)
        self.test_names: set[str] = set()

    # --- planning ---------------------------------------------------------------------------

    def describe(self, path: str) -> str:
        entry = self.entries.get(path)
        if entry is None and path.endswith("/__init__.py"):
            entry = self.entries.get(_dir(path))
        return entry.details if entry is not None else ""

    def summary(self, path: str) -> str:
        entry = self.entries.get(path)
        if entry is None and path.endswith("/__init__.py"):
            entry = self.entries.get(_dir(path))
        return entry.description if entry is not None else ""

    def file_role(self, path: str, role: str, *, extra: bool = True) -> None:
        self.roles[path] = role
        if extra and path not in self.entries:
            self.files.setdefault(path, ScaffoldFile("", extra=True))

    def plan(self) -> None:
        bp = self.bp
        for entry in bp.entries:
            if entry.kind == "file":
                self.roles[entry.path] = entry.role
        packages = [e for e in bp.entries if e.role in {"package", "tests_dir"}]
        for entry in packages:
            init = f"{entry.path}/__init__.py"
            if init not in self.roles:
                self.file_role(init, "package_init")
        for entry in bp.entries:
            if entry.role == "data_dir" and not any(p.startswith(entry.path + "/") for p in self.entries):
                self.file_role(f"{entry.path}/.gitkeep", "gitkeep")
        if self.framework == "django":
            django_stack.plan(self)
        else:
            self._plan_python()
        self.file_role("requirements.txt", "requirements")
        self.file_role("Procfile", "procfile")
        self.file_role("README.md", "readme")
        self.file_role(".env.example", "env_file")
        self.file_role(".gitignore", "gitignore")
        self.file_role("pytest.ini", "pytest_ini")
        self.file_role("Dockerfile", "dockerfile")
        if not any(role == "test" for role in self.roles.values()):
            self.file_role("tests/__init__.py", "package_init")
            self.file_role("tests/test_app.py", "test")
        for path, role in self.roles.items():
            if role == "test":
                self.tests.append(path)
        # the fixtures must reach every test: tests/conftest.py when all tests are below tests/, else the root's
        conftest = "tests/conftest.py" if set(self.test_folders()) == {"tests"} else "conftest.py"
        if conftest not in self.roles:
            self.file_role(conftest, "conftest")

    def test_folders(self) -> list[str]:
        """The top folders holding the project's tests ("." for tests at the root): pytest's testpaths."""
        return sorted({p.split("/")[0] if "/" in p else "." for p in self.tests})

    def install_files(self) -> list[str]:
        """The requirement files a developer installs (runtime and tests): the root's requirements*.txt, or the
        development/test files of a requirements/ folder (they include the runtime file)."""
        root = sorted(p for p, r in self.roles.items() if r == "requirements" and "/" not in p)
        folder = sorted(p for p, r in self.roles.items() if r == "requirements" and p.startswith("requirements/"))
        dev = [p for p in folder if re.search(r"test|dev|local", _base(p).lower())]
        return dev or root

    def _free(self, folder: str, names: list[str]) -> str:
        for name in names:
            path = _join(folder, name)
            stem = path[:-3] if path.endswith(".py") else path
            if path not in self.entries and stem not in self.entries:
                return path
        return _join(folder, f"project_{names[0]}")

    def _package_init_with(self, names: set[str]) -> str | None:
        for entry in self.bp.entries:
            if entry.role == "package" and _base(entry.path) in names:
                return f"{entry.path}/__init__.py"
        return None

    def _first(self, role: str) -> str | None:
        paths = sorted((p for p, r in self.roles.items() if r == role), key=lambda p: (p.count("/"), p))
        return paths[0] if paths else None

    def _plan_python(self) -> None:
        app = app_module(self.bp.entries, self.stack)
        if app is not None:
            self.app_path = app.path
        else:
            folder = "app" if self.entries.get("app") is not None and self.entries["app"].role == "package" else ""
            self.app_path = self._free(folder, ["main.py", "app.py", "web.py"])
            self.file_role(self.app_path, "app")
        self.app_folder = _dir(self.app_path)
        config = self._first("config") or self._package_init_with({"config", "settings"})
        if config is None:
            config = self._free(self.app_folder, ["config.py", "settings.py"])
        self.file_role(config, "config")
        self.config_path = config
        if self.orm == "sqlalchemy":
            self.needs.add("sqlalchemy")
            database = None
            for name in ("database.py", "session.py", "db.py", "engine.py"):
                found = sorted(
                    (p for p, r in self.roles.items() if r == "database" and _base(p) == name),
                    key=lambda p: p.count("/"),
                )
                if found:
                    database = found[0]
                    break
            migrations = alembic_dir(self.bp.entries, self.stack)
            if database is None:
                for entry in self.bp.entries:
                    if entry.role == "package" and _base(entry.path) in {"db", "database"} and entry.path != migrations:
                        database = f"{entry.path}/__init__.py"
                        break
            if database is None:
                database = self._free(self.app_folder, ["database.py", "db.py", "db_session.py"])
            self.file_role(database, "database")
            self.database_path = database
            self._plan_models()
            if self.stack.migrations == "alembic":
                self._plan_alembic(migrations)
        self._plan_routers()

    def _plan_models(self) -> None:
        seen: set[str] = set()
        tables: set[str] = set()

        def add(path: str, names: list[str]) -> None:
            module = module_path(path)
            for name in names:
                cls = name
                if cls in seen:
                    cls = camel(_base(_dir(path)) or "x") + cls
                seen.add(cls)
                table = plural(snake(cls))
                if table in tables:
                    table = f"{snake(module.split('.')[-1])}_{table}"
                tables.add(table)
                self.models.append(Model(module, cls, table))

        model_files = sorted(p for p, r in self.roles.items() if r == "models")
        for path in model_files:
            add(path, self._model_names_for(path))
        for entry in self.bp.entries:
            if entry.role != "package" or _base(entry.path) != "models":
                continue
            if any(_dir(p) == entry.path and p in model_files for p in self.roles):
                continue
            subpackages = [e for e in self.bp.entries if _dir(e.path) == entry.path and e.role == "package"]
            targets = [f"{sub.path}/__init__.py" for sub in subpackages] or [f"{entry.path}/__init__.py"]
            for target in targets:
                self.roles[target] = "models"
                folder = _dir(target)
                names = model_names(self.describe(target)) or [camel(singular(_base(folder)))]
                if folder == entry.path:
                    names = model_names(self.describe(target)) or ["Item"]
                add(target, names[:1] if folder != entry.path else names)

    def _model_names_for(self, path: str) -> list[str]:
        names = model_names(self.describe(path))
        if names:
            return names
        stem = _base(path)[:-3]
        if stem in {"models", "model", "__init__"}:
            folder = _base(_dir(path)) or "item"
            folder = re.sub(r"_(?:service|app|module)$", "", folder)
            return [camel(singular(folder))]
        return [camel(singular(re.sub(r"_models?$", "", stem)))]

    def _plan_alembic(self, migrations: str | None) -> None:
        self.needs.add("alembic")
        location = migrations or "alembic"
        self.alembic_location = location
        self.file_role(f"{location}/env.py", "alembic_env")
        self.file_role(f"{location}/script.py.mako", "alembic_script")
        if not any(r == "alembic_migration" for r in self.roles.values()):
            self.file_role(f"{location}/versions/0001_initial.py", "alembic_migration")
        self.file_role("alembic.ini", "alembic_ini")

    def _plan_routers(self) -> None:
        paths = sorted(p for p, r in self.roles.items() if r == "router")
        for entry in self.bp.entries:
            if entry.role != "package" or any(p.startswith(entry.path + "/") for p in self.entries):
                continue
            text = f"{entry.comment} {' '.join(entry.prose)}".lower()
            if _base(entry.path) in ROUTER_DIRS or re.search(r"\b(?:endpoints?|routes?)\b", text):
                init = f"{entry.path}/__init__.py"
                self.roles[init] = "router"
                paths.append(init)
        slugs: set[str] = set()
        aliases: set[str] = set()
        for path in paths:
            is_package = path.endswith("/__init__.py")
            stem = _base(_dir(path)) if is_package else _base(path)[:-3]
            slug = route_slug(stem)
            feature = _base(_dir(path)) if "/" in path else ""
            if (
                slug == "items"
                and feature
                and feature not in ROUTER_DIRS | GENERIC_FOLDERS
                and _dir(path) != _dir(self.app_path)
            ):
                slug = route_slug(feature)  # a feature package's routes (`auth/routes.py`: a Flask blueprint)
            if slug in slugs:
                slug = f"{route_slug(_base(_dir(path)))}-{slug}"
            slugs.add(slug)
            version = next((part for part in path.split("/") if re.match(r"^v\d+$", part)), None)
            prefix = f"/api/{version}/{slug}" if version else f"/{slug}"
            alias = f"{snake(slug)}_router"
            while alias in aliases:
                alias = f"{snake(_base(_dir(path)))}_{alias}"
            aliases.add(alias)
            self.routers.append(
                Router(
                    path,
                    module_path(path),
                    alias,
                    slug,
                    prefix,
                    snake(slug),
                    self._model_for(path, slug),
                    is_package,
                )
            )

    def _model_for(self, path: str, slug: str) -> Model | None:
        if self.orm == "none" or not self.models:
            return None
        key = singular(snake(slug))
        for model in self.models:
            if snake(model.cls) == key:
                return model
        package = module_path(_dir(path))
        for model in self.models:
            if model.module.rsplit(".", 1)[0] == package and snake(model.cls).startswith(key):
                return model
        return None

    # --- writing ----------------------------------------------------------------------------

    def build(self) -> Scaffold:
        self.plan()
        for path in sorted(self.roles):
            role = self.roles[path]
            writer = (django_stack.WRITERS.get(role) if self.framework == "django" else None) or WRITERS.get(role)
            if writer is None:
                writer = WRITERS["text"]
            content = writer(self, path)
            mode = 0o755 if role == "shell" or content.startswith("#!") else 0o644
            self.files[path] = ScaffoldFile(content, mode, extra=path not in self.entries)
        # after every module was written: the files that list what the others need
        for path, role in self.roles.items():
            if role in LATE_WRITERS:
                self.files[path].content = LATE_WRITERS[role](self, path)
        first_party: set[str] = set()
        for path in self.files:
            parts = module_path(path).split(".") if path.endswith(".py") else path.split("/")
            first_party.update(".".join(parts[:n]) for n in range(1, len(parts) + 1))
        files = {}
        for path, item in self.files.items():
            content = item.content
            if path.endswith(".py"):
                content = sort_imports(content, first_party)
                if _invalid_module_name(path, self.files):
                    content = "# ruff: noqa: N999 - the module name comes from the structure document\n" + content
            files[path] = ScaffoldFile(_finish(content), item.mode, item.extra)
        return Scaffold(
            files=files,
            parameters=self.parameters(),
            start_command=self.start_command(),
            install=self.install_files(),
        )

    def parameters(self) -> dict[str, Any]:
        properties: dict[str, Any] = {
            "project_name": {
                "type": "string",
                "title": "Project name",
                "description": "The name of the generated project (README, app title, PROJECT_NAME).",
                "default": default_project_name(self.bp),
                "pattern": "^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$",
            }
        }
        if self.orm != "none":
            properties["database_url"] = {
                "type": "string",
                "title": "Database URL",
                "description": "The default DATABASE_URL (the environment variable overrides it at run time).",
                "default": self.default_database_url(),
                "pattern": "^[A-Za-z][A-Za-z0-9+.-]*://[^\\s\"'\\\\]*$",
            }
        return {"type": "object", "properties": properties, "required": [], "additionalProperties": False}

    def default_database_url(self) -> str:
        if self.orm == "django":
            return "sqlite:///db.sqlite3"
        return "sqlite+aiosqlite:///./app.db" if self.orm_async else "sqlite:///./app.db"

    def start_command(self) -> str:
        return self.run_prefix() + self._start_command()

    def run_prefix(self) -> str:
        """What a command needs in front to import the project's packages (the src layout's folder)."""
        root = source_root(self.bp.entries)
        return f"env PYTHONPATH={root} " if root else ""

    def _start_command(self) -> str:
        if self.framework == "django":
            return "python manage.py runserver 0.0.0.0:$PORT --noreload"
        module = module_path(self.app_path)
        if self.framework == "fastapi":
            return f"uvicorn {module}:app --host 0.0.0.0 --port $PORT"
        if self.framework == "flask":
            return f"flask --app {module}:app run --host 0.0.0.0 --port $PORT"
        entry = self._first("entry")
        return f"python -m {module_path(entry or self.app_path)}"

    # helpers for writers
    def mod(self, path: str) -> str:
        return module_path(path)

    def importable_modules(self) -> list[str]:
        skip_roles = {"alembic_env", "alembic_migration", "test", "conftest"}
        modules = []
        for path, role in sorted(self.roles.items()):
            if not path.endswith(".py") or role in skip_roles or not is_importable(path):
                continue
            if any(part in {"tests", "test"} for part in path.split("/")[:-1]):
                continue
            modules.append(module_path(path))
        return modules


# --- writers (non-Django stacks) -----------------------------------------------------------------

Writer = Callable[[Scaffolder, str], str]


def _settings_import(s: Scaffolder) -> str:
    if s.framework == "django":
        return "from django.conf import settings\n"
    return f"from {s.mod(s.config_path)} import settings\n"


def w_package_init(s: Scaffolder, path: str) -> str:
    name = _base(_dir(path)) or "package"
    head = docstring(s.describe(path), f"The {name} package.")
    registry = modules.package_registry(s, path) if path.endswith("/__init__.py") else None
    if registry is None:
        return head
    s.unit_tests[path] = registry.tests
    return head + registry.code


def w_config(s: Scaffolder, path: str) -> str:
    variables = ["PROJECT_NAME", "LOG_LEVEL", "DEBUG"]
    defaults = {"PROJECT_NAME": PROJECT_NAME, "LOG_LEVEL": "INFO", "DEBUG": "false"}
    if s.orm == "sqlalchemy":
        variables.append("DATABASE_URL")
        defaults["DATABASE_URL"] = DATABASE_URL
    if any(r == "security" for r in s.roles.values()):
        variables.append("SECRET_KEY")
        defaults["SECRET_KEY"] = "insecure-development-key-change-me"
    if s.stack.scheduler == "apscheduler" or any(r == "scheduler" for r in s.roles.values()):
        variables.append("SCHEDULER_ENABLED")
        defaults["SCHEDULER_ENABLED"] = "true"
    if s.stack.queue == "celery":
        variables += ["CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CELERY_TASK_ALWAYS_EAGER"]
        defaults.update(
            {
                "CELERY_BROKER_URL": "memory://",
                "CELERY_RESULT_BACKEND": "cache+memory://",
                "CELERY_TASK_ALWAYS_EAGER": "false",
            }
        )
    if s.stack.queue == "rq":
        variables.append("REDIS_URL")
        defaults["REDIS_URL"] = "redis://localhost:6379/0"
    s.env_vars.update(defaults)
    lines = [docstring(s.describe(path), "Settings read from environment variables (and a .env file)."), ""]
    lines.append("import os\nfrom dataclasses import dataclass, field\nfrom pathlib import Path\n\n")
    lines.append(
        'def load_dotenv(path: Path = Path(".env")) -> None:\n'
        '    """Read KEY=VALUE lines of a .env file into the environment (variables already set win)."""\n'
        "    if not path.is_file():\n"
        "        return\n"
        '    for line in path.read_text(encoding="utf-8").splitlines():\n'
        "        line = line.strip()\n"
        '        if not line or line.startswith("#") or "=" not in line:\n'
        "            continue\n"
        '        key, _, value = line.partition("=")\n'
        "        os.environ.setdefault(key.strip(), value.strip().strip('\"').strip(\"'\"))\n\n\n"
        "def _env(name: str, default: str) -> str:\n"
        "    return os.environ.get(name, default)\n\n\n"
        "def _flag(name: str, default: str) -> bool:\n"
        '    return _env(name, default).strip().lower() in {"1", "true", "yes", "on"}\n\n\n'
        "@dataclass(frozen=True)\n"
        "class Settings:\n"
        '    """The settings of the application; each field reads the environment variable of its name."""\n\n'
    )
    for name in variables:
        default = defaults[name]
        if name in {"DEBUG", "SCHEDULER_ENABLED", "CELERY_TASK_ALWAYS_EAGER"}:
            lines.append(f'    {name}: bool = field(default_factory=lambda: _flag("{name}", "{default}"))\n')
        else:
            lines.append(f'    {name}: str = field(default_factory=lambda: _env("{name}", "{default}"))\n')
    lines.append("\n\nload_dotenv()\nsettings = Settings()\n")
    return "".join(lines)


def w_database(s: Scaffolder, path: str) -> str:
    head = docstring(s.describe(path), "The database engine, sessions and the declarative base of the models.")
    model_modules = sorted({m.module for m in s.models if m.module != s.mod(path)})
    register = "    import_models()\n"
    listing = (
        "MODEL_MODULES = (" + "".join(f'\n    "{m}",' for m in model_modules) + "\n)\n\n\n"
        "def import_models() -> None:\n"
        '    """Import every models module, so Base.metadata knows all tables."""\n'
        "    for name in MODEL_MODULES:\n"
        "        importlib.import_module(name)\n\n\n"
    )
    if not model_modules:
        listing = (
            "def import_models() -> None:\n"
            '    """Import every models module (none yet), so Base.metadata knows all tables."""\n\n\n'
        )
    if s.orm_async:
        s.needs.update({"sqlalchemy_async", "aiosqlite"})
        return (
            f"{head}\n{'import importlib' + chr(10) if model_modules else ''}from collections.abc import AsyncIterator\n\n"
            "from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine\n"
            "from sqlalchemy.orm import DeclarativeBase\n\n"
            f"{_settings_import(s)}\n\n"
            "class Base(DeclarativeBase):\n"
            '    """The declarative base every model of the project derives from."""\n\n\n'
            "engine = create_async_engine(settings.DATABASE_URL)\n"
            "SessionLocal = async_sessionmaker(engine, expire_on_commit=False)\n\n\n"
            "async def get_db() -> AsyncIterator[AsyncSession]:\n"
            '    """One session per request, closed afterwards."""\n'
            "    async with SessionLocal() as session:\n"
            "        yield session\n\n\n"
            f"{listing}async def init_db() -> None:\n"
            '    """Create the tables of every model (the app calls it at start-up; Alembic manages changes)."""\n'
            f"{register}"
            "    async with engine.begin() as connection:\n"
            "        await connection.run_sync(Base.metadata.create_all)\n"
        )
    return (
        f"{head}\n{'import importlib' + chr(10) if model_modules else ''}from collections.abc import Iterator\n\n"
        "from sqlalchemy import create_engine\n"
        "from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker\n\n"
        f"{_settings_import(s)}\n\n"
        "class Base(DeclarativeBase):\n"
        '    """The declarative base every model of the project derives from."""\n\n\n'
        'connect_args = {"check_same_thread": False} if settings.DATABASE_URL.startswith("sqlite") else {}\n'
        "engine = create_engine(settings.DATABASE_URL, connect_args=connect_args)\n"
        "SessionLocal = sessionmaker(bind=engine, autoflush=False, expire_on_commit=False)\n\n\n"
        "def get_db() -> Iterator[Session]:\n"
        '    """One session per request, closed afterwards."""\n'
        "    with SessionLocal() as session:\n"
        "        yield session\n\n\n"
        f"{listing}def init_db() -> None:\n"
        '    """Create the tables of every model (the app calls it at start-up)."""\n'
        f"{register}"
        "    Base.metadata.create_all(bind=engine)\n"
    )


def w_models(s: Scaffolder, path: str) -> str:
    module = s.mod(path)
    models = [m for m in s.models if m.module == module]
    head = docstring(s.describe(path), "The database models of this package.")
    if s.orm != "sqlalchemy" or not models:
        return head
    out = [
        head,
        "\nfrom datetime import datetime\n\n",
        "from sqlalchemy import DateTime, String, func\n",
        "from sqlalchemy.orm import Mapped, mapped_column\n\n",
        f"from {s.mod(s.database_path)} import Base\n",
    ]
    for model in models:
        out.append(
            f"\n\nclass {model.cls}(Base):\n"
            f'    """A {model.cls} row."""\n\n'
            f'    __tablename__ = "{model.table}"\n\n'
            "    id: Mapped[int] = mapped_column(primary_key=True)\n"
            '    name: Mapped[str] = mapped_column(String(200), default="")\n'
            "    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())\n"
        )
    return "".join(out)


def w_db_base(s: Scaffolder, path: str) -> str:
    head = docstring(s.describe(path), "Imports every model, so Base.metadata knows all tables (for Alembic).")
    if s.orm != "sqlalchemy":
        return head
    imports = [f"from {s.mod(s.database_path)} import Base\n"]
    names = ["Base"]
    for model in s.models:
        imports.append(f"from {model.module} import {model.cls}\n")
        names.append(model.cls)
    return head + "\n" + "".join(imports) + "\n__all__ = [" + ", ".join(f'"{n}"' for n in names) + "]\n"


def w_router(s: Scaffolder, path: str) -> str:
    router = next(r for r in s.routers if r.path == path)
    head = docstring(s.describe(path), f"The {router.slug} routes.")
    model = router.model
    func = f"list_{router.func}"
    if s.framework == "fastapi":
        s.needs.add("fastapi")
        if model is None:
            return (
                f"{head}\nfrom fastapi import APIRouter\n\n"
                f'router = APIRouter(prefix="{router.prefix}", tags=["{router.slug}"])\n\n'
                "ITEMS: list[dict[str, object]] = []\n\n\n"
                '@router.get("/")\n'
                f"def {func}() -> list[dict[str, object]]:\n"
                f'    """List the {router.slug} items."""\n'
                "    return list(ITEMS)\n"
            )
        if s.orm_async:
            return (
                f"{head}\nfrom typing import Annotated\n\n"
                "from fastapi import APIRouter, Depends\n"
                "from sqlalchemy import select\n"
                "from sqlalchemy.ext.asyncio import AsyncSession\n\n"
                f"from {s.mod(s.database_path)} import get_db\n"
                f"from {model.module} import {model.cls}\n\n"
                f'router = APIRouter(prefix="{router.prefix}", tags=["{router.slug}"])\n\n\n'
                '@router.get("/")\n'
                f"async def {func}(db: Annotated[AsyncSession, Depends(get_db)]) -> list[dict[str, object]]:\n"
                f'    """List the {model.cls} rows, oldest first."""\n'
                f"    rows = (await db.scalars(select({model.cls}).order_by({model.cls}.id))).all()\n"
                '    return [{"id": row.id, "name": row.name} for row in rows]\n'
            )
        return (
            f"{head}\nfrom typing import Annotated\n\n"
            "from fastapi import APIRouter, Depends\n"
            "from sqlalchemy import select\n"
            "from sqlalchemy.orm import Session\n\n"
            f"from {s.mod(s.database_path)} import get_db\n"
            f"from {model.module} import {model.cls}\n\n"
            f'router = APIRouter(prefix="{router.prefix}", tags=["{router.slug}"])\n\n\n'
            '@router.get("/")\n'
            f"def {func}(db: Annotated[Session, Depends(get_db)]) -> list[dict[str, object]]:\n"
            f'    """List the {model.cls} rows, oldest first."""\n'
            f"    rows = db.scalars(select({model.cls}).order_by({model.cls}.id)).all()\n"
            '    return [{"id": row.id, "name": row.name} for row in rows]\n'
        )
    if s.framework == "flask":
        s.needs.add("flask")
        body = (
            "    return jsonify(list(ITEMS))\n"
            if model is None
            else (
                "    with SessionLocal() as session:\n"
                f"        rows = session.scalars(select({model.cls}).order_by({model.cls}.id)).all()\n"
                '        return jsonify([{"id": row.id, "name": row.name} for row in rows])\n'
            )
        )
        imports = "from flask import Blueprint, Response, jsonify\n"
        if model is not None:
            imports += (
                "from sqlalchemy import select\n\n"
                f"from {s.mod(s.database_path)} import SessionLocal\n"
                f"from {model.module} import {model.cls}\n"
            )
        store = "ITEMS: list[dict[str, object]] = []\n" if model is None else ""
        return (
            f"{head}\n{imports}\n"
            f'router = Blueprint("{router.alias}", __name__, url_prefix="{router.prefix}")\n{store}\n\n'
            '@router.get("/")\n'
            f"def {func}() -> Response:\n"
            f'    """List the {router.slug} items."""\n'
            f"{body}"
        )
    # plain: a table of routes the WSGI app dispatches to
    if model is not None:
        return (
            f"{head}\nfrom sqlalchemy import select\n\n"
            f"from {s.mod(s.database_path)} import SessionLocal\n"
            f"from {model.module} import {model.cls}\n\n\n"
            f"def {func}() -> list[dict[str, object]]:\n"
            f'    """List the {model.cls} rows, oldest first."""\n'
            "    with SessionLocal() as session:\n"
            f"        rows = session.scalars(select({model.cls}).order_by({model.cls}.id)).all()\n"
            '        return [{"id": row.id, "name": row.name} for row in rows]\n\n\n'
            f'ROUTES = {{"{router.prefix}/": {func}}}\n'
        )
    return (
        f"{head}\nITEMS: list[dict[str, object]] = []\n\n\n"
        f"def {func}() -> list[dict[str, object]]:\n"
        f'    """List the {router.slug} items."""\n'
        "    return list(ITEMS)\n\n\n"
        f'ROUTES = {{"{router.prefix}/": {func}}}\n'
    )


def _startup_parts(s: Scaffolder) -> tuple[list[str], list[str], list[str]]:
    """(imports, start calls, stop calls) the app runs at start-up and shutdown."""
    imports: list[str] = []
    start: list[str] = []
    stop: list[str] = []
    if s.orm == "sqlalchemy":
        imports.append(f"from {s.mod(s.database_path)} import init_db\n")
        start.append("await init_db()" if s.orm_async and s.framework == "fastapi" else "init_db()")
    for index, path in enumerate(sorted(p for p, r in s.roles.items() if r == "scheduler")):
        alias = f"scheduler_{index}" if index else "scheduler"
        imports.append(f"import {s.mod(path)} as {alias}\n" if "." in s.mod(path) else f"import {s.mod(path)}\n")
        name = alias if "." in s.mod(path) else s.mod(path)
        start.append(f"if settings.SCHEDULER_ENABLED:\n        {name}.start()")
        stop.append(f"{name}.shutdown()")
    return imports, start, stop


def w_app(s: Scaffolder, path: str) -> str:
    head = docstring(s.describe(path), "The application: routes, start-up and the /health check.")
    imports, start, stop = _startup_parts(s)
    router_imports = [f"from {r.module} import router as {r.alias}\n" for r in s.routers]
    if s.framework == "fastapi":
        s.needs.update({"fastapi", "uvicorn"})
        body_start = "".join(f"    {line}\n" for line in start)
        body_stop = "".join(f"    {line}\n" for line in stop)
        includes = "".join(f"app.include_router({r.alias})\n" for r in s.routers)
        return (
            f"{head}\nimport os\nfrom collections.abc import AsyncIterator\nfrom contextlib import asynccontextmanager\n\n"
            "from fastapi import FastAPI\n\n"
            + "".join(sorted(imports + router_imports))
            + _settings_import(s)
            + "\n\n@asynccontextmanager\n"
            "async def lifespan(_app: FastAPI) -> AsyncIterator[None]:\n"
            '    """Start-up: create missing tables and start the scheduler; shutdown: stop it."""\n'
            f"{body_start}    yield\n{body_stop}\n\n"
            "app = FastAPI(title=settings.PROJECT_NAME, lifespan=lifespan)\n"
            f"{includes}\n\n"
            '@app.get("/health")\n'
            "def health() -> dict[str, str]:\n"
            '    """Liveness check for load balancers and the Procfile\'s start-up check."""\n'
            '    return {"status": "ok"}\n\n\n'
            "def run() -> None:\n"
            '    """Serve the app with uvicorn on $PORT (default 8000)."""\n'
            "    import uvicorn\n\n"
            '    uvicorn.run(app, host="0.0.0.0", port=int(os.environ.get("PORT", "8000")))\n\n\n'
            'if __name__ == "__main__":\n'
            "    run()\n"
        )
    if s.framework == "flask":
        s.needs.add("flask")
        registers = "".join(f"    app.register_blueprint({r.alias})\n" for r in s.routers)
        starts = "".join(f"    {line}\n" for line in start)
        return (
            f"{head}\nimport os\n\nfrom flask import Flask\n\n"
            + "".join(sorted(imports + router_imports))
            + _settings_import(s)
            + "\n\ndef create_app() -> Flask:\n"
            '    """Build the Flask app with its blueprints and the /health route."""\n'
            "    app = Flask(__name__)\n"
            '    app.config["PROJECT_NAME"] = settings.PROJECT_NAME\n'
            f"{registers}{starts}\n"
            '    @app.get("/health")\n'
            "    def health() -> dict[str, str]:\n"
            '        return {"status": "ok"}\n\n'
            "    return app\n\n\n"
            "app = create_app()\n\n\n"
            'if __name__ == "__main__":\n'
            '    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", "8000")))\n'
        )
    # plain WSGI
    route_tables = [f"from {r.module} import ROUTES as {r.alias}_routes\n" for r in s.routers]
    merges = "".join(f"ROUTES.update({r.alias}_routes)\n" for r in s.routers)
    serve = ""
    if s._first("entry") is None:
        serve = "\n\n" + _plain_serve(s, "app", start, stop) + '\n\nif __name__ == "__main__":\n    serve()\n'
    extra_imports = "import os\nfrom wsgiref.simple_server import make_server\n" if serve else ""
    return (
        f"{head}\nimport json\n{extra_imports}from collections.abc import Callable, Iterable\n"
        "from typing import Any\n"
        + (
            "\n" + "".join(sorted(route_tables + (imports if serve else [])))
            if route_tables or (serve and imports)
            else ""
        )
        + (_settings_import(s) if serve and start else "")
        + "\n\ndef health() -> dict[str, str]:\n"
        '    """Liveness check for load balancers and the Procfile\'s start-up check."""\n'
        '    return {"status": "ok"}\n\n\n'
        'ROUTES: dict[str, Callable[[], Any]] = {"/health": health}\n'
        f"{merges}\n\n"
        "def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:\n"
        '    """The WSGI application: GET a route of ROUTES → its JSON answer; anything else → 404."""\n'
        '    path = environ.get("PATH_INFO") or "/"\n'
        '    handler = ROUTES.get(path) or ROUTES.get(path.rstrip("/") + "/") or ROUTES.get(path.rstrip("/"))\n'
        '    if handler is None or environ.get("REQUEST_METHOD", "GET") != "GET":\n'
        '        status, payload = "404 Not Found", {"detail": "Not found"}\n'
        "    else:\n"
        '        status, payload = "200 OK", handler()\n'
        '    body = json.dumps(payload, default=str).encode("utf-8")\n'
        '    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])\n'
        "    return [body]\n"
        f"{serve}"
    )


def _plain_serve(s: Scaffolder, app_name: str, start: list[str], stop: list[str]) -> str:
    starts = "".join(f"    {line}\n".replace("\n        ", "\n        ") for line in start)
    stops = "".join(f"        {line}\n" for line in stop)
    finally_block = (
        f"    try:\n        server.serve_forever()\n    finally:\n{stops}" if stop else "    server.serve_forever()\n"
    )
    return (
        "def serve() -> None:\n"
        '    """Serve the WSGI app on $PORT (default 8000) with the standard library\'s server."""\n'
        f"{starts}"
        f'    server = make_server("0.0.0.0", int(os.environ.get("PORT", "8000")), {app_name})\n'
        f"{finally_block}"
    )


def w_entry(s: Scaffolder, path: str) -> str:
    head = docstring(s.describe(path), "Starts the application.")
    app = s.mod(s.app_path)
    if s.framework == "fastapi":
        return (
            f"{head}\nimport os\n\nimport uvicorn\n\nfrom {app} import app\n\n\n"
            "def main() -> None:\n"
            '    """Serve the app with uvicorn on $PORT (default 8000)."""\n'
            '    uvicorn.run(app, host="0.0.0.0", port=int(os.environ.get("PORT", "8000")))\n\n\n'
            'if __name__ == "__main__":\n    main()\n'
        )
    if s.framework == "flask":
        return (
            f"{head}\nimport os\n\nfrom {app} import app\n\n\n"
            "def main() -> None:\n"
            '    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", "8000")))\n\n\n'
            'if __name__ == "__main__":\n    main()\n'
        )
    imports, start, stop = _startup_parts(s)
    settings = _settings_import(s) if start else ""
    return (
        f"{head}\nimport os\nfrom wsgiref.simple_server import make_server\n\n"
        + "".join(sorted([*imports, f"from {app} import app\n"]))
        + settings
        + "\n\n"
        + _plain_serve(s, "app", start, stop)
        + '\n\nif __name__ == "__main__":\n    serve()\n'
    )


def w_security(s: Scaffolder, path: str) -> str:
    head = docstring(s.describe(path), "Password hashing and signed tokens (standard library only).")
    return (
        f"{head}\nimport base64\nimport hashlib\nimport hmac\nimport json\nimport secrets\nimport time\n\n"
        f"{_settings_import(s)}\n"
        "ITERATIONS = 390_000\n\n\n"
        "def hash_password(password: str, *, salt: str | None = None) -> str:\n"
        '    """PBKDF2-SHA256 hash as `pbkdf2_sha256$iterations$salt$hash`."""\n'
        "    salt = salt or secrets.token_hex(16)\n"
        '    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), ITERATIONS).hex()\n'
        '    return f"pbkdf2_sha256${ITERATIONS}${salt}${digest}"\n\n\n'
        "def verify_password(password: str, hashed: str) -> bool:\n"
        '    _, iterations, salt, digest = hashed.split("$")\n'
        '    candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), int(iterations)).hex()\n'
        "    return hmac.compare_digest(candidate, digest)\n\n\n"
        "def _sign(data: bytes) -> str:\n"
        "    mac = hmac.new(settings.SECRET_KEY.encode(), data, hashlib.sha256).digest()\n"
        '    return base64.urlsafe_b64encode(mac).decode().rstrip("=")\n\n\n'
        "def create_token(subject: str, *, expires_in: int = 3600) -> str:\n"
        '    """A signed token naming `subject`, valid for `expires_in` seconds."""\n'
        '    payload = json.dumps({"sub": subject, "exp": int(time.time()) + expires_in}).encode()\n'
        '    body = base64.urlsafe_b64encode(payload).decode().rstrip("=")\n'
        '    return f"{body}.{_sign(body.encode())}"\n\n\n'
        "def read_token(token: str) -> str | None:\n"
        '    """The subject of a valid, unexpired token; None otherwise."""\n'
        '    body, _, signature = token.partition(".")\n'
        "    if not hmac.compare_digest(signature, _sign(body.encode())):\n"
        "        return None\n"
        '    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))\n'
        '    if payload["exp"] < time.time():\n'
        "        return None\n"
        '    return str(payload["sub"])\n'
    )


def w_dependencies(s: Scaffolder, path: str) -> str:
    head = docstring(s.describe(path), "Dependencies the routes share.")
    if s.framework != "fastapi":
        return head + "\n" + _settings_import(s) + "\n\ndef get_settings() -> object:\n    return settings\n"
    parts = ["from typing import Annotated\n\n", "from fastapi import Depends, Header, HTTPException\n"]
    local: list[str] = []
    body = []
    if s.orm == "sqlalchemy":
        session = "AsyncSession" if s.orm_async else "Session"
        parts.append(
            "from sqlalchemy.ext.asyncio import AsyncSession\n"
            if s.orm_async
            else "from sqlalchemy.orm import Session\n"
        )
        local.append(f"from {s.mod(s.database_path)} import get_db\n")
        body.append(f"DbSession = Annotated[{session}, Depends(get_db)]\n")
    security = next((p for p, r in s.roles.items() if r == "security"), None)
    if security is not None:
        local.append(f"from {s.mod(security)} import read_token\n")
        body.append(
            "\n\ndef current_subject(authorization: Annotated[str | None, Header()] = None) -> str:\n"
            '    """The subject of the request\'s `Authorization: Bearer <token>`; 401 without a valid one."""\n'
            '    token = (authorization or "").removeprefix("Bearer ").strip()\n'
            "    subject = read_token(token) if token else None\n"
            "    if subject is None:\n"
            '        raise HTTPException(status_code=401, detail="Not authenticated")\n'
            "    return subject\n"
        )
    else:
        parts = [p.replace("Depends, Header, HTTPException", "Depends") for p in parts]
        if s.orm != "sqlalchemy":
            return head + "\n" + _settings_import(s) + "\n\ndef get_settings() -> object:\n    return settings\n"
    return head + "\n" + "".join(parts) + "\n" + "".join(sorted(local)) + "\n" + "".join(body)


def w_schemas(s: Scaffolder, path: str) -> str:
    head = docstring(s.describe(path), "Request and response schemas.")
    stem = _base(path)[:-3] if not path.endswith("__init__.py") else _base(_dir(path))
    names = model_names(s.describe(path)) or [camel(singular(re.sub(r"_schemas?$", "", stem)))]
    if stem in {"schemas", "schema"}:
        names = model_names(s.describe(path)) or [m.cls for m in s.models][:4] or ["Item"]
    if s.stack.validation == "pydantic" or s.framework == "fastapi":
        s.needs.add("pydantic")
        out = [head, "\nfrom datetime import datetime\n\nfrom pydantic import BaseModel, ConfigDict\n"]
        for name in names:
            out.append(
                f"\n\nclass {name}Create(BaseModel):\n"
                f'    """What a client sends to create a {name}."""\n\n'
                "    name: str\n\n\n"
                f"class {name}Read({name}Create):\n"
                f'    """A {name} as the API returns it."""\n\n'
                "    model_config = ConfigDict(from_attributes=True)\n\n"
                "    id: int\n"
                "    created_at: datetime | None = None\n"
            )
        return "".join(out)
    out = [head, "\nfrom dataclasses import dataclass\n"]
    for name in names:
        out.append(f"\n\n@dataclass\nclass {name}Read:\n    id: int\n    name: str\n")
    return "".join(out)


def w_scheduler(s: Scaffolder, path: str) -> str:
    head = docstring(s.describe(path), "Scheduled jobs.")
    jobs = modules.job_modules(s)
    job_imports = "".join(f"from {s.mod(job)} import {func}\n" for job, func in jobs)
    if s.stack.scheduler == "apscheduler":
        s.needs.add("apscheduler")
        adds = "".join(
            f'    scheduler.add_job({func}, {modules.trigger(s, job, func)}, id="{func}", replace_existing=True)\n'
            for job, func in jobs
        )
        return (
            f"{head}\nimport logging\n\n"
            "from apscheduler.schedulers.background import BackgroundScheduler\n\n"
            f"{job_imports}\n"
            'logger = logging.getLogger(__name__)\nscheduler = BackgroundScheduler(timezone="UTC")\n\n\n'
            "def heartbeat() -> str:\n"
            '    """A job that shows the scheduler runs: logged every minute."""\n'
            '    logger.info("scheduler heartbeat")\n'
            '    return "ok"\n\n\n'
            "def start() -> None:\n"
            '    """Register the jobs and start the scheduler (once)."""\n'
            "    if scheduler.running:\n"
            "        return\n"
            '    scheduler.add_job(heartbeat, "interval", minutes=1, id="heartbeat", replace_existing=True)\n'
            f"{adds}"
            "    scheduler.start()\n\n\n"
            "def shutdown() -> None:\n"
            "    if scheduler.running:\n"
            "        scheduler.shutdown(wait=False)\n"
        )
    runs = "".join(f"    {func}()\n" for _job, func in jobs)
    return (
        f"{head}\nimport logging\nimport sched\nimport threading\nimport time\n\n"
        f"{job_imports}\n"
        "logger = logging.getLogger(__name__)\n"
        "scheduler = sched.scheduler(time.monotonic, time.sleep)\n"
        "INTERVAL_SECONDS = 60.0\n"
        "_stop = threading.Event()\n\n\n"
        "def heartbeat() -> str:\n"
        '    """A job that shows the scheduler runs: logged every minute."""\n'
        '    logger.info("scheduler heartbeat")\n'
        '    return "ok"\n\n\n'
        "def _tick() -> None:\n"
        "    heartbeat()\n"
        f"{runs}"
        "    if not _stop.is_set():\n"
        "        scheduler.enter(INTERVAL_SECONDS, 1, _tick)\n\n\n"
        "def schedule() -> None:\n"
        '    """Put the recurring jobs on the scheduler\'s queue."""\n'
        "    scheduler.enter(INTERVAL_SECONDS, 1, _tick)\n\n\n"
        "def start() -> threading.Thread:\n"
        '    """Run the scheduler in a daemon thread."""\n'
        "    _stop.clear()\n"
        "    schedule()\n"
        "    thread = threading.Thread(target=scheduler.run, daemon=True)\n"
        "    thread.start()\n"
        "    return thread\n\n\n"
        "def shutdown() -> None:\n"
        "    _stop.set()\n"
        "    for event in list(scheduler.queue):\n"
        "        scheduler.cancel(event)\n"
    )


def _celery_app_module(s: Scaffolder) -> str | None:
    path = next((p for p, r in s.roles.items() if r == "celery_app"), None)
    return s.mod(path) if path else None


def w_celery_app(s: Scaffolder, path: str) -> str:
    head = docstring(s.describe(path), "The Celery application.")
    s.needs.add("celery")
    return (
        f"{head}\nfrom celery import Celery\n\n{_settings_import(s)}\n"
        f'celery_app = Celery("{s.mod(path).split(".")[0]}", broker=settings.CELERY_BROKER_URL, '
        "backend=settings.CELERY_RESULT_BACKEND)\n"
        "celery_app.conf.task_always_eager = settings.CELERY_TASK_ALWAYS_EAGER\n"
        "celery_app.autodiscover_tasks()\n"
    )


def w_queue(s: Scaffolder, path: str) -> str:
    head = docstring(s.describe(path), "Background jobs.")
    job = (
        "def process(payload: dict[str, object]) -> dict[str, object]:\n"
        '    """The job: replace with the real work; it receives JSON-serialisable data."""\n'
        '    return {"processed": True, **payload}\n'
    )
    if s.stack.queue == "celery":
        s.needs.add("celery")
        own = _celery_app_module(s)
        if own is None:
            setup = (
                "from celery import Celery\n\n"
                f"{_settings_import(s)}\n"
                f'celery_app = Celery("{s.mod(path).split(".")[0]}", broker=settings.CELERY_BROKER_URL, '
                "backend=settings.CELERY_RESULT_BACKEND)\n"
                "celery_app.conf.task_always_eager = settings.CELERY_TASK_ALWAYS_EAGER\n"
            )
        else:
            setup = f"from {own} import celery_app\n"
        return f'{head}\n{setup}\n\n@celery_app.task(name="{s.mod(path)}.process")\n{job}'
    if s.stack.queue == "rq":
        s.needs.update({"rq", "redis"})
        return (
            f"{head}\nfrom redis import Redis\nfrom rq import Queue\n\n{_settings_import(s)}\n\n{job}\n\n"
            "def get_queue() -> Queue:\n"
            '    """The default queue (connects to REDIS_URL on first use)."""\n'
            '    return Queue("default", connection=Redis.from_url(settings.REDIS_URL))\n\n\n'
            "def enqueue(payload: dict[str, object]) -> str:\n"
            "    return get_queue().enqueue(process, payload).id\n"
        )
    return (
        f"{head}\nimport queue\nfrom collections.abc import Callable\nfrom typing import Any\n\n"
        "jobs: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...]]] = queue.Queue()\n\n\n"
        f"{job}\n\n"
        "def enqueue(func: Callable[..., Any], *args: Any) -> None:\n"
        '    """Put a job on the in-process queue."""\n'
        "    jobs.put((func, args))\n\n\n"
        "def work(limit: int | None = None) -> list[Any]:\n"
        '    """Run queued jobs (all, or at most `limit`) and return their results."""\n'
        "    results = []\n"
        "    while not jobs.empty() and (limit is None or len(results) < limit):\n"
        "        func, args = jobs.get_nowait()\n"
        "        results.append(func(*args))\n"
        "        jobs.task_done()\n"
        "    return results\n"
    )


def w_logger(s: Scaffolder, path: str) -> str:
    head = docstring(s.describe(path), "Logging configuration.")
    return (
        f"{head}\nimport logging\nimport os\n\n\n"
        "def configure_logging(level: str | None = None) -> None:\n"
        '    """Log to stderr at LOG_LEVEL (default INFO)."""\n'
        "    logging.basicConfig(\n"
        '        level=(level or os.environ.get("LOG_LEVEL", "INFO")).upper(),\n'
        '        format="%(asctime)s %(levelname)s %(name)s: %(message)s",\n'
        "    )\n\n\n"
        "def get_logger(name: str) -> logging.Logger:\n"
        "    return logging.getLogger(name)\n"
    )


def w_middleware(s: Scaffolder, path: str) -> str:
    head = docstring(s.describe(path), "Middleware.")
    if s.framework == "fastapi":
        return (
            f"{head}\nimport time\nfrom collections.abc import Awaitable, Callable\n\n"
            "from fastapi import Request, Response\n\n\n"
            "async def add_process_time_header(\n"
            "    request: Request, call_next: Callable[[Request], Awaitable[Response]]\n"
            ") -> Response:\n"
            '    """Adds X-Process-Time (seconds) to every response: `app.middleware("http")(add_process_time_header)`."""\n'
            "    started = time.perf_counter()\n"
            "    response = await call_next(request)\n"
            '    response.headers["X-Process-Time"] = f"{time.perf_counter() - started:.4f}"\n'
            "    return response\n"
        )
    return _generic_module(s, path)


def _generic_module(s: Scaffolder, path: str) -> str:
    """A blueprint's own module: content for its kind (modules.py), with tests that exercise it."""
    return modules.write(s, path, docstring(s.describe(path), f"The {modules.stem(path)} module."))


def w_service(s: Scaffolder, path: str) -> str:
    return _generic_module(s, path)


def w_module(s: Scaffolder, path: str) -> str:
    return _generic_module(s, path)


def w_crud(s: Scaffolder, path: str) -> str:
    return _generic_module(s, path)


def w_script(s: Scaffolder, path: str) -> str:
    stem = _base(path)[:-3]
    head = docstring(s.describe(path), f"The {stem} script: `python -m {s.mod(path)}`.")
    action = '    print(f"{parser.prog}: nothing to do yet; see the module docstring.")\n'
    imports = "import argparse\n"
    if s.orm == "sqlalchemy" and "db" in stem and not s.orm_async:
        imports += f"\nfrom {s.mod(s.database_path)} import init_db\n"
        action = '    init_db()\n    print("tables created")\n'
    return (
        f"{head}\n{imports}\n\n"
        "def main(argv: list[str] | None = None) -> int:\n"
        f'    parser = argparse.ArgumentParser(prog="{stem}", description=__doc__)\n'
        "    parser.parse_args(argv)\n"
        f"{action}"
        "    return 0\n\n\n"
        'if __name__ == "__main__":\n'
        "    raise SystemExit(main())\n"
    )


def w_alembic_env(s: Scaffolder, path: str) -> str:
    head = docstring(s.describe(path), "Alembic's environment: the database URL and the models' metadata.")
    common = (
        f"{_settings_import(s)}"
        f"from {s.mod(s.database_path)} import Base, import_models\n\n"
        "import_models()\n"
        "config = context.config\n"
        "if config.config_file_name is not None:\n"
        "    fileConfig(config.config_file_name, disable_existing_loggers=False)\n"
        'url = config.get_main_option("sqlalchemy.url") or settings.DATABASE_URL\n'
        "target_metadata = Base.metadata\n\n\n"
        "def run_migrations_offline() -> None:\n"
        "    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)\n"
        "    with context.begin_transaction():\n"
        "        context.run_migrations()\n\n\n"
    )
    if s.orm_async:
        return (
            f"{head}\nimport asyncio\nfrom logging.config import fileConfig\n\n"
            "from alembic import context\nfrom sqlalchemy import pool\nfrom sqlalchemy.engine import Connection\n"
            "from sqlalchemy.ext.asyncio import async_engine_from_config\n\n"
            + common
            + "def do_run_migrations(connection: Connection) -> None:\n"
            "    context.configure(connection=connection, target_metadata=target_metadata)\n"
            "    with context.begin_transaction():\n"
            "        context.run_migrations()\n\n\n"
            "async def run_async_migrations() -> None:\n"
            '    connectable = async_engine_from_config({"sqlalchemy.url": url}, prefix="sqlalchemy.", poolclass=pool.NullPool)\n'
            "    async with connectable.connect() as connection:\n"
            "        await connection.run_sync(do_run_migrations)\n"
            "    await connectable.dispose()\n\n\n"
            "def run_migrations_online() -> None:\n"
            "    asyncio.run(run_async_migrations())\n\n\n"
            "if context.is_offline_mode():\n    run_migrations_offline()\nelse:\n    run_migrations_online()\n"
        )
    return (
        f"{head}\nfrom logging.config import fileConfig\n\n"
        "from alembic import context\nfrom sqlalchemy import engine_from_config, pool\n\n"
        + common
        + "def run_migrations_online() -> None:\n"
        '    connectable = engine_from_config({"sqlalchemy.url": url}, prefix="sqlalchemy.", poolclass=pool.NullPool)\n'
        "    with connectable.connect() as connection:\n"
        "        context.configure(connection=connection, target_metadata=target_metadata)\n"
        "        with context.begin_transaction():\n"
        "            context.run_migrations()\n\n\n"
        "if context.is_offline_mode():\n    run_migrations_offline()\nelse:\n    run_migrations_online()\n"
    )


def w_alembic_migration(s: Scaffolder, path: str) -> str:
    creates = []
    drops: list[str] = []
    for model in s.models:
        creates.append(
            "    op.create_table(\n"
            f'        "{model.table}",\n'
            '        sa.Column("id", sa.Integer(), nullable=False),\n'
            '        sa.Column("name", sa.String(length=200), nullable=False),\n'
            '        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),\n'
            '        sa.PrimaryKeyConstraint("id"),\n'
            "    )\n"
        )
        drops.insert(0, f'    op.drop_table("{model.table}")\n')
    revision = re.sub(r"[^0-9a-z_]", "", _base(path)[:-3].split("_")[0].lower()) or "0001"
    summary = "Create the tables of the models." if s.models else "The first revision (no models yet)."
    imports = "import sqlalchemy as sa\nfrom alembic import op\n\n" if s.models else ""
    empty = '    """No tables yet: the first models add them in the next revision."""\n'
    return (
        f'"""{summary}\n\nRevision ID: {revision}\nRevises:\n"""\n\n'
        "from collections.abc import Sequence\n\n"
        f"{imports}"
        f'revision: str = "{revision}"\n'
        "down_revision: str | None = None\n"
        "branch_labels: str | Sequence[str] | None = None\n"
        "depends_on: str | Sequence[str] | None = None\n\n\n"
        "def upgrade() -> None:\n" + ("".join(creates) or empty) + "\n\n"
        "def downgrade() -> None:\n" + ("".join(drops) or empty)
    )


def w_alembic_script(s: Scaffolder, path: str) -> str:
    return ALEMBIC_SCRIPT_MAKO


def w_alembic_ini(s: Scaffolder, path: str) -> str:
    text = ALEMBIC_INI.format(location=s.alembic_location)
    root = source_root(s.bp.entries)
    if root:  # env.py imports the models from the src layout's packages (separator: path_separator = os)
        text = text.replace("prepend_sys_path = .\n", f"prepend_sys_path = .:{root}\n")
    return text


def w_gitkeep(s: Scaffolder, path: str) -> str:
    return ""


def w_empty(s: Scaffolder, path: str) -> str:
    return ""


def w_env_file(s: Scaffolder, path: str) -> str:
    return "\n".join(f"{key}={value}" for key, value in s.env_vars.items()) + "\n"


def w_flaskenv(s: Scaffolder, path: str) -> str:
    """`.flaskenv` (read by `flask` with python-dotenv): the app to run, for `flask run` / `flask shell`."""
    if s.framework != "flask" or not s.app_path:
        return w_env_file(s, path)
    return f"FLASK_APP={module_path(s.app_path)}:app\nFLASK_DEBUG=0\n"


def w_gitignore(s: Scaffolder, path: str) -> str:
    extra = []
    if ".env" not in s.entries:
        extra.append(".env")
    if s.orm == "sqlalchemy":
        extra.append("app.db")
    if s.orm == "django":
        extra.append("db.sqlite3")
    return GITIGNORE + ("\n# Local state\n" + "\n".join(extra) + "\n" if extra else "")


def w_pytest_ini(s: Scaffolder, path: str) -> str:
    testpaths = " ".join(s.test_folders())
    pythonpath = " ".join([".", *filter(None, [source_root(s.bp.entries)])])
    lines = ["[pytest]", f"testpaths = {testpaths}", f"pythonpath = {pythonpath}", "addopts = -q -p no:cacheprovider"]
    if s.framework == "django":
        lines.append(f"DJANGO_SETTINGS_MODULE = {s.mod(s.settings_path)}")
    return "\n".join(lines) + "\n"


def w_dockerfile(s: Scaffolder, path: str) -> str:
    command = s.start_command()
    prod = "prod" in _base(path).lower()
    user = "RUN useradd --create-home appuser\nUSER appuser\n" if prod else ""
    return (
        f"# {s.summary(path) or 'Container image of the application'}\n"
        "FROM python:3.11-slim\n"
        "ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PORT=8000\n"
        "WORKDIR /app\n"
        "COPY requirements.txt .\n"
        "RUN pip install --no-cache-dir -r requirements.txt\n"
        "COPY . .\n"
        f"{user}"
        "EXPOSE 8000\n"
        f'CMD ["sh", "-c", "{command}"]\n'
    )


def w_dockerignore(s: Scaffolder, path: str) -> str:
    return ".git\n__pycache__/\n*.pyc\n.venv/\n.env\n.pytest_cache/\n"


def w_compose(s: Scaffolder, path: str) -> str:
    return (
        'services:\n  web:\n    build: .\n    env_file: .env.example\n    environment:\n      PORT: "8000"\n'
        '    ports:\n      - "8000:8000"\n'
    )


def w_procfile(s: Scaffolder, path: str) -> str:
    worker = modules.worker_command(s)
    return f"web: {s.start_command()}\n" + (f"worker: {worker}\n" if worker else "")


def w_makefile(s: Scaffolder, path: str) -> str:
    return (
        ".PHONY: install test run\n\ninstall:\n\tpython -m pip install -r requirements.txt\n\n"
        "test:\n\tpython -m pytest\n\n"
        f"run:\n\tPORT=$${{PORT:-8000}} {s.start_command().replace('$PORT', '$$PORT')}\n"
    )


def w_json(s: Scaffolder, path: str) -> str:
    return json.dumps({"name": PROJECT_NAME, "description": s.summary(path)}, indent=2) + "\n"


def w_yaml(s: Scaffolder, path: str) -> str:
    summary = s.summary(path)
    return (f"# {summary}\n" if summary else "") + f'name: "{PROJECT_NAME}"\n'


def w_ini(s: Scaffolder, path: str) -> str:
    summary = s.summary(path)
    section = snake(_base(path).rsplit(".", 1)[0]) or "settings"
    return (f"# {summary}\n" if summary else "") + f"[{section}]\nname = {PROJECT_NAME}\n"


def w_toml(s: Scaffolder, path: str) -> str:
    summary = s.summary(path)
    return (f"# {summary}\n" if summary else "") + f'[project]\nname = "{PROJECT_NAME}"\n'


def w_text(s: Scaffolder, path: str) -> str:
    text = s.describe(path)
    return (text or _base(path)) + "\n"


def w_pyproject(s: Scaffolder, path: str) -> str:
    return ""  # written late: lists the requirements and the command lines


def _requirement_lines(s: Scaffolder) -> tuple[list[str], list[str]]:
    """(what the code needs to run, what its tests need) as pinned requirement lines."""
    needs = set(s.needs) | ({"httpx2"} if s.framework == "fastapi" else set())
    if "sqlalchemy_async" in needs:
        needs.discard("sqlalchemy")
    test_needs = {"pytest", "pytest_django", "httpx2"}
    return sorted(PINS[n] for n in needs - test_needs), sorted(PINS[n] for n in needs & test_needs)


def w_pyproject_late(s: Scaffolder, path: str) -> str:
    runtime, tests = _requirement_lines(s)
    packages = sorted(
        {p.split("/")[0] for p, r in s.roles.items() if p.endswith("/__init__.py") and p.count("/") == 1}
        - {"tests", "test"}
    )
    modules_at_root = sorted(
        p[:-3] for p in s.roles if "/" not in p and p.endswith(".py") and is_importable(p) and p != "conftest.py"
    )
    scripts = [
        (module_path(p).split(".")[0] if _base(p) in {"cli.py", "__main__.py"} else _base(p)[:-3], module_path(p))
        for p, r in sorted(s.roles.items())
        if r == "cli" and is_importable(p)
    ]

    def quote(items: list[str]) -> str:
        return "".join(f'    "{item}",\n' for item in items)

    out = [
        '[build-system]\nrequires = ["setuptools>=69"]\nbuild-backend = "setuptools.build_meta"\n\n',
        f'[project]\nname = "{PROJECT_SLUG}"\nversion = "0.1.0"\n',
        f'description = "{(s.bp.title or "").replace(chr(34), chr(39))[:200]}"\n',
        'readme = "README.md"\nrequires-python = ">=3.11"\n',
        "dependencies = [\n" + quote(runtime) + "]\n\n",
        "[project.optional-dependencies]\ntest = [\n" + quote(tests) + "]\n",
    ]
    if scripts:
        out.append("\n[project.scripts]\n" + "".join(f'{name} = "{module}:main"\n' for name, module in scripts))
    out.append("\n[tool.setuptools]\n")
    if modules_at_root:
        out.append("py-modules = [" + ", ".join(f'"{m}"' for m in modules_at_root) + "]\n")
    root = source_root(s.bp.entries)
    if root:  # the src layout: the packages are found below it
        packages = sorted(
            {p.split("/")[1] for p, r in s.roles.items() if p.startswith(root + "/") and p.count("/") >= 2}
        )
        out.append(f'\n[tool.setuptools.packages.find]\nwhere = ["{root}"]\n')
    else:
        out.append("\n[tool.setuptools.packages.find]\n")
    out.append("include = [" + ", ".join(f'"{p}*"' for p in packages) + "]\n")
    return "".join(out)


def w_doc(s: Scaffolder, path: str) -> str:
    name = _base(path).lower()
    entry = s.entries.get(path)
    if entry is not None and re.search(r"\bthis (?:file|document)\b", entry.description, re.IGNORECASE):
        return s.bp_source or _readme(s)
    if any(word in name for word in ("setup", "install", "run", "getting")):
        return _run_steps(s, title=f"# {PROJECT_NAME}: set-up and run\n")
    if files.is_architecture(path):
        return files.architecture(s, path)
    return f"# {_base(path)}\n\n{s.describe(path) or 'Notes about ' + PROJECT_NAME + '.'}\n"


def _run_steps(s: Scaffolder, *, title: str) -> str:
    worker = modules.worker_command(s)
    install = " && ".join(f"pip install -r {p}" for p in s.install_files())
    migrate = ""
    if s.stack.migrations == "alembic":
        migrate = "alembic upgrade head                 # create the tables\n"
    elif s.framework == "django":
        migrate = "python manage.py migrate             # create the tables\n"
    return (
        f"{title}\n"
        "```bash\n"
        "python3 -m venv .venv && . .venv/bin/activate\n"
        f"{install}\n"
        "cp .env.example .env                 # then edit the values\n"
        f"{migrate}"
        "python -m pytest                     # the tests\n"
        f"PORT=8000 {s.start_command()}\n"
        + (f"{worker}    # the background worker, in another shell\n" if worker else "")
        + 'curl http://127.0.0.1:8000/health    # → {"status": "ok"}\n'
        "```\n\n"
        f"The `Procfile` says the same: `web: {s.start_command()}` starts the app on `$PORT`"
        + (f"; `worker: {worker}` runs the background jobs.\n" if worker else ".\n")
    )


def _readme(s: Scaffolder) -> str:
    bp = s.bp
    out = [f"# {PROJECT_NAME}\n\n"]
    if bp.intro:
        out.append(bp.intro + "\n\n")
    stack = bp.stack
    parts = [stack.framework if stack.framework != "plain" else "standard-library WSGI"]
    if stack.orm != "none":
        parts.append(f"{stack.orm}{' (async)' if s.orm_async else ''}")
    for value in (stack.migrations, stack.scheduler, stack.queue, stack.validation):
        if value not in {"none", "django", ""} and value not in parts:
            parts.append(value)
    parts.append("pytest")
    out.append("Stack: " + ", ".join(parts) + ".\n\n")
    out.append(_run_steps(s, title="## Run it\n"))
    out.append("\n## Structure\n\n")
    for entry in bp.entries:
        if "/" in entry.path:
            continue
        suffix = "/" if entry.kind == "dir" else ""
        out.append(f"- `{entry.path}{suffix}`" + (f": {entry.description}" if entry.description else "") + "\n")
    for heading, body in bp.sections:
        if body and not re.search(r"structure|tree", heading, re.IGNORECASE) and heading != bp.title:
            out.append(f"\n## {heading}\n\n{body}\n")
    return "".join(out)


def w_readme(s: Scaffolder, path: str) -> str:
    return _readme(s)


def w_requirements(s: Scaffolder, path: str) -> str:
    return ""  # written late: after every module said what it needs


_DEV_REQUIREMENTS = re.compile(r"test|dev|local")


def w_requirements_late(s: Scaffolder, path: str) -> str:
    """Pinned requirements: runtime pins in the runtime file, test pins in a test/dev file that includes it
    (`-r`); a root requirements.txt beside a requirements/ folder includes the folder's runtime file."""
    runtime, tests = _requirement_lines(s)
    folder = _dir(path)
    siblings = sorted(p for p, r in s.roles.items() if r == "requirements" and _dir(p) == folder and p != path)
    runtime_siblings = [p for p in siblings if not _DEV_REQUIREMENTS.search(_base(p).lower())]
    if folder == "" and not _DEV_REQUIREMENTS.search(_base(path).lower()):
        nested = sorted(
            p
            for p, r in s.roles.items()
            if r == "requirements" and _dir(p) == "requirements" and not _DEV_REQUIREMENTS.search(_base(p).lower())
        )
        if nested:
            return f"-r {nested[0]}\n"
    if _DEV_REQUIREMENTS.search(_base(path).lower()):
        include = sorted(runtime_siblings, key=lambda p: (_base(p) != "base.txt", _base(p) != "requirements.txt", p))
        lines = [f"-r {_base(include[0])}", *tests] if include else [*runtime, *tests]
    else:
        has_dev = any(_DEV_REQUIREMENTS.search(_base(p).lower()) for p in siblings)
        lines = runtime if has_dev else sorted(runtime + tests)
    return "\n".join(lines) + "\n"


def w_test(s: Scaffolder, path: str) -> str:
    return ""  # written late: needs every router and module


def w_conftest(s: Scaffolder, path: str) -> str:
    if s.framework == "django":
        return django_stack.conftest(s)
    head = '"""Test set-up: a throwaway SQLite database and the app\'s test client."""\n\n'
    out = [head, "import os\nimport tempfile\nfrom pathlib import Path\n\nimport pytest\n\n"]
    out.append('_DATABASE = Path(tempfile.mkdtemp(prefix="tests-")) / "test.db"\n')
    if s.orm == "sqlalchemy":
        driver = "sqlite+aiosqlite" if s.orm_async else "sqlite"
        out.append(f'os.environ["DATABASE_URL"] = "{driver}:///" + str(_DATABASE)\n')
    out.append('os.environ["SCHEDULER_ENABLED"] = "false"\n\n\n')
    app = s.mod(s.app_path)
    init = ""
    if s.orm == "sqlalchemy":
        init = f"    from {s.mod(s.database_path)} import init_db\n\n" + (
            "    asyncio.run(init_db())\n" if s.orm_async else "    init_db()\n"
        )
        if s.orm_async:
            out[1] = "import asyncio\n" + out[1]
    if s.framework == "fastapi":
        out.append(
            '@pytest.fixture(scope="session")\n'
            "def client():\n"
            "    from fastapi.testclient import TestClient\n\n"
            f"    from {app} import app\n"
            f"{init}"
            "    return TestClient(app)\n"
        )
    elif s.framework == "flask":
        out.append(
            '@pytest.fixture(scope="session")\n'
            "def client():\n"
            f"    from {app} import app\n"
            f"{init}"
            "    return app.test_client()\n"
        )
    else:
        out.append(
            "class WSGIClient:\n"
            '    """Calls the WSGI app in-process, like a framework\'s test client."""\n\n'
            "    def __init__(self, app):\n"
            "        self.app = app\n\n"
            "    def get(self, path):\n"
            "        import json\n"
            "        from types import SimpleNamespace\n"
            "        from wsgiref.util import setup_testing_defaults\n\n"
            '        environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}\n'
            "        setup_testing_defaults(environ)\n"
            "        seen = {}\n\n"
            "        def start_response(status, headers):\n"
            '            seen["status"] = int(status.split()[0])\n\n'
            '        body = b"".join(self.app(environ, start_response))\n'
            '        data = json.loads(body or b"null")\n'
            '        return SimpleNamespace(status_code=seen["status"], json=lambda: data)\n\n\n'
            '@pytest.fixture(scope="session")\n'
            "def client():\n"
            f"    from {app} import app\n"
            f"{init}"
            "    return WSGIClient(app)\n"
        )
    if s.orm == "sqlalchemy" and not s.orm_async:
        out.append(
            "\n\n@pytest.fixture\n"
            "def db_session():\n"
            '    """A session on the test database, its tables created."""\n'
            f"    from {s.mod(s.database_path)} import SessionLocal, init_db\n\n"
            "    init_db()\n"
            "    with SessionLocal() as session:\n"
            "        yield session\n"
        )
    return "".join(out)


def _json_of(s: Scaffolder) -> str:
    return "response.get_json()" if s.framework == "flask" else "response.json()"


def w_test_late(s: Scaffolder, path: str) -> str:
    if s.framework == "django":
        return django_stack.test_module(s, path)
    tests = sorted(s.tests)
    primary = next((t for t in tests if re.search(r"main|app|api|health", _base(t))), tests[0])
    topic = re.sub(r"^test_|_test$|\.py$", "", _base(path)).replace(".py", "")
    modules = s.importable_modules()
    routers = list(s.routers)
    if path != primary:
        key = singular(topic)
        modules = [m for m in modules if key and key in m.rsplit(".", 1)[-1]]
        routers = [r for r in routers if key and (key in r.slug or key in snake(r.slug))]
    else:
        others = [t for t in tests if t != primary]
        keys = [singular(re.sub(r"^test_|_test$|\.py$", "", _base(t))) for t in others]
        modules = [m for m in modules if not any(k and k in m.rsplit(".", 1)[-1] for k in keys)]
        routers = [r for r in routers if not any(k and (k in r.slug or k in snake(r.slug)) for k in keys)]
    summary = s.summary(path)
    out = [docstring(summary or f"Tests of {topic}.", "Tests."), "\n"]
    imports = ["import importlib\n"] if modules else []
    out.append("".join(imports) + ("\n" if imports else "") + "import pytest\n" if modules or routers else "")
    if modules:
        out.append(
            "\nMODULES = [\n" + "".join(f'    "{m}",\n' for m in modules) + "]\n\n\n"
            '@pytest.mark.parametrize("name", MODULES)\n'
            "def test_module_imports(name: str) -> None:\n"
            "    module = importlib.import_module(name)\n"
            '    assert module.__doc__, f"{name} has no docstring"\n'
        )
    out.append(
        "\n\ndef test_health(client) -> None:\n"
        '    response = client.get("/health")\n'
        "    assert response.status_code == 200\n"
        f'    assert {_json_of(s)} == {{"status": "ok"}}\n'
    )
    if routers:
        out.append(
            '\n\n@pytest.mark.parametrize(\n    "path",\n    [\n'
            + "".join(f'        "{r.prefix}/",\n' for r in routers)
            + "    ],\n)\n"
            "def test_list_route(client, path: str) -> None:\n"
            "    response = client.get(path)\n"
            "    assert response.status_code == 200\n"
            f"    assert isinstance({_json_of(s)}, list)\n"
        )
    out.append(unit_tests_of(s, modules))
    if path == primary:
        out.extend(_extra_tests(s))
    return ensure_imports("".join(out))


def unit_tests_of(s: Scaffolder, modules_covered: list[str]) -> str:
    """The tests modules.py wrote for the modules a test file covers."""
    covered = set(modules_covered)
    return "".join(tests for path, tests in sorted(s.unit_tests.items()) if s.mod(path) in covered)


_TEST_IMPORTS = ("asyncio", "importlib", "json", "pytest")


def ensure_imports(text: str) -> str:
    """Add `import x` for each of _TEST_IMPORTS the test module uses (`x.`) and lacks, in its import block."""
    missing = [name for name in _TEST_IMPORTS if f"{name}." in text and not re.search(rf"^import {name}$", text, re.M)]
    if not missing:
        return text
    lines = "".join(f"import {name}\n" for name in missing)
    first = re.search(r"^(?:import|from) \w", text, re.M)
    if first is not None:
        return text[: first.start()] + lines + text[first.start() :]
    docstring_end = text.index('"""', 3) + 4 if text.startswith('"""') else 0
    return text[:docstring_end] + "\n" + lines + text[docstring_end:]


def scheduler_test(s: Scaffolder, path: str) -> str:
    registered = ""
    if s.stack.scheduler == "apscheduler":
        registered = "".join(
            f'    assert module.scheduler.get_job("{func}") is not None\n' for _job, func in modules.job_modules(s)
        )
    return (
        f"\n\ndef test_scheduler_{snake(_base(path)[:-3])}_starts_and_stops() -> None:\n"
        f'    module = importlib.import_module("{s.mod(path)}")\n'
        '    assert module.heartbeat() == "ok"\n'
        "    module.start()\n"
        f"{registered}"
        "    module.shutdown()\n"
    )


def _extra_tests(s: Scaffolder) -> list[str]:
    out = []
    if s.stack.migrations == "alembic":
        url = "sqlite+aiosqlite:///" if s.orm_async else "sqlite:///"
        tables = ", ".join(f'"{m.table}"' for m in s.models)
        expected = f"    assert {{{tables}}} <= names\n" if s.models else '    assert "alembic_version" in names\n'
        out.append(
            "\n\ndef test_migrations_upgrade_and_downgrade(tmp_path) -> None:\n"
            "    from alembic import command\n"
            "    from alembic.config import Config\n"
            "    from sqlalchemy import create_engine, inspect\n\n"
            '    database = tmp_path / "migrations.db"\n'
            '    config = Config("alembic.ini")\n'
            f'    config.set_main_option("sqlalchemy.url", "{url}" + str(database))\n'
            '    command.upgrade(config, "head")\n'
            '    engine = create_engine("sqlite:///" + str(database))\n'
            "    names = set(inspect(engine).get_table_names())\n"
            f"{expected}"
            '    command.downgrade(config, "base")\n'
            '    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}\n'
            "    engine.dispose()\n"
        )
    for path, role in sorted(s.roles.items()):
        if role == "scheduler" and is_importable(path):
            out.append(scheduler_test(s, path))
        if role == "queue" and is_importable(path):
            call = (
                'module.process.apply(args=[{"id": 1}]).get()'
                if s.stack.queue == "celery"
                else 'module.process({"id": 1})'
            )
            out.append(
                f"\n\ndef test_queue_{snake(_base(path)[:-3])}_processes_a_job() -> None:\n"
                f'    module = importlib.import_module("{s.mod(path)}")\n'
                f'    assert {call} == {{"processed": True, "id": 1}}\n'
            )
    security = next((p for p, r in sorted(s.roles.items()) if r == "security" and is_importable(p)), None)
    if security is not None:
        out.append(
            "\n\ndef test_tokens_and_passwords() -> None:\n"
            f'    security = importlib.import_module("{s.mod(security)}")\n'
            '    token = security.create_token("alice")\n'
            '    assert security.read_token(token) == "alice"\n'
            '    assert security.read_token(token + "x") is None\n'
            '    assert security.verify_password("s3cret", security.hash_password("s3cret"))\n'
        )
    return out


WRITERS: dict[str, Writer] = {
    "package_init": w_package_init,
    "app": w_app,
    "entry": w_entry,
    "router": w_router,
    "models": w_models,
    "schemas": w_schemas,
    "database": w_database,
    "db_base": w_db_base,
    "config": w_config,
    "security": w_security,
    "dependencies": w_dependencies,
    "crud": w_crud,
    "service": w_service,
    "scheduler": w_scheduler,
    "queue": w_queue,
    "celery_app": w_celery_app,
    "middleware": w_middleware,
    "job": _generic_module,
    "worker": _generic_module,
    "cli": _generic_module,
    "exceptions": _generic_module,
    "utils": _generic_module,
    "logger": w_logger,
    "script": w_script,
    "module": w_module,
    "alembic_env": w_alembic_env,
    "alembic_script": w_alembic_script,
    "alembic_migration": w_alembic_migration,
    "alembic_ini": w_alembic_ini,
    "conftest": w_conftest,
    "test": w_test,
    "shell": files.w_shell,
    "dockerfile": w_dockerfile,
    "dockerignore": w_dockerignore,
    "compose": w_compose,
    "requirements": w_requirements,
    "pyproject": w_pyproject,
    "env_file": w_env_file,
    "flaskenv": w_flaskenv,
    "gitignore": w_gitignore,
    "gitkeep": w_gitkeep,
    "pytest_ini": w_pytest_ini,
    "readme": w_readme,
    "doc": w_doc,
    "procfile": w_procfile,
    "makefile": w_makefile,
    "ci": files.w_ci,
    "setup_cfg": files.w_setup_cfg,
    "precommit": files.w_precommit,
    "html": files.w_html,
    "css": files.w_css,
    "js": files.w_js,
    "sqlite_db": w_empty,
    "key": w_empty,
    "json": w_json,
    "yaml": w_yaml,
    "ini": w_ini,
    "toml": w_toml,
    "text": w_text,
}
# Files that list what the other files need: written after all of them.
LATE_WRITERS: dict[str, Writer] = {
    "pyproject": w_pyproject_late,
    "requirements": w_requirements_late,
    "test": w_test_late,
    "env_file": w_env_file,
    "flaskenv": w_flaskenv,
    "readme": w_readme,
}


def scaffold(blueprint: Blueprint, *, source: str = "") -> Scaffold:
    """Every file of the project the blueprint describes (see the module docstring)."""
    scaffolder = Scaffolder(blueprint)
    scaffolder.bp_source = source
    token = SOURCE_ROOT.set(source_root(blueprint.entries))
    try:
        return scaffolder.build()
    finally:
        SOURCE_ROOT.reset(token)


__all__ = ["Entry", "Scaffold", "ScaffoldFile", "Scaffolder", "scaffold"]
