"""The Django flavour of the scaffold: settings, urls, apps, models, migrations, views, tests.

Django apps are the folders of the tree holding `models.py` or `views.py`; each gets an
`AppConfig`, its models (names from the document, else the folder's), a first migration
that matches them (so `makemigrations --check` is clean) and a JSON list view per model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from apps.blueprints.services.scaffold.names import docstring, is_importable, module_path, plural, snake

if TYPE_CHECKING:
    from apps.blueprints.services.scaffold.engine import Scaffolder, Writer


def _base(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _dir(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def plan(s: Scaffolder) -> None:
    from apps.blueprints.services.scaffold.engine import Model

    s.needs.update({"django", "pytest_django"})
    settings = sorted(
        (p for p, r in s.roles.items() if r == "django_settings"), key=lambda p: (_base(p) != "base.py", p)
    )
    if settings:
        s.settings_path = settings[0]
    else:
        s.settings_path = s._free("config", ["settings.py"]) if "config" not in s.entries else "config/settings.py"
        s.file_role(s.settings_path, "django_settings")
    project = s.settings_path.split("/")[0] if "/" in s.settings_path else "config"
    s.django_project = project
    if f"{project}/__init__.py" not in s.roles:
        s.file_role(f"{project}/__init__.py", "package_init")
    if "/" in _dir(s.settings_path) and f"{_dir(s.settings_path)}/__init__.py" not in s.roles:
        s.file_role(f"{_dir(s.settings_path)}/__init__.py", "package_init")
    s.config_path = s.settings_path
    s.app_path = f"{project}/urls.py"
    s.file_role(s.app_path, "django_urls")
    s.file_role(f"{project}/wsgi.py", "django_wsgi")
    if "manage.py" not in s.roles:
        s.file_role("manage.py", "django_manage")
    if s.stack.queue == "celery":
        s.needs.add("celery")
        celery = next((p for p, r in s.roles.items() if r == "celery_app"), None)
        if celery is None:
            s.file_role(f"{project}/celery.py", "celery_app")
        s.roles[f"{project}/__init__.py"] = "django_project_init"
    app_dirs = sorted(
        {
            _dir(p)
            for p, r in s.roles.items()
            if r in {"models", "django_views", "django_admin", "django_apps"} and _dir(p)
        }
    )
    s.django_apps = app_dirs
    for app in app_dirs:
        if f"{app}/__init__.py" not in s.roles:
            s.file_role(f"{app}/__init__.py", "package_init")
        if f"{app}/apps.py" not in s.roles:
            s.file_role(f"{app}/apps.py", "django_apps")
        models_file = f"{app}/models.py"
        if models_file not in s.roles:
            continue
        for name in s._model_names_for(models_file):
            label = _base(app)
            s.models.append(Model(module_path(models_file), name, f"{label}_{snake(name)}"))
        migrations = sorted(p for p, r in s.roles.items() if r == "django_migration" and _dir(p) == f"{app}/migrations")
        migrations = [p for p in migrations if not p.endswith("__init__.py")]
        if not migrations:
            s.file_role(f"{app}/migrations/0001_initial.py", "django_migration")
        if f"{app}/migrations/__init__.py" not in s.roles:
            s.file_role(f"{app}/migrations/__init__.py", "package_init")
    s.routers = []


def _app_of(s: Scaffolder, path: str) -> str:
    for app in sorted(s.django_apps, key=len, reverse=True):
        if path.startswith(app + "/"):
            return app
    return _dir(path)


def _models_of(s: Scaffolder, app: str) -> list:
    module = module_path(f"{app}/models.py")
    return [m for m in s.models if m.module == module]


def w_settings(s: Scaffolder, path: str) -> str:
    depth = path.count("/")
    apps = "".join(f'    "{module_path(app)}",\n' for app in s.django_apps)
    s.env_vars.update(
        {
            "DJANGO_SECRET_KEY": "insecure-development-key-change-me",
            "DJANGO_DEBUG": "false",
            "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1,0.0.0.0,testserver",
            "DATABASE_URL": "\x00DATABASE_URL\x00",
        }
    )
    celery = ""
    if s.stack.queue == "celery":
        s.env_vars.update({"CELERY_BROKER_URL": "memory://", "CELERY_TASK_ALWAYS_EAGER": "false"})
        celery = (
            '\nCELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "memory://")\n'
            'CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", "cache+memory://")\n'
            'CELERY_TASK_ALWAYS_EAGER = os.environ.get("CELERY_TASK_ALWAYS_EAGER", "false").lower() == "true"\n'
        )
    admin = has_admin(s)
    contrib = ["admin"] if admin else []
    contrib += ["auth", "contenttypes"] + (["sessions", "messages"] if admin else [])
    middleware = ["django.middleware.security.SecurityMiddleware"]
    if admin:
        middleware.append("django.contrib.sessions.middleware.SessionMiddleware")
    middleware.append("django.middleware.common.CommonMiddleware")
    if admin:
        middleware += [
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ]
    processors = ["django.template.context_processors.request"]
    if admin:
        processors += [
            "django.contrib.auth.context_processors.auth",
            "django.contrib.messages.context_processors.messages",
        ]
    template_dirs = sorted(
        e.path for e in s.bp.entries if e.kind == "dir" and _base(e.path) == "templates" and "/" not in e.path
    )
    scheduler = ""
    if scheduler_modules(s):
        s.env_vars["SCHEDULER_ENABLED"] = "true"
        scheduler = 'SCHEDULER_ENABLED = os.environ.get("SCHEDULER_ENABLED", "true").lower() == "true"\n'
    return (
        docstring(s.describe(path), "Django settings, read from environment variables.")
        + "\nimport os\nfrom pathlib import Path\nfrom urllib.parse import unquote, urlparse\n\n"
        f"BASE_DIR = Path(__file__).resolve().parents[{depth}]\n\n"
        'PROJECT_NAME = os.environ.get("PROJECT_NAME", "\x00PROJECT_NAME\x00")\n'
        'SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-development-key-change-me")\n'
        'DEBUG = os.environ.get("DJANGO_DEBUG", "false").lower() == "true"\n'
        'ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,0.0.0.0,testserver").split(",")\n'
        f"{scheduler}\n"
        "INSTALLED_APPS = [\n" + "".join(f'    "django.contrib.{name}",\n' for name in contrib) + f"{apps}"
        "]\n\n"
        "MIDDLEWARE = [\n" + "".join(f'    "{name}",\n' for name in middleware) + "]\n\n"
        "TEMPLATES = [\n"
        "    {\n"
        '        "BACKEND": "django.template.backends.django.DjangoTemplates",\n'
        '        "DIRS": [' + ", ".join(f'BASE_DIR / "{d}"' for d in template_dirs) + "],\n"
        '        "APP_DIRS": True,\n'
        '        "OPTIONS": {"context_processors": [' + ", ".join(f'"{c}"' for c in processors) + "]},\n"
        "    },\n"
        "]\n\n"
        f'ROOT_URLCONF = "{module_path(s.app_path)}"\n'
        f'WSGI_APPLICATION = "{module_path(s.django_project)}.wsgi.application"\n'
        'DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"\n'
        'USE_TZ = True\nTIME_ZONE = "UTC"\n\n\n'
        "def database_from_url(url: str) -> dict[str, object]:\n"
        '    """DATABASES["default"] from a URL: sqlite:///path, postgres://user:pass@host:port/name, mysql://..."""\n'
        "    parsed = urlparse(url)\n"
        '    if parsed.scheme == "sqlite":\n'
        '        name = unquote(parsed.path[1:]) if parsed.path.startswith("/") else parsed.path\n'
        '        return {"ENGINE": "django.db.backends.sqlite3", "NAME": name or str(BASE_DIR / "db.sqlite3")}\n'
        '    engines = {"postgres": "postgresql", "postgresql": "postgresql", "mysql": "mysql"}\n'
        "    return {\n"
        '        "ENGINE": f"django.db.backends.{engines[parsed.scheme]}",\n'
        '        "NAME": unquote(parsed.path.lstrip("/")),\n'
        '        "USER": unquote(parsed.username or ""),\n'
        '        "PASSWORD": unquote(parsed.password or ""),\n'
        '        "HOST": parsed.hostname or "",\n'
        '        "PORT": str(parsed.port or ""),\n'
        "    }\n\n\n"
        'DATABASES = {"default": database_from_url(os.environ.get("DATABASE_URL", "\x00DATABASE_URL\x00"))}\n'
        f"{celery}"
    )


