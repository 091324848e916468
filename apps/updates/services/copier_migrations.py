"""Copier `_migrations` of a trusted version: commands run around the merge, in the isolation runner.

Copier runs a new version's migrations on update only (`copier/_template.py`, `migration_tasks`;
`_main.py`, `_execute_tasks`): the `before` ones on the project before it computes the user's
changes, the `after` ones on the updated project. An item is a command (string: through the
shell; list: argv), or `{command, version?, when?, working_directory?}`, or the legacy
`{version, before: [...], after: [...]}`. An item with a `version` applies when
`new >= version > old` (PEP 440); without one, on every update. `when` defaults to
`{{ _stage == "after" }}`. Commands and conditions render with the answers and `_stage`,
`_version_from`, `_version_to`, `_version_pep440_from`, `_version_pep440_to` (plus
`_version_current` and `_version_pep440_current` for versioned items) and
`_copier_operation = "update"`; the same names, upper case without the underscore, are the
command's environment (`STAGE`, `VERSION_FROM`, ...).

Kiln runs them only for a trusted version and only in the one isolation runner
(`apps/templates/services/isolation.py`), over a copy of the files (no network, no host
paths); what they leave becomes the tree the merge (before) or the commit (after) uses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from apps.projects.services.gitops import GIT_MODE_EXECUTABLE, GIT_MODE_FILE, blob_id
from apps.templates.services import isolation
from apps.templates.services.formats import _engine as engine
from apps.updates.services.merge import Entry, Tree
from core.exceptions import ApplicationError

STAGES = ("before", "after")
DEFAULT_CONDITION = '{{ _stage == "after" }}'


@dataclass(frozen=True)
class Task:
    command: str | list[str]
    extra: dict[str, Any]
    condition: Any = DEFAULT_CONDITION
    working_directory: str = "."


def _pep440(label: str) -> Version | None:
    try:
        return Version(label)
    except InvalidVersion:
        return None


def migration_tasks(raw: Any, *, stage: str, old: str, new: str) -> list[Task]:
    """The tasks of `stage` for an update from version `old` to `new`, as Copier selects them."""
    if stage not in STAGES or not isinstance(raw, list):
        return []
    low, high = _pep440(old), _pep440(new)
    if low is None or high is None:  # Copier runs migrations only between PEP 440 versions
        return []
    extra: dict[str, Any] = {
        "stage": stage,
        "version_from": old,
        "version_to": new,
        "version_pep440_from": str(low),
        "version_pep440_to": str(high),
    }
    tasks: list[Task] = []
    for item in raw:
        if isinstance(item, dict) and ("before" in item or "after" in item):  # legacy format
            current = _pep440(str(item.get("version", "")))
            if current is None or not high >= current > low:
                continue
            variables = {**extra, "version_current": str(item["version"]), "version_pep440_current": str(current)}
            tasks.extend(Task(command, variables, condition=True) for command in item.get(stage) or [])
        elif isinstance(item, (str, list)):
            tasks.append(Task(item, dict(extra)))
        elif isinstance(item, dict) and "command" in item:
            variables = dict(extra)
            if "version" in item:
                current = _pep440(str(item["version"]))
                if current is None or not high >= current > low:
                    continue
                variables.update(version_current=str(item["version"]), version_pep440_current=str(current))
            tasks.append(
                Task(
                    item["command"],
                    variables,
                    condition=item.get("when", DEFAULT_CONDITION),
                    working_directory=str(item.get("working_directory", ".")),
                )
            )
    return tasks


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "no", "off", "n", "none", "null")
    return bool(value)


def commands_for(
    tasks: Sequence[Task], *, answers: Mapping[str, Any], render: Callable[[str, dict[str, Any]], str]
) -> list[isolation.Command]:
    """Render each task's condition and command (Copier's `_execute_tasks`); those that apply."""
    commands: list[isolation.Command] = []
    for task in tasks:
        context = {**answers, **{f"_{k}": v for k, v in task.extra.items()}, "_copier_operation": "update"}
        condition = task.condition
        if isinstance(condition, str):
            condition = render(condition, context)
        if not _truthy(condition):
            continue
        if isinstance(task.command, str):
            argv = ["/bin/sh", "-c", render(task.command, context)]
        else:
            argv = [render(str(part), context) for part in task.command]
        env = {key[1:].upper(): str(value) for key, value in context.items() if key.startswith("_")}
        commands.append(isolation.Command(argv=argv, cwd=render(task.working_directory, context), env=env))
    return commands


def run_on_tree(
    tree: Tree, commands: Sequence[isolation.Command], *, template: Path | None, project: str, secrets: Sequence[str]
) -> Tree:
    """Run `commands` over a copy of `tree`'s files in the isolation runner; the tree they leave.

    Links and submodules are not files a command sees; they stay as they are.
    """
    regular = [path for path, entry in tree.entries.items() if entry.regular]
    data = tree.read(regular)
    files = engine.Output()
    for path in regular:
        mode = 0o755 if tree.entries[path].mode == GIT_MODE_EXECUTABLE else 0o644
        files.add(path, data[path], mode, source=path)
    try:
        result = isolation.run(
            commands=list(commands),
            files=files,
            project=project,
            template=template,
            stage="_migrations",
            secrets=secrets,
        )
    except ApplicationError as exc:
        exc.message = f"A Copier migration failed: {exc.message}"
        raise
    contents: dict[str, bytes] = {}
    entries: dict[str, Entry] = {p: e for p, e in tree.entries.items() if not e.regular}
    for path, content, mode in result.items():
        contents[path] = content
        entries[path] = Entry(GIT_MODE_EXECUTABLE if mode & 0o111 else GIT_MODE_FILE, blob_id(content), source=path)

    def read(sources: Sequence[str]) -> dict[str, bytes]:
        return {source: contents[source] for source in sources if source in contents}

    # a file the commands left alone keeps its blob id, so the commit changes nothing there
    return Tree(entries, read)
