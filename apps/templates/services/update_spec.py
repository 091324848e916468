"""What a native template declares about updates in `template.yaml`: `update` and `migrations`.

```yaml
update:
  skip_if_exists: [".env"]          # created when missing, never changed by updates afterwards
  exclude: ["docs/internal/"]       # never touched by updates (the repository's own)
migrations:
  - version: 2.0.0                  # applies to updates across it: from < 2.0.0 <= to
    rename: {src/old.py: src/new.py}
    delete: [setup.cfg]
    rename_answers: {project: project_name}
```

Checked when a version is recorded (an invalid one is a 400 `template_invalid` naming the key);
the update service applies them (apps/updates/services/migrations.py). Migrations are data only:
native templates never run code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.exceptions import ApplicationError
from core.safe_paths import MAX_GLOB_LENGTH, MAX_GLOBS, UnsafePath, clean_relative_path, globs_too_large

MAX_MIGRATIONS = 200
MAX_ITEMS = 2_000  # renames, deletions and answer renames over all migrations


class UpdateSpecInvalid(ApplicationError):
    status_code = 400
    default_code = "template_invalid"


@dataclass(frozen=True)
class Migration:
    version: str
    rename: tuple[tuple[str, str], ...] = ()
    delete: tuple[str, ...] = ()
    rename_answers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class UpdateSpec:
    skip_if_exists: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    migrations: tuple[Migration, ...] = ()


def _fail(where: str, key: str, message: str) -> UpdateSpecInvalid:
    return UpdateSpecInvalid(f"{where}: '{key}' {message}", extra={"key": key})


def _path(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(where, key, "must name files with non-empty paths.")
    try:
        return clean_relative_path(value)
    except UnsafePath as exc:
        raise _fail(where, key, f"has an unsafe path {value!r}: {exc.message}") from None


def parse_update_spec(data: Mapping[str, Any], *, where: str = "template.yaml") -> UpdateSpec:
    """The `update` and `migrations` keys of a manifest (a parsed mapping); 400 on anything else."""
    update = data.get("update") or {}
    if not isinstance(update, dict):
        raise _fail(where, "update", "must be a mapping (skip_if_exists).")
    unknown = sorted(set(map(str, update)) - {"skip_if_exists", "exclude"})
    if unknown:
        raise _fail(where, "update", f"has unknown keys: {', '.join(unknown)} (allowed: skip_if_exists, exclude).")
    globs = {}
    for name in ("skip_if_exists", "exclude"):
        value = update.get(name) or []
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            raise _fail(where, f"update.{name}", "must be a list of glob patterns.")
        if globs_too_large(value):
            raise _fail(
                where, f"update.{name}", f"takes at most {MAX_GLOBS} patterns of at most {MAX_GLOB_LENGTH} characters."
            )
        globs[name] = tuple(value)
    raw = data.get("migrations") or []
    if not isinstance(raw, list):
        raise _fail(where, "migrations", "must be a list of {version, rename, delete, rename_answers}.")
    if len(raw) > MAX_MIGRATIONS:
        raise _fail(where, "migrations", f"has more than {MAX_MIGRATIONS} entries.")
    migrations, items = [], 0
    for index, item in enumerate(raw):
        key = f"migrations[{index}]"
        if not isinstance(item, dict):
            raise _fail(where, key, "must be a mapping.")
        unknown = sorted(set(map(str, item)) - {"version", "rename", "delete", "rename_answers"})
        if unknown:
            raise _fail(where, key, f"has unknown keys: {', '.join(unknown)}; migrations are declarative only.")
        version = item.get("version")
        if not isinstance(version, (str, int, float)) or isinstance(version, bool) or not str(version).strip():
            raise _fail(where, f"{key}.version", "is required (the version the migration leads to).")
        rename = item.get("rename") or {}
        if not isinstance(rename, dict):
            raise _fail(where, f"{key}.rename", "must map old paths to new paths.")
        delete = item.get("delete") or []
        if not isinstance(delete, list):
            raise _fail(where, f"{key}.delete", "must be a list of paths.")
        answers = item.get("rename_answers") or {}
        if not isinstance(answers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and k and v for k, v in answers.items()
        ):
            raise _fail(where, f"{key}.rename_answers", "must map old answer names to new ones.")
        items += len(rename) + len(delete) + len(answers)
        if items > MAX_ITEMS:
            raise _fail(where, "migrations", f"name more than {MAX_ITEMS} paths and answers in all.")
        migrations.append(
            Migration(
                version=str(version).strip(),
                rename=tuple(
                    (_path(old, where, f"{key}.rename"), _path(new, where, f"{key}.rename"))
                    for old, new in rename.items()
                ),
                delete=tuple(_path(path, where, f"{key}.delete") for path in delete),
                rename_answers=tuple(answers.items()),
            )
        )
    return UpdateSpec(skip_if_exists=globs["skip_if_exists"], exclude=globs["exclude"], migrations=tuple(migrations))
