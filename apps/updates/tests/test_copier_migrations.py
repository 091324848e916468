"""Copier `_migrations`: which run for an update, how they render, and running them isolated."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apps.updates.services.copier_migrations import commands_for, migration_tasks, run_on_tree
from apps.updates.tests.trees import tree
from core.exceptions import ApplicationError

RAW = [
    "echo always-after",
    ["echo", "list-after"],
    {"command": "echo before {{ _version_from }}", "when": "{{ _stage == 'before' }}"},
    {"version": "1.5.0", "command": "echo v15 $VERSION_CURRENT"},
    {"version": "3.0.0", "command": "echo too-new"},
    {"version": "2.0.0", "before": ["echo legacy-before"], "after": ["echo legacy-after"]},
    {"command": "echo {{ name }} in {{ _copier_operation }}", "working_directory": "sub"},
]


def render(text: str, context: dict[str, Any]) -> str:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment().from_string(text).render(**context)


def argvs(stage: str, old: str = "1.0.0", new: str = "2.0.0") -> list[list[str]]:
    tasks = migration_tasks(RAW, stage=stage, old=old, new=new)
    return [list(c.argv) for c in commands_for(tasks, answers={"name": "shop"}, render=render)]


def test_after_stage_runs_plain_items_and_versions_crossed() -> None:
    assert argvs("after") == [
        ["/bin/sh", "-c", "echo always-after"],
        ["echo", "list-after"],
        ["/bin/sh", "-c", "echo v15 $VERSION_CURRENT"],
        ["/bin/sh", "-c", "echo legacy-after"],
        ["/bin/sh", "-c", "echo shop in update"],
    ]


def test_before_stage() -> None:
    assert argvs("before") == [["/bin/sh", "-c", "echo before 1.0.0"], ["/bin/sh", "-c", "echo legacy-before"]]


def test_environment_and_working_directory() -> None:
    tasks = migration_tasks(RAW, stage="after", old="1.0.0", new="2.0.0")
    commands = commands_for(tasks, answers={"name": "shop"}, render=render)
    versioned = commands[2]
    assert versioned.env["STAGE"] == "after" and versioned.env["VERSION_CURRENT"] == "1.5.0"
    assert versioned.env["VERSION_PEP440_FROM"] == "1.0.0" and versioned.env["COPIER_OPERATION"] == "update"
    assert commands[-1].cwd == "sub"


def test_no_migrations_between_labels_that_are_not_versions() -> None:
    assert migration_tasks(RAW, stage="after", old="abc1234", new="2.0.0") == []
    assert migration_tasks({"not": "a list"}, stage="after", old="1", new="2") == []


@pytest.fixture
def isolation_scratch(settings: Any) -> Iterator[None]:
    from apps.templates.services import isolation

    if not isolation.available().ok:
        pytest.skip("bubblewrap is not available here")
    folder = Path(tempfile.mkdtemp(prefix="kiln-isolation-test-"))
    folder.chmod(0o711)
    settings.KILN_ISOLATION_DIR = folder
    yield
    shutil.rmtree(folder, ignore_errors=True)


def test_commands_run_isolated_over_the_tree(isolation_scratch: None) -> None:
    from apps.templates.services.isolation import Command

    ours = tree({"setup.cfg": "[x]\n", "src/app.py": "print()\n", "keep.txt": "k\n"})
    commands = [
        Command(
            argv=["/bin/sh", "-c", "mv setup.cfg setup.cfg.old && echo $STAGE > stage.txt && chmod +x src/app.py"],
            env={"STAGE": "before"},
        ),
    ]
    migrated = run_on_tree(ours, commands, template=None, project="shop", secrets=())
    assert set(migrated.entries) == {"setup.cfg.old", "src/app.py", "keep.txt", "stage.txt"}
    assert migrated.read(["stage.txt"]) == {"stage.txt": b"before\n"}
    assert migrated.entries["keep.txt"].same(ours.entries["keep.txt"])
    assert migrated.entries["src/app.py"].mode == 0o100755


def _record_copier(settings: Any, label: str, files: dict[str, str]) -> Any:
    from apps.templates.models import TemplateSource
    from apps.templates.services import formats
    from apps.templates.services.versions import version_record_described
    from apps.updates.tests.copier_fixtures import write_files

    folder = Path(settings.KILN_TEMPLATES_DIR) / "cop" / label
    write_files(folder, files)
    return version_record_described(
        folder=folder,
        described=formats.describe(folder),
        slug="cop",
        label=label,
        source=TemplateSource.UPLOAD,
        source_path=f"cop/{label}",
        store_blobs=False,
    ).version


@pytest.mark.django_db
def test_a_trusted_copier_versions_migrations_run_around_the_update_job(
    isolation_scratch: None, cast: Any, settings: Any, tmp_path: Path
) -> None:
    """`before` runs on the repository before the merge (its result is what the merge sees),
    `after` on the merged tree; an untrusted version's migrations never run (it cannot render)."""
    from apps.projects.services.generation import generated_project_execute, generated_project_start
    from apps.templates.models import TemplateVersion
    from apps.updates.services.updates import update_execute, update_start
    from apps.updates.tests.conftest import export_to, git_refs

    answers = "{{ _copier_conf.answers_file }}.jinja"
    body = "{{ _copier_answers|to_nice_yaml }}"
    _record_copier(
        settings,
        "1.0.0",
        {"copier.yml": "name:\n  default: shop\n", "setup.cfg.jinja": "[{{ name }}]\n", answers: body},
    )
    migrations = (
        "_migrations:\n"
        "  - version: 2.0.0\n"
        "    command: mv setup.cfg legacy.cfg\n"
        "    when: \"{{ _stage == 'before' }}\"\n"
        '  - command: echo "{{ name }} $STAGE $VERSION_FROM $VERSION_TO" > MIGRATED\n'
    )
    v2 = _record_copier(
        settings,
        "2.0.0",
        {
            "copier.yml": "name:\n  default: shop\n" + migrations,
            "pyproject.toml.jinja": "[{{ name }}]\n",
            answers: body,
        },
    )
    row = generated_project_start(
        project=cast.project, template_slug="cop", parameters={}, actor=cast.alice, enqueue=False, version="1.0.0"
    )
    generated = generated_project_execute(generated_id=row.pk, owner="test:1:gen").generated
    bare = tmp_path / "cop.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    export_to(generated, cast.alice, {"provider": "git", "remote_url": f"file://{bare}"})
    with pytest.raises(ApplicationError) as refused:  # not trusted: Kiln renders nothing that runs code
        update_start(generated=generated, data={"mode": "branch"}, actor=cast.alice, enqueue=False)
    assert refused.value.code == "template_untrusted"
    TemplateVersion.objects.filter(pk=v2.pk).update(is_trusted=True)
    update, _ = update_start(generated=generated, data={"mode": "branch"}, actor=cast.alice, enqueue=False)
    done = update_execute(update_id=update.pk, owner="test:1:copier-migrations")
    assert done.status == "completed", done.error
    outcomes = {f["path"]: (f["outcome"], f.get("reason", "")) for f in done.files}
    assert outcomes["MIGRATED"] == ("added", "changed by a Copier migration")
    assert outcomes["pyproject.toml"][0] == "added"
    assert "setup.cfg" not in outcomes or outcomes["setup.cfg"][0] != "conflict"
    head = git_refs(bare)["refs/heads/kiln/update/cop-2.0.0"]
    listing = subprocess.run(
        ["git", f"--git-dir={bare}", "ls-tree", "--name-only", head], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "legacy.cfg" in listing and "setup.cfg" not in listing  # moved before the merge: the template's
    # removal of setup.cfg found nothing to delete, and the repository keeps its renamed file
    migrated = subprocess.run(
        ["git", f"--git-dir={bare}", "cat-file", "blob", f"{head}:MIGRATED"], capture_output=True, text=True, check=True
    ).stdout
    assert migrated == "shop after 1.0.0 2.0.0\n"
