"""Every built-in template generates a real project whose own test suite passes.

Each template is generated with its defaults through Kiln's own service (the same
renderer as the API), then the generated project's tests run in a subprocess with this
virtualenv's Python.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from apps.projects.services.generation import generated_project_execute, generated_project_start
from apps.templates.services.catalog import template_sync_builtin
from tests.trees import materialised

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

COMMANDS: dict[str, list[list[str]]] = {
    "python-package": [
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        [sys.executable, "-m", "compileall", "-q", "src"],
    ],
    "django-rest-service": [
        [sys.executable, "manage.py", "test", "-v", "1"],
        [sys.executable, "manage.py", "makemigrations", "--check", "--dry-run"],
    ],
    "fastapi-service": [[sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]],
}


def test_every_builtin_template_has_a_check():
    synced = {t.slug for t in template_sync_builtin()}
    assert synced == set(COMMANDS), "add the new built-in template to COMMANDS"


@pytest.mark.parametrize("slug", sorted(COMMANDS))
def test_generated_project_passes_its_own_tests(slug, cast, tmp_path):
    template_sync_builtin()
    row = generated_project_start(
        project=cast.project, template_slug=slug, parameters={}, actor=cast.alice, enqueue=False
    )
    generated = generated_project_execute(generated_id=row.pk, owner=f"t:1:{slug}").generated
    assert generated.status == "completed", generated.error
    root = materialised(generated)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_URL", "CELERY_", "KILN_", "PYTEST_"))
    }
    env["PYTHONPATH"] = str(root / "src") if (root / "src").is_dir() else str(root)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    for command in COMMANDS[slug]:
        result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, (
            f"{' '.join(command)} failed in {slug}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    assert (Path(root) / "README.md").is_file()
