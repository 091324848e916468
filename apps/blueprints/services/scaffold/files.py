"""Content for the non-Python files a blueprint names whose kind has working content of its own: a CI
workflow, `setup.cfg`, a pre-commit configuration, shell scripts, web pages and their assets, and the
project's architecture notes. Each writer takes the scaffolder and the file's path (engine.WRITERS)."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apps.blueprints.services.scaffold.engine import Scaffolder


def _base(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _name(s: Scaffolder) -> str:
    from apps.blueprints.services.scaffold.engine import PROJECT_NAME

    return PROJECT_NAME


def w_ci(s: Scaffolder, path: str) -> str:
    """A CI workflow that installs the project's requirements, lints with ruff and runs the tests."""
    install = " ".join(f"-r {p}" for p in s.install_files())
    summary = s.summary(path)
    head = f"# {summary}\n" if summary else ""
    if _base(path).lower().startswith(".gitlab-ci"):
        return (
            f"{head}image: python:3.11-slim\n\n"
            "test:\n"
            "  script:\n"
            f"    - pip install {install} ruff\n"
            "    - ruff check .\n"
            "    - python -m pytest\n"
        )
    return (
        f"{head}name: CI\n\n"
        "on:\n  push:\n  pull_request:\n\n"
        "jobs:\n"
        "  test:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - uses: actions/checkout@v4\n"
        "      - uses: actions/setup-python@v5\n"
        "        with:\n"
        '          python-version: "3.11"\n'
        f"      - run: pip install {install} ruff\n"
        "      - run: ruff check .\n"
        "      - run: python -m pytest\n"
    )


def w_setup_cfg(s: Scaffolder, path: str) -> str:
    from apps.blueprints.services.scaffold.engine import PROJECT_SLUG

    return (
        f"[metadata]\nname = {PROJECT_SLUG}\nversion = 0.1.0\n\n"
        "[options]\npython_requires = >=3.11\n\n"
        "[flake8]\nmax-line-length = 120\nexclude = .git,__pycache__,.venv\n"
    )


def w_precommit(s: Scaffolder, path: str) -> str:
    """Hooks that run the tools the project already has (no downloads): ruff and the tests."""
    return (
        "repos:\n"
        "  - repo: local\n"
        "    hooks:\n"
        "      - id: ruff\n"
        "        name: ruff check\n"
        "        entry: ruff check --fix\n"
        "        language: system\n"
        "        types: [python]\n"
        "      - id: pytest\n"
        "        name: pytest\n"
        "        entry: python -m pytest -q\n"
        "        language: system\n"
        "        pass_filenames: false\n"
        "        stages: [pre-push]\n"
    )


# shell scripts: the first rule whose word appears in the script's name and that applies to the stack


def _migrate(s: Scaffolder) -> str | None:
    if s.stack.migrations == "alembic":
        return "exec alembic upgrade head\n"
    if s.framework == "django":
        return "exec python manage.py migrate\n"
    return None


def _install(s: Scaffolder) -> str:
    return "exec python -m pip install " + " ".join(f"-r {p}" for p in s.install_files()) + "\n"


def _docker(s: Scaffolder) -> str:
    from apps.blueprints.services.scaffold.engine import PROJECT_SLUG

    return (
        f'IMAGE="${{IMAGE:-{PROJECT_SLUG}}}:${{TAG:-latest}}"\n'
        'docker build -t "$IMAGE" .\n'
        'if [ -n "${REGISTRY:-}" ]; then\n'
        '  docker tag "$IMAGE" "$REGISTRY/$IMAGE"\n'
        '  docker push "$REGISTRY/$IMAGE"\n'
        "fi\n"
    )


def _manage(s: Scaffolder) -> str | None:
    """The framework's own command line, arguments passed on (`./manage.sh routes`, `./manage.sh migrate`)."""
    from apps.blueprints.services.scaffold.names import module_path

    if s.framework == "django":
        return 'exec python manage.py "$@"\n'
    if s.framework == "flask" and s.app_path:
        return f'exec {s.run_prefix()}flask --app {module_path(s.app_path)}:app "$@"\n'
    return None


