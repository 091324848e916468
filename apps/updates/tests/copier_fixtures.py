"""Copier-format fixture templates with two versions each, and user histories to update over.

Written for Kiln's update tests (nothing here is copied from a public template). A template
version is `{path: text | bytes | (content, mode)}`; `build_template_repo` commits each version
of a template into a git repository tagged with its version, which is what `copier update`
needs. Each `Scenario` is a template, the answers of the first generation, the user's commits
on the generated project and the update to run (version, changed answers).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Files = dict[str, "str | bytes | tuple[str | bytes, int]"]

ANSWERS = "{{ _copier_conf.answers_file }}.jinja"
ANSWERS_BODY = "# Changes here will be overwritten by Copier; NEVER EDIT MANUALLY\n{{ _copier_answers|to_nice_yaml }}"


def _numbered(prefix: str, count: int) -> list[str]:
    return [f"{prefix} {i}" for i in range(1, count + 1)]


APP_V1 = "\n".join(
    [
        '"""{{ project_name }}: the application module."""',
        "",
        "import logging",
        "",
        "LOG = logging.getLogger('{{ project_name }}')",
        "",
        "",
        "def greet(name):",
        "    return f'hello {name}'",
        "",
        "",
        "def serve(port=8000):",
        "    LOG.info('serving on %s', port)",
        "    return port",
        "",
        "",
        "def shutdown():",
        "    LOG.info('bye')",
        "",
    ]
)
APP_V2 = APP_V1.replace("def serve(port=8000):", "def serve(port=8080, host='0.0.0.0'):").replace(
    "    LOG.info('serving on %s', port)", "    LOG.info('serving on %s:%s', host, port)"
)

PYPROJECT_V1 = "\n".join(
    [
        "[project]",
        'name = "{{ project_name }}"',
        'version = "0.1.0"',
        'description = "{{ description }}"',
        'authors = [{name = "{{ author }}"}]',
        'requires-python = ">=3.10"',
        "",
        "dependencies = [",
        '    "requests>=2.31",',
        '    "click>=8.1",',
        '    "rich>=13",',
        "]",
        "",
        "[tool.ruff]",
        "line-length = 100",
        "",
        "[tool.pytest.ini_options]",
        'addopts = "-q"',
        "",
    ]
)
PYPROJECT_V2 = (
    PYPROJECT_V1.replace('version = "0.1.0"', 'version = "0.2.0"').replace("line-length = 100", "line-length = 110")
    + '\n[project.license]\ntext = "{{ license }}"\n'
)

README_V1 = "\n".join(["# {{ project_name }}", "", "{{ description }}", "", *_numbered("Paragraph", 12), ""])
README_V2 = README_V1.replace("{{ description }}", "{{ description }}\n\nMade with the svc template.")

SVC_V1: Files = {
    "copier.yml": "\n".join(
        [
            "project_name:",
            "  type: str",
            "  default: demo",
            "description:",
            "  type: str",
            "  default: A demo service",
            "author:",
            "  type: str",
            "  default: Ada",
            "use_docker:",
            "  type: bool",
            "  default: true",
            "_skip_if_exists:",
            "  - .env",
            "",
        ]
    ),
    ANSWERS: ANSWERS_BODY,
    "README.md.jinja": README_V1,
    "pyproject.toml.jinja": PYPROJECT_V1,
    "src/{{ project_name }}/__init__.py.jinja": '"""{{ project_name }}."""\n__version__ = "0.1.0"\n',
    "src/{{ project_name }}/app.py.jinja": APP_V1,
    "scripts/run.sh.jinja": ('#!/bin/sh\nexec python -m {{ project_name }} "$@"\n', 0o755),
    "scripts/lint.sh": "#!/bin/sh\nruff check .\n",
    ".env.jinja": "APP_NAME={{ project_name }}\nDEBUG=1\n",
    "docs/old-guide.md": "# Old guide\n\nThis guide goes away in 2.0.0.\n",
    "docs/usage.md.jinja": "# Using {{ project_name }}\n\nRun `scripts/run.sh`.\n",
    "{% if use_docker %}Dockerfile{% endif %}.jinja": 'FROM python:3.11-slim\nCOPY . /app\nCMD ["python", "-m", "{{ project_name }}"]\n',
    "LICENSE": "Copyright the authors.\nAll rights reserved.\n",
    "assets/logo.bin": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01\x00\x01",
}

SVC_V2: Files = {
    **{k: v for k, v in SVC_V1.items() if k != "docs/old-guide.md"},
    "copier.yml": SVC_V1["copier.yml"].replace(  # type: ignore[union-attr]
        "_skip_if_exists:", "license:\n  type: str\n  default: MIT\n_skip_if_exists:"
    ),
    "README.md.jinja": README_V2,
    "pyproject.toml.jinja": PYPROJECT_V2,
    "src/{{ project_name }}/__init__.py.jinja": '"""{{ project_name }}."""\n__version__ = "0.2.0"\n',
    "src/{{ project_name }}/app.py.jinja": APP_V2,
    "scripts/lint.sh": ("#!/bin/sh\nruff check .\n", 0o755),
    ".env.jinja": "APP_NAME={{ project_name }}\nDEBUG=0\nPORT=8080\n",
    "{% if use_docker %}Dockerfile{% endif %}.jinja": 'FROM python:3.12-slim\nCOPY . /app\nCMD ["python", "-m", "{{ project_name }}"]\n',
    "CHANGELOG.md.jinja": "# Changelog of {{ project_name }}\n\n## 0.2.0\n\n- Port 8080.\n",
    "assets/logo.bin": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x02\x00\x02",
}

LIB_V1: Files = {
    "copier.yml": "\n".join(
        [
            "_subdirectory: template",
            "_templates_suffix: .tmpl",
            "_exclude:",
            "  - '*.orig'",
            "module:",
            "  type: str",
            "  default: mylib",
            "summary:",
            "  type: str",
            "  default: A small library",
            "",
        ]
    ),
    "template/{{ _copier_conf.answers_file }}.tmpl": ANSWERS_BODY,
    "template/setup.cfg.tmpl": "[metadata]\nname = {{ module }}\nsummary = {{ summary }}\n\n[options]\npackages = find:\n",
    "template/{{ module }}/core.py.tmpl": "def run():\n    return '{{ module }}'\n\n\ndef stop():\n    return None\n",
    "template/notes.txt": "These notes ship with version 1.\n",
    "template/tox.ini": "[tox]\nenvlist = py311\n",
    "template/Makefile": "test:\n\tpytest\n",
    "template/{{ module }}/local.py.tmpl": "SETTING = 1\n",
}

LIB_V2: Files = {
    **LIB_V1,
    # the new version excludes notes.txt: the generated projects keep theirs, untouched
    # templated settings, rendered with the answers and _copier_operation as copier update renders them:
    # the Makefile is excluded on updates only, the module's local.py is the project's once it exists
    "copier.yml": LIB_V1["copier.yml"].replace(  # type: ignore[union-attr]
        "  - '*.orig'",
        "  - '*.orig'\n  - notes.txt\n  - \"{% if _copier_operation == 'update' %}Makefile{% endif %}\"\n"
        "_skip_if_exists:\n  - '{{ module }}/local.py'",
    ),
    "template/Makefile": "test:\n\tpytest -q\n",
    "template/{{ module }}/local.py.tmpl": "SETTING = 2\n",
    "template/setup.cfg.tmpl": (
        "[metadata]\nname = {{ module }}\nsummary = {{ summary }}\nversion = 2.0\n\n[options]\npackages = find:\n"
    ),
    "template/{{ module }}/core.py.tmpl": (
        "def run():\n    return '{{ module }}'\n\n\ndef stop():\n    return 'stopped'\n"
    ),
    "template/tox.ini": "[tox]\nenvlist = py311,py312\n",
}


@dataclass(frozen=True)
class Commit:
    message: str
    # new content; None deletes; "@replace OLD|NEW" edits the file as it is
    files: Mapping[str, str | bytes | None] = field(default_factory=dict)
    modes: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    id: str
    versions: Mapping[str, Files]
    answers: Mapping[str, Any]
    commits: tuple[Commit, ...]
    to_version: str
    new_answers: Mapping[str, Any] = field(default_factory=dict)


SCENARIOS = [
    Scenario(
        id="svc-history",
        versions={"1.0.0": SVC_V1, "2.0.0": SVC_V2},
        answers={"project_name": "shop", "description": "Shop service"},
        commits=(
            Commit(
                "tune the service",
                files={
                    # pyproject: a line far from the template's changes (merges cleanly)
                    "pyproject.toml": "@replace click>=8.1|click>=8.1.7",
                    # app.py: the same lines the template changes (conflict)
                    "src/shop/app.py": "@replace def serve(port=8000):|def serve(port=9000):",
                    "Dockerfile": None,  # deleted; the template changes it
                },
            ),
            Commit(
                "local settings and our own changelog",
                files={
                    ".env": "APP_NAME=shop\nDEBUG=1\nSECRET=local\n",
                    "CHANGELOG.md": "# Our changelog\n\n- first release\n",
                    "LICENSE": "Copyright Shop Inc.\nAll rights reserved.\n",
                },
            ),
            Commit(
                "docs and helpers",
                files={
                    "README.md": "@replace Paragraph 12|Paragraph 12, extended by the team",
                    "notes/todo.txt": "ship it\n",
                },
                modes={"scripts/run.sh": 0o644},
            ),
        ),
        to_version="2.0.0",
    ),
    Scenario(
        id="svc-untouched",
        versions={"1.0.0": SVC_V1, "2.0.0": SVC_V2},
        answers={"project_name": "clean", "use_docker": False},
        commits=(),
        to_version="2.0.0",
    ),
    Scenario(
        id="lib-new-answers",
        versions={"1.0.0": LIB_V1, "2.0.0": LIB_V2},
        answers={"module": "geo"},
        commits=(
            Commit("edit core", files={"geo/core.py": "@replace return 'geo'|return 'geo!'"}),
            Commit("notes", files={"notes.txt": "These notes ship with version 1.\nAnd ours.\n"}),
            Commit("tox", files={"tox.ini": "[tox]\nenvlist = py310\n", "geo/local.py": "SETTING = 'ours'\n"}),
        ),
        to_version="2.0.0",
        new_answers={"summary": "Geometry helpers"},
    ),
]


# --- building repositories ----------------------------------------------------------------------


def git_env(home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "Fixture",
        "GIT_AUTHOR_EMAIL": "fixture@example.invalid",
        "GIT_COMMITTER_NAME": "Fixture",
        "GIT_COMMITTER_EMAIL": "fixture@example.invalid",
        "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
        "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
        "LC_ALL": "C",
    }


def git(args: list[str], cwd: Path, home: Path) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, env=git_env(home), capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode()


def write_files(root: Path, files: Files) -> None:
    for rel, value in files.items():
        content, mode = value if isinstance(value, tuple) else (value, 0o644)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        path.chmod(mode)


def build_template_repo(versions: Mapping[str, Files], root: Path, home: Path) -> Path:
    """A git repository with one commit per version (in order), each tagged with its label."""
    root.mkdir(parents=True)
    git(["init", "-q", "-b", "main"], root, home)
    for label, files in versions.items():
        for child in root.iterdir():
            if child.name != ".git":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        write_files(root, files)
        git(["add", "-A"], root, home)
        git(["commit", "-q", "-m", f"version {label}"], root, home)
        git(["tag", label], root, home)
    return root