def has_admin(s: Scaffolder) -> bool:
    return any(r == "django_admin" for r in s.roles.values())


def scheduler_modules(s: Scaffolder) -> list[str]:
    return sorted(p for p, r in s.roles.items() if r == "scheduler")


def _app_urls(s: Scaffolder, app: str) -> str | None:
    path = f"{app}/urls.py"
    return path if s.roles.get(path) == "django_urls" and path != s.app_path else None


def _model_routes(s: Scaffolder, app: str) -> tuple[list[str], list[str]]:
    """(imports, path() lines relative to the app's prefix) of the app's list views."""
    views = f"{app}/views.py"
    if views not in s.roles:
        return [], []
    alias = f"{snake(_base(app))}_views"
    module = module_path(views)
    imports = [f"import {module} as {alias}\n"]
    routes = [
        f'    path("{plural(snake(m.cls)).replace("_", "-")}/", {alias}.{snake(m.cls)}_list, '
        f'name="{snake(m.cls)}-list"),\n'
        for m in _models_of(s, app)
    ]
    return (imports if routes else []), routes


def w_urls(s: Scaffolder, path: str) -> str:
    if path != s.app_path:
        app = _app_of(s, path)
        own_imports, own_routes = _model_routes(s, app)
        return (
            docstring(s.describe(path), f"The {_base(app)} app's routes (included under /{_base(app)}/).")
            + "\nfrom django.urls import path\n\n"
            + "".join(own_imports)
            + f'\napp_name = "{snake(_base(app))}"\n\n'
            + "urlpatterns = [\n"
            + "".join(own_routes)
            + "]\n"
        )
    imports: list[str] = []
    routes: list[str] = []
    for app in s.django_apps:
        prefix = _base(app).replace("_", "-")
        if _app_urls(s, app) is not None:
            routes.append(f'    path("{prefix}/", include("{module_path(f"{app}/urls.py")}")),\n')
            continue
        app_imports, app_routes = _model_routes(s, app)
        imports.extend(line for line in app_imports if line not in imports)
        routes.extend(line.replace('path("', f'path("{prefix}/', 1) for line in app_routes)
    admin = has_admin(s)
    if admin:
        imports.append("from django.contrib import admin\n")
        routes.insert(0, '    path("admin/", admin.site.urls),\n')
    django_urls = (
        "from django.urls import include, path\n" if "include(" in "".join(routes) else "from django.urls import path\n"
    )
    return (
        docstring(s.describe(path), "URL routes: /health and one list route per model.")
        + "\nfrom django.http import HttpRequest, JsonResponse\n"
        + django_urls
        + "\n"
        + "".join(sorted(imports))
        + "\n\ndef health(request: HttpRequest) -> JsonResponse:\n"
        '    """Liveness check for load balancers and the Procfile\'s start-up check."""\n'
        '    return JsonResponse({"status": "ok"})\n\n\n'
        "urlpatterns = [\n"
        '    path("health", health, name="health"),\n'
        '    path("health/", health),\n'
        f"{''.join(routes)}"
        "]\n"
    )