SHELL_RULES: list[tuple[tuple[str, ...], Callable[[Scaffolder], str | None]]] = [
    (("test",), lambda s: 'exec python -m pytest "$@"\n'),
    (("manage", "admin"), _manage),
    (("migrat",), _migrate),
    (("start", "run", "serve", "entrypoint"), lambda s: f'export PORT="${{PORT:-8000}}"\nexec {s.start_command()}\n'),
    (("lint",), lambda s: 'exec ruff check . "$@"\n'),
    (("format", "fmt"), lambda s: 'exec ruff format . "$@"\n'),
    (("install", "setup", "bootstrap"), _install),
    (("deploy", "release", "publish", "build"), _docker),
    (
        ("clean",),
        lambda s: (
            "find . -name __pycache__ -type d -prune -exec rm -rf {} +\n"
            "rm -rf .pytest_cache .ruff_cache build dist ./*.egg-info\n"
        ),
    ),
]


def w_shell(s: Scaffolder, path: str) -> str:
    stem = _base(path).rsplit(".", 1)[0].lower()
    cd = 'cd "$(dirname "$0")' + "/.." * path.count("/") + '"\n'
    summary = s.summary(path)
    comment = f"# {summary}\n" if summary else ""
    command = next(
        (found for words, rule in SHELL_RULES if any(w in stem for w in words) and (found := rule(s)) is not None),
        None,
    )
    if command is None:  # nothing known to run: the script says what it is for
        command = f'echo "{stem}: {summary.replace(chr(34), chr(39)).replace("$", "") or "no steps yet"}"\n'
    return f"#!/usr/bin/env bash\n{comment}set -euo pipefail\n{cd}{command}"


def w_html(s: Scaffolder, path: str) -> str:
    name = _name(s)
    summary = html.escape(s.summary(path) or s.bp.title or "")
    styles = sorted(p for p in s.roles if p.endswith(".css"))
    scripts = sorted(p for p in s.roles if p.endswith(".js"))
    links = "".join(f'    <link rel="stylesheet" href="/{p}">\n' for p in styles)
    tags = "".join(f'    <script src="/{p}" defer></script>\n' for p in scripts)
    return (
        "<!doctype html>\n"
        '<html lang="en">\n'
        "  <head>\n"
        '    <meta charset="utf-8">\n'
        '    <meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"    <title>{name}</title>\n"
        f"{links}{tags}"
        "  </head>\n"
        "  <body>\n"
        "    <main>\n"
        f"      <h1>{name}</h1>\n"
        + (f"      <p>{summary}</p>\n" if summary else "")
        + '      <p>Service status: <a href="/health">/health</a></p>\n'
        "    </main>\n"
        "  </body>\n"
        "</html>\n"
    )


def w_css(s: Scaffolder, path: str) -> str:
    summary = s.summary(path)
    return (
        (f"/* {summary.replace('*/', '* /')} */\n" if summary else "")
        + ":root {\n  color-scheme: light dark;\n  font-family: system-ui, sans-serif;\n}\n\n"
        "body {\n  margin: 0 auto;\n  max-width: 60rem;\n  padding: 1rem;\n  line-height: 1.5;\n}\n"
    )


def w_js(s: Scaffolder, path: str) -> str:
    summary = s.summary(path)
    return (
        (f"// {summary}\n" if summary else "") + '"use strict";\n\n'
        "// Shows the service's health next to the page's heading.\n"
        'document.addEventListener("DOMContentLoaded", async () => {\n'
        '  const heading = document.querySelector("h1");\n'
        "  if (!heading) return;\n"
        "  try {\n"
        '    const answer = await fetch("/health");\n'
        '    heading.title = answer.ok ? "healthy" : `status ${answer.status}`;\n'
        "  } catch (error) {\n"
        '    heading.title = "unreachable";\n'
        "  }\n"
        "});\n"
    )


def architecture(s: Scaffolder, path: str) -> str:
    """Architecture notes: the stack (with the document's evidence) and the tree with what each part does."""
    name = _name(s)
    stack = s.bp.stack
    lines = [f"# {name}: architecture\n\n"]
    if s.describe(path):
        lines.append(s.describe(path) + "\n\n")
    lines.append("## Stack\n\n")
    for key in ("framework", "orm", "migrations", "scheduler", "queue", "validation", "tests"):
        value = getattr(stack, key)
        if value not in {"none", ""}:
            lines.append(f"- {key}: {value}\n")
    lines.append(f"\n## Layout\n\nThe app starts with `{s.start_command()}` (the Procfile's `web:` line).\n\n")
    for entry in s.bp.entries:
        depth = entry.path.count("/")
        suffix = "/" if entry.kind == "dir" else ""
        about = f": {entry.description}" if entry.description else ""
        lines.append(f"{'  ' * depth}- `{_base(entry.path)}{suffix}`{about}\n")
    return "".join(lines)


def is_architecture(path: str) -> bool:
    return bool(re.search(r"architecture|structure|design|overview", _base(path).lower()))
