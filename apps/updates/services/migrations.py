"""Declarative migrations between template versions, applied to an update.

A native template may say in `template.yaml` (read by apps/templates/services/update_spec.py):

```yaml
update:
  skip_if_exists: [".env", "config/local.*"]   # created when missing, never changed afterwards
  exclude: ["docs/internal/"]                  # never touched by updates (the repository's own)
migrations:
  - version: 2.0.0                           # applies when updating across it: from < 2.0.0 <= to
    rename: {src/old_name.py: src/new_name.py}
    delete: [setup.cfg]
    rename_answers: {project: project_name}
```

Migrations are data, not code, so they run server-side for every version: `rename_answers`
renames the recorded answers before the new version is rendered; `rename` moves a path in both
the last render (*base*) and the repository (*ours*) before the merge, so the repository's own
changes to a renamed file merge into it at its new place; `delete` removes a path from the
repository (and from *base*). Copier templates declare `_migrations` (commands) instead; those
run only for trusted versions, in the isolation runner (`copier_migrations`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from packaging.version import InvalidVersion, Version

from apps.templates.services.update_spec import Migration
from apps.updates.services.merge import Entry, Outcome, PathOutcome, Tree


def version_sort_key(positions: Mapping[str, int]) -> Callable[[str], tuple[int, Any]]:
    """Orders version labels as the template orders its versions (`apps.templates.versioning`):
    labels that read as PEP 440 versions by `packaging.version` (as Copier orders tags), above
    labels that do not (a short commit), which order by their recorded position; a label that is
    neither compares with nothing."""

    def key(label: str) -> tuple[int, Any]:
        try:
            return (1, Version(label))
        except InvalidVersion:
            if label in positions:
                return (0, positions[label])
            return (2, label)

    return key


def between(
    migrations: Sequence[Migration], *, old: str, new: str, positions: Mapping[str, int] | None = None
) -> list[Migration]:
    """The migrations an update from `old` to `new` crosses (old < version <= new), in order.

    Versions compare as PEP 440 versions (as Copier does), labels that are not versions by the
    template's recorded order; a migration whose version compares with neither is skipped.
    """
    key = version_sort_key(positions or {})
    low, high = key(old), key(new)
    if low[0] == 2 or high[0] == 2:  # a label that is neither a version nor recorded
        return []
    chosen = [m for m in migrations if key(m.version)[0] != 2 and low < key(m.version) <= high]
    return sorted(chosen, key=lambda m: key(m.version))


def migrate_answers(migrations: Sequence[Migration], answers: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(answers)
    for migration in migrations:
        for old, new in migration.rename_answers:
            if old in result and new not in result:
                result[new] = result.pop(old)
    return result


@dataclass
class MigratedTrees:
    base: Tree
    ours: Tree
    renamed: dict[str, str] = field(default_factory=dict)  # new path → old path (in the repository)
    deleted: list[str] = field(default_factory=list)  # deleted from the repository by a migration


def migrate_trees(migrations: Sequence[Migration], *, base: Tree, ours: Tree) -> MigratedTrees:
    """Apply renames and deletions to *base* and *ours* (see the module docstring).

    A rename whose old path is absent, or whose new path is taken, in a tree leaves that tree
    alone at that path; the merge then treats the paths as any other.
    """
    base_entries: dict[str, Entry] = dict(base.entries)
    ours_entries: dict[str, Entry] = dict(ours.entries)
    renamed: dict[str, str] = {}
    deleted: list[str] = []
    for migration in migrations:
        for old, new in migration.rename:
            for entries in (base_entries, ours_entries):
                moved = _moves(entries, old, new)
                for source, target in moved:
                    entries[target] = entries.pop(source)
                    if entries is ours_entries:
                        renamed[target] = renamed.pop(source, source)
        for path in migration.delete:
            for entries in (base_entries, ours_entries):
                gone = [p for p in entries if p == path or p.startswith(path.rstrip("/") + "/")]
                for p in gone:
                    del entries[p]
                    if entries is ours_entries:
                        deleted.append(renamed.pop(p, p))
    return MigratedTrees(base.with_entries(base_entries), ours.with_entries(ours_entries), renamed, deleted)


def _moves(entries: Mapping[str, Entry], old: str, new: str) -> list[tuple[str, str]]:
    """(source, target) pairs for renaming a file or a folder `old` to `new` in `entries`."""
    if old in entries:
        return [] if new in entries else [(old, new)]
    prefix = old.rstrip("/") + "/"
    moves = [(p, new.rstrip("/") + "/" + p[len(prefix) :]) for p in entries if p.startswith(prefix)]
    if any(target in entries for _, target in moves):
        return []
    return moves


def migration_outcomes(migrated: MigratedTrees, merged: Sequence[PathOutcome]) -> list[PathOutcome]:
    """The merge's report with the migrations' own work added (renamed-from, deleted)."""
    report = []
    for item in merged:
        if item.path in migrated.renamed:
            item.renamed_from = migrated.renamed[item.path]
        report.append(item)
    known = {item.path for item in report}
    for path in migrated.deleted:
        if path not in known:
            report.append(PathOutcome(path, Outcome.DELETED, "removed by a migration"))
    return report