def list_routes(s: Scaffolder) -> list[str]:
    out = []
    for app in s.django_apps:
        if f"{app}/views.py" not in s.roles:
            continue
        for model in _models_of(s, app):
            out.append(f"/{_base(app).replace('_', '-')}/{plural(snake(model.cls)).replace('_', '-')}/")
    return out


def w_wsgi(s: Scaffolder, path: str) -> str:
    schedulers = scheduler_modules(s) if _base(path) == "wsgi.py" else []
    start = ""
    if schedulers:
        # runserver and WSGI servers load this module: the in-process scheduler starts with the web app
        start = (
            "\n\ndef start_scheduler() -> None:\n"
            '    """Start the in-process scheduler with the web app (unless SCHEDULER_ENABLED is false)."""\n'
            "    from django.conf import settings\n\n"
            + "".join(f"    import {module_path(p)} as scheduler_{i}\n" for i, p in enumerate(schedulers))
            + "\n    if settings.SCHEDULER_ENABLED:\n"
            + "".join(f"        scheduler_{i}.start()\n" for i in range(len(schedulers)))
            + "\n\nstart_scheduler()\n"
        )
    return (
        docstring(s.describe(path), "The WSGI application servers run.")
        + "\nimport os\n\nfrom django.core.wsgi import get_wsgi_application\n\n"
        f'os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{module_path(s.settings_path)}")\n\n'
        "application = get_wsgi_application()\n" + start
    )


