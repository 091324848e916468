"""Copier `_migrations`: which run for an update, how they render, and running them isolated."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apps.updates.services.copier_migrations import commands_for, migration_tasks, run_on_tree
from apps.updates.tests.trees import tree

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
