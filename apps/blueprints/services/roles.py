"""The role of each entry of a blueprint: what content the scaffold gives it.

Roles come from the name, the folder and the stack, in this order: a table of exact file
names, then of suffixes and folders. The scaffold has one writer per role
(`scaffold/writers.py`); `ROLES` lists them all so the two cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apps.blueprints.services.parser import Entry
    from apps.blueprints.services.stack import Stack

CODE_DIRS = {
    "api",
    "app",
    "apps",
    "core",
    "models",
    "services",
    "schemas",
    "crud",
    "db",
    "database",
    "utils",
    "helpers",
    "middleware",
    "middlewares",
    "websocket",
    "websockets",
    "background",
    "config",
    "routers",
    "routes",
    "endpoints",
    "handlers",
    "repositories",
    "domain",
    "lib",
    "src",
    "tasks",
    "workers",
    "jobs",
    "storage",
    "settings",
    "v1",
    "v2",
}
ROUTER_DIRS = {"routers", "routes", "endpoints", "api", "views", "controllers"}
APP_NAMES = ("main.py", "app.py", "web.py", "server.py", "application.py", "asgi.py", "wsgi.py")
CODE_WORDS = re.compile(r"\b(?:api|implements?|logic|module|service|handlers?|interface|engine|code)\b", re.IGNORECASE)

ROLES = frozenset(
    {
        "package",
        "source_root",
        "data_dir",
        "tests_dir",
        "alembic_dir",
        "alembic_versions",
        "package_init",
        "app",
        "entry",
        "router",
        "models",
        "schemas",
        "database",
        "db_base",
        "config",
        "security",
        "dependencies",
        "crud",
        "service",
        "scheduler",
        "queue",
        "job",
        "worker",
        "cli",
        "exceptions",
        "utils",
        "celery_app",
        "middleware",
        "logger",
        "script",
        "module",
        "alembic_env",
        "alembic_script",
        "alembic_migration",
        "django_manage",
        "django_settings",
        "django_urls",
        "django_wsgi",
        "django_views",
        "django_serializers",
        "django_permissions",
        "django_signals",
        "django_admin",
        "django_apps",
        "django_migration",
        "conftest",
        "test",
        "shell",
        "dockerfile",
        "dockerignore",
        "compose",
        "requirements",
        "pyproject",
        "env_file",
        "flaskenv",
        "gitignore",
        "gitkeep",
        "pytest_ini",
        "alembic_ini",
        "ci",
        "setup_cfg",
        "precommit",
        "html",
        "css",
        "js",
        "readme",
        "doc",
        "procfile",
        "makefile",
        "sqlite_db",
        "key",
        "json",
        "yaml",
        "ini",
        "toml",
        "text",
    }
)


def _base(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _parts(path: str) -> list[str]:
    return path.split("/")


def _has_python_below(path: str, entries: Sequence[Entry]) -> bool:
    prefix = path + "/"
    return any(e.path.startswith(prefix) and e.path.endswith(".py") for e in entries)


def alembic_dir(entries: Sequence[Entry], stack: Stack) -> str | None:
    """The folder holding Alembic's env.py and versions/, when the stack has Alembic."""
    if stack.migrations != "alembic":
        return None
    dirs = [e for e in entries if e.kind == "dir"]
    for entry in dirs:
        if _base(entry.path) == "alembic":
            return entry.path
    for entry in dirs:
        text = f"{entry.comment} {' '.join(entry.prose)}".lower()
        if _base(entry.path) in {"migrations", "database", "db", "migration"} and "alembic" in text:
            return entry.path
    for entry in dirs:
        if _base(entry.path) == "migrations" and "/" not in entry.path:
            return entry.path
    for entry in entries:
        if _base(entry.path) == "script.py.mako":
            return entry.path.rsplit("/", 1)[0] if "/" in entry.path else None
    return None