def w_manage(s: Scaffolder, path: str) -> str:
    return (
        "#!/usr/bin/env python\n"
        + docstring(s.describe(path), "Django's command-line entry: `python manage.py <command>`.")
        + "\nimport os\nimport sys\n\n\n"
        "def main() -> None:\n"
        f'    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{module_path(s.settings_path)}")\n'
        "    from django.core.management import execute_from_command_line\n\n"
        "    execute_from_command_line(sys.argv)\n\n\n"
        'if __name__ == "__main__":\n'
        "    main()\n"
    )


def w_project_init(s: Scaffolder, path: str) -> str:
    celery = next(p for p, r in s.roles.items() if r == "celery_app")
    return (
        docstring(s.describe(path), "The Django project package; loads the Celery app with Django.")
        + f"\nfrom {module_path(celery)} import app as celery_app\n\n"
        '__all__ = ["celery_app"]\n'
    )


def w_celery(s: Scaffolder, path: str) -> str:
    return (
        docstring(s.describe(path), "The Celery application, configured from Django's settings (CELERY_*).")
        + "\nimport os\n\nfrom celery import Celery\n\n"
        f'os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{module_path(s.settings_path)}")\n\n'
        f'app = Celery("{module_path(s.django_project)}")\n'
        'app.config_from_object("django.conf:settings", namespace="CELERY")\n'
        "app.autodiscover_tasks()\n"
    )


def w_models(s: Scaffolder, path: str) -> str:
    models = [m for m in s.models if m.module == module_path(path)]
    out = [docstring(s.describe(path), "The models of this app."), "\nfrom django.db import models\n"]
    for model in models:
        out.append(
            f"\n\nclass {model.cls}(models.Model):\n"
            f'    """A {model.cls} row."""\n\n'
            "    name = models.CharField(max_length=200)\n"
            "    created_at = models.DateTimeField(auto_now_add=True)\n\n"
            "    def __str__(self) -> str:\n"
            "        return self.name\n"
        )
    return "".join(out)


def w_migration(s: Scaffolder, path: str) -> str:
    app = _app_of(s, path)
    folder = _dir(path)
    siblings = sorted(p for p, r in s.roles.items() if r == "django_migration" and _dir(p) == folder)
    siblings = [p for p in siblings if not p.endswith("__init__.py")]
    index = siblings.index(path)
    label = _base(app)
    head = docstring(s.describe(path), "Creates the app's tables." if index == 0 else "A later migration.")
    if index > 0:
        previous = _base(siblings[index - 1])[:-3]
        return (
            head + "\nfrom django.db import migrations\n\n\n"
            "class Migration(migrations.Migration):\n"
            f'    dependencies = (("{label}", "{previous}"),)\n\n'
            "    operations = ()\n"
        )
    creates = []
    for model in _models_of(s, app):
        creates.append(
            "        migrations.CreateModel(\n"
            f'            name="{model.cls}",\n'
            "            fields=[\n"
            '                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, '
            'verbose_name="ID")),\n'
            '                ("name", models.CharField(max_length=200)),\n'
            '                ("created_at", models.DateTimeField(auto_now_add=True)),\n'
            "            ],\n"
            "        ),\n"
        )
    return (
        head + "\nfrom django.db import migrations, models\n\n\n"
        "class Migration(migrations.Migration):\n"
        "    initial = True\n\n"
        "    dependencies = ()\n\n"
        "    operations = (\n" + "".join(creates) + "    )\n"
    )


def w_views(s: Scaffolder, path: str) -> str:
    app = _app_of(s, path)
    models = _models_of(s, app)
    serializers = f"{app}/serializers.py"
    out = [docstring(s.describe(path), "The app's views: a JSON list per model."), "\n"]
    out.append("from django.http import HttpRequest, JsonResponse\n\n")
    if models:
        out.append(f"from {module_path(f'{app}/models.py')} import {', '.join(m.cls for m in models)}\n")
        if serializers in s.roles:
            out.append(
                f"from {module_path(serializers)} import {', '.join('serialize_' + snake(m.cls) for m in models)}\n"
            )
    for model in models:
        func = f"serialize_{snake(model.cls)}" if serializers in s.roles else None
        body = (
            f'    rows = [{func}(row) for row in {model.cls}.objects.order_by("id")]\n'
            if func
            else f'    rows = list({model.cls}.objects.order_by("id").values("id", "name", "created_at"))\n'
        )
        out.append(
            f"\n\ndef {snake(model.cls)}_list(request: HttpRequest) -> JsonResponse:\n"
            f'    """The {model.cls} rows, oldest first, as a JSON list."""\n'
            f"{body}"
            "    return JsonResponse(rows, safe=False)\n"
        )
    if not models:
        out.append(
            "\n\ndef index(request: HttpRequest) -> JsonResponse:\n"
            f'    return JsonResponse({{"app": "{_base(app)}"}})\n'
        )
    return "".join(out)


def w_serializers(s: Scaffolder, path: str) -> str:
    app = _app_of(s, path)
    models = _models_of(s, app)
    out = [docstring(s.describe(path), "Turns the app's models into JSON-ready dicts."), "\n"]
    if models:
        out.append(f"from {module_path(f'{app}/models.py')} import {', '.join(m.cls for m in models)}\n")
    for model in models:
        out.append(
            f"\n\ndef serialize_{snake(model.cls)}(obj: {model.cls}) -> dict[str, object]:\n"
            '    return {"id": obj.pk, "name": obj.name, "created_at": obj.created_at.isoformat()}\n'
        )
    if not models:
        out.append('\n\ndef serialize(obj: object) -> dict[str, object]:\n    return {"repr": str(obj)}\n')
    return "".join(out)


def w_permissions(s: Scaffolder, path: str) -> str:
    return (
        docstring(s.describe(path), "Who may do what in this app.")
        + "\nfrom django.contrib.auth.models import AbstractBaseUser, AnonymousUser\n\n\n"
        "def can_view(user: AbstractBaseUser | AnonymousUser) -> bool:\n"
        '    """Signed-in, active users may read."""\n'
        '    return bool(user.is_authenticated and getattr(user, "is_active", False))\n\n\n'
        "def can_edit(user: AbstractBaseUser | AnonymousUser) -> bool:\n"
        '    """Staff may change things."""\n'
        '    return can_view(user) and bool(getattr(user, "is_staff", False))\n'
    )


def w_signals(s: Scaffolder, path: str) -> str:
    app = _app_of(s, path)
    models = _models_of(s, app)
    out = [docstring(s.describe(path), "Side effects of saving the app's models (logged)."), "\nimport logging\n\n"]
    out.append("from django.db.models.signals import post_save\nfrom django.dispatch import receiver\n\n")
    if models:
        out.append(f"from {module_path(f'{app}/models.py')} import {', '.join(m.cls for m in models)}\n")
    out.append("\nlogger = logging.getLogger(__name__)\n")
    for model in models:
        out.append(
            f"\n\n@receiver(post_save, sender={model.cls})\n"
            f"def {snake(model.cls)}_saved(sender: type[{model.cls}], instance: {model.cls}, created: bool, "
            "**kwargs: object) -> None:\n"
            f'    logger.info("{model.cls} %s %s", instance.pk, "created" if created else "updated")\n'
        )
    return "".join(out)


def w_admin(s: Scaffolder, path: str) -> str:
    app = _app_of(s, path)
    models = _models_of(s, app)
    out = [docstring(s.describe(path), "The app's models in Django's admin."), "\nfrom django.contrib import admin\n"]
    if models:
        out.append(f"\nfrom {module_path(f'{app}/models.py')} import {', '.join(m.cls for m in models)}\n\n")
        out.extend(f"admin.site.register({m.cls})\n" for m in models)
    return "".join(out)