def source_root(entries: Sequence[Entry]) -> str:
    """`src` when the tree keeps its packages in a top-level src/ folder that is not a package itself
    (the src layout: `src/<package>/...`), else ""."""
    paths = {e.path for e in entries}
    if "src" not in paths or "src/__init__.py" in paths:
        return ""
    children = [e for e in entries if e.path.startswith("src/") and e.path.count("/") == 1]
    packages = [e for e in children if e.kind == "dir" and re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", e.name)]
    modules = [e for e in children if e.kind == "file" and e.path.endswith(".py")]
    return "src" if packages and not modules else ""


def is_package_dir(entry: Entry, entries: Sequence[Entry], stack: Stack) -> bool:
    """Whether a folder becomes a Python package (gets an `__init__.py`)."""
    if entry.kind != "dir":
        return False
    base = _base(entry.path)
    migrations = alembic_dir(entries, stack)
    if migrations and (entry.path == migrations or entry.path.startswith(migrations + "/")):
        return False
    if base in {"tests", "test"}:
        return True
    if base in {"scripts", "bin"}:
        return _has_python_below(entry.path, entries)
    if base in {"data", "logs", "reports"}:
        return _has_python_below(entry.path, entries)  # a feature package named so (`reports/routes.py`)
    if base in {"static", "templates", "media", "assets", "docs", "node_modules"}:
        return False
    if base.startswith(".") or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", base):
        return False
    if _has_python_below(entry.path, entries):
        return True
    parent = entry.path.rsplit("/", 1)[0] if "/" in entry.path else ""
    if parent:
        parent_entry = next((e for e in entries if e.path == parent), None)
        if parent_entry is not None and is_package_dir(parent_entry, entries, stack):
            return True
    text = f"{entry.comment} {' '.join(entry.prose)}"
    return base in CODE_DIRS or bool(CODE_WORDS.search(text))


def app_module(entries: Sequence[Entry], stack: Stack) -> Entry | None:
    """The module that defines the web application (non-Django stacks)."""
    if stack.framework == "django":
        return None
    candidates = [e for e in entries if e.kind == "file" and _base(e.path) in APP_NAMES]
    candidates = [e for e in candidates if not any(p in {"tests", "scripts", "alembic"} for p in _parts(e.path))]
    if not candidates:
        return None
    web = [e for e in candidates if _base(e.path) in {"web.py", "server.py"}]
    mains = [e for e in candidates if _base(e.path) == "main.py"]
    if web and mains:
        return min(web, key=lambda e: e.path.count("/"))
    order = {name: index for index, name in enumerate(APP_NAMES)}
    return min(candidates, key=lambda e: (e.path.count("/"), order[_base(e.path)]))


def _file_role(entry: Entry, entries: Sequence[Entry], stack: Stack) -> str:
    path = entry.path
    base = _base(path)
    lower = base.lower()
    parts = _parts(path)
    folders = parts[:-1]
    text = f"{entry.comment} {' '.join(entry.prose)}".lower()
    django = stack.framework == "django"
    migrations = alembic_dir(entries, stack)
    if migrations and path.startswith(migrations + "/"):
        if base == "env.py":
            return "alembic_env"
        if base == "script.py.mako":
            return "alembic_script"
        if lower.endswith(".py") and folders and folders[-1] == "versions":
            return "alembic_migration"
    exact = {
        ".gitignore": "gitignore",
        ".gitkeep": "gitkeep",
        ".keep": "gitkeep",
        ".dockerignore": "dockerignore",
        "pytest.ini": "pytest_ini",
        "alembic.ini": "alembic_ini",
        "procfile": "procfile",
        "makefile": "makefile",
        "pyproject.toml": "pyproject",
        "setup.cfg": "setup_cfg",
        ".pre-commit-config.yaml": "precommit",
        ".gitlab-ci.yml": "ci",
        "__init__.py": "package_init",
        "conftest.py": "conftest",
        ".flaskenv": "flaskenv",
    }
    if lower in exact:
        return exact[lower]
    if lower.startswith("dockerfile"):
        return "dockerfile"
    if lower.startswith(("docker-compose", "compose")) and lower.endswith((".yml", ".yaml")):
        return "compose"
    if (lower.startswith("requirements") or (folders and folders[-1] == "requirements")) and lower.endswith(
        (".txt", ".in")
    ):
        return "requirements"
    if lower == ".env" or lower.startswith(".env."):
        return "env_file"
    if lower.startswith("readme"):
        return "readme"
    if lower.endswith(".sh"):
        return "shell"
    if lower.endswith((".db", ".sqlite", ".sqlite3")):
        return "sqlite_db"
    if lower.endswith((".key", ".pem", ".crt")):
        return "key"
    if folders[:2] == [".github", "workflows"] and lower.endswith((".yml", ".yaml")):
        return "ci"
    if not lower.endswith(".py"):
        suffix = lower.rsplit(".", 1)[-1] if "." in lower else ""
        return {
            "html": "html",
            "htm": "html",
            "css": "css",
            "js": "js",
            "md": "doc",
            "rst": "doc",
            "json": "json",
            "yaml": "yaml",
            "yml": "yaml",
            "ini": "ini",
            "cfg": "ini",
            "toml": "toml",
        }.get(suffix, "text")
    # Python modules
    if any(p in {"tests", "test"} for p in folders):
        return "test" if lower.startswith("test_") or lower.endswith("_test.py") else "module"
    if lower.startswith("test_"):
        return "test"
    if folders and folders[0] in {"scripts", "bin"}:
        return "script"
    if django:
        if base == "manage.py":
            return "django_manage"
        if base == "settings.py" or (folders and folders[-1] == "settings"):
            return "django_settings"
        if folders and folders[-1] == "migrations":
            return "django_migration"
        if base in {"wsgi.py", "asgi.py"}:
            return "django_wsgi"
        named = {
            "urls.py": "django_urls",
            "views.py": "django_views",
            "serializers.py": "django_serializers",
            "permissions.py": "django_permissions",
            "signals.py": "django_signals",
            "admin.py": "django_admin",
            "apps.py": "django_apps",
            "models.py": "models",
            "celery.py": "celery_app",
        }
        if base in named:
            return named[base]
    else:
        app = app_module(entries, stack)
        if app is not None and app.path == path:
            return "app"
        if base in {"main.py", "run.py"} and app is not None and "/" not in path:
            return "entry"
        if base == "__main__.py" and stack.framework != "plain" and re.search(r"\b(?:serve|server|start|run)", text):
            return "entry"
    if base in {"celery.py", "celery_app.py"}:
        return "celery_app"
    if base in {"dependencies.py", "deps.py"}:
        return "dependencies"
    if base in {"database.py", "db.py", "session.py", "engine.py"}:
        return "database"
    if base in {"base.py", "base_class.py"} and folders and folders[-1] in {"db", "database", "models"}:
        return "db_base"
    if base in {"config.py", "settings.py", "conf.py"} or (folders and folders[-1] in {"config", "settings"}):
        return "config"
    if base in {"security.py", "jwt.py", "crypto.py", "encryption.py"}:
        return "security"
    if base in {"logger.py", "logging_config.py", "log.py", "logging.py"}:
        return "logger"
    if base in {"scheduler.py", "schedule.py", "cron.py"} or "scheduler" in text or "apscheduler" in text:
        return "scheduler"
    if base in {"worker.py", "workers.py"}:
        return "worker"
    if base in {"queues.py", "queue.py"}:
        return "queue"
    if (
        base in {"tasks.py", "jobs.py"}
        or re.search(r"_(?:job|task)s?\.py$", base)
        or (folders and folders[-1] in {"jobs", "tasks"} and base != "__init__.py")
    ):
        return "job"
    if base in {"cli.py", "__main__.py", "commands.py", "console.py"} or base.endswith("_cli.py"):
        return "cli"
    if base in {"exceptions.py", "errors.py"}:
        return "exceptions"
    if lower in {"utils.py", "helpers.py", "utilities.py"}:
        return "utils"
    if base in {"models.py"} or (folders and folders[-1] == "models") or re.search(r"_models?\.py$", base):
        return "models"
    if (
        base in {"schemas.py", "serializers.py"}
        or (folders and folders[-1] == "schemas")
        or base.endswith("_schema.py")
    ):
        return "schemas"
    if base in {"crud.py", "repository.py"} or (folders and folders[-1] in {"crud", "repositories"}):
        return "crud"
    if base in {"middleware.py"} or (folders and folders[-1] in {"middleware", "middlewares"}):
        return "middleware"
    named_router = re.search(r"(?:^|_)(?:router|routes|endpoints|views|api)\.py$", base)
    if (named_router or any(p in ROUTER_DIRS for p in folders)) and not base.startswith("_"):
        return "router"
    if (folders and folders[-1] in {"services", "handlers", "node_handlers"}) or re.search(
        r"_(?:service|manager|engine|handler|executor|client)\.py$", base
    ):
        return "service"
    return "module"


def assign_role(entry: Entry, entries: Sequence[Entry], stack: Stack) -> str:
    if entry.kind == "dir":
        base = _base(entry.path)
        migrations = alembic_dir(entries, stack)
        if migrations == entry.path:
            return "alembic_dir"
        if migrations and entry.path == f"{migrations}/versions":
            return "alembic_versions"
        if base in {"tests", "test"}:
            return "tests_dir"
        if entry.path == source_root(entries):
            return "source_root"
        if is_package_dir(entry, entries, stack):
            return "package"
        return "data_dir"
    return _file_role(entry, entries, stack)