def w_apps(s: Scaffolder, path: str) -> str:
    app = _app_of(s, path)
    name = "".join(part.title() for part in _base(app).split("_")) + "Config"
    ready = ""
    if f"{app}/signals.py" in s.roles:
        ready = (
            "\n    def ready(self) -> None:\n"
            f"        from {module_path(f'{app}/signals.py')} import logger  # noqa: F401 - connects the receivers\n"
        )
    return (
        docstring(s.describe(path), f"The {_base(app)} app's configuration.")
        + "\nfrom django.apps import AppConfig\n\n\n"
        f"class {name}(AppConfig):\n"
        f'    name = "{module_path(app)}"\n'
        f'    default_auto_field = "django.db.models.BigAutoField"\n'
        f"{ready}"
    )


def w_tasks(s: Scaffolder, path: str) -> str:
    head = docstring(s.describe(path), "Background tasks of this app.")
    if s.stack.queue != "celery":
        from apps.blueprints.services.scaffold.engine import w_queue

        return w_queue(s, path)
    return (
        head + "\nfrom celery import shared_task\n\n\n"
        "@shared_task\n"
        "def process(payload: dict[str, object]) -> dict[str, object]:\n"
        '    """The task: replace with the real work; it receives JSON-serialisable data."""\n'
        '    return {"processed": True, **payload}\n'
    )


def conftest(s: Scaffolder) -> str:
    return (
        '"""Test set-up: pytest-django runs the tests on a throwaway SQLite database."""\n\n'
        "import os\n\n"
        'os.environ.setdefault("DATABASE_URL", "sqlite:///:memory:")\n'
        'os.environ["SCHEDULER_ENABLED"] = "false"\n'
    )


def test_module(s: Scaffolder, path: str) -> str:
    modules = [m for m in s.importable_modules() if m != "manage"]
    routes = list_routes(s)
    out = [
        docstring(s.summary(path) or "Every module imports, /health answers and each list route works.", "Tests."),
        "\nimport importlib\n\nimport pytest\nfrom django.core.management import call_command\n",
        "\nMODULES = [\n" + "".join(f'    "{m}",\n' for m in modules) + "]\n\n\n",
        '@pytest.mark.parametrize("name", MODULES)\n'
        "def test_module_imports(name: str) -> None:\n"
        "    assert importlib.import_module(name).__doc__\n\n\n"
        "def test_health(client) -> None:\n"
        '    response = client.get("/health")\n'
        "    assert response.status_code == 200\n"
        '    assert response.json() == {"status": "ok"}\n\n\n'
        "@pytest.mark.django_db\n"
        "def test_migrations_match_the_models() -> None:\n"
        '    call_command("makemigrations", "--check", "--dry-run", verbosity=0)\n',
    ]
    if routes:
        out.append(
            "\n\n@pytest.mark.django_db\n"
            '@pytest.mark.parametrize("path", [\n' + "".join(f'    "{r}",\n' for r in routes) + "])\n"
            "def test_list_route(client, path: str) -> None:\n"
            "    response = client.get(path)\n"
            "    assert response.status_code == 200\n"
            "    assert response.json() == []\n"
        )
    for task in sorted(p for p, r in s.roles.items() if r == "queue"):
        if s.stack.queue == "celery":
            out.append(
                f"\n\ndef test_task_{snake(_base(_dir(task)))}_process() -> None:\n"
                f'    module = importlib.import_module("{module_path(task)}")\n'
                '    assert module.process.apply(args=[{"id": 1}]).get() == {"processed": True, "id": 1}\n'
            )
    from apps.blueprints.services.scaffold.engine import ensure_imports, scheduler_test, unit_tests_of

    out.append(unit_tests_of(s, modules))
    out.extend(scheduler_test(s, p) for p in scheduler_modules(s) if is_importable(p))
    return ensure_imports("".join(out))


WRITERS: dict[str, Writer] = {
    "django_settings": w_settings,
    "django_urls": w_urls,
    "django_wsgi": w_wsgi,
    "django_manage": w_manage,
    "django_project_init": w_project_init,
    "celery_app": w_celery,
    "models": w_models,
    "django_migration": w_migration,
    "django_views": w_views,
    "django_serializers": w_serializers,
    "django_permissions": w_permissions,
    "django_signals": w_signals,
    "django_admin": w_admin,
    "django_apps": w_apps,
    "queue": w_tasks,
}
