"""Which rows point at blobs. Each app registers its own (model, field) pairs in its `ready()`;
the sweeper deletes a blob only when no registered row points at it.

    register_blob_reference("generated files", "projects.ProjectFile", "sha256")
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.apps import apps
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.expressions import Combinable


@dataclass(frozen=True)
class BlobReference:
    name: str
    model: str  # "app_label.ModelName"
    field: str  # a CharField holding sha256 hex digests ("" where the row has no blob)

    def queryset(self, ignoring: Q | None = None) -> QuerySet:  # type: ignore[type-arg]
        rows = apps.get_model(self.model)._default_manager.all()
        return rows.exclude(ignoring) if ignoring is not None else rows


REFERENCES: dict[str, BlobReference] = {}


def register_blob_reference(name: str, model: str, field: str) -> None:
    existing = REFERENCES.get(name)
    if existing is not None and existing != BlobReference(name, model, field):
        raise RuntimeError(f"blob reference '{name}' registered twice")
    REFERENCES[name] = BlobReference(name, model, field)


def unreferenced_conditions(ignoring: dict[str, Q] | None = None) -> list[Combinable]:
    """Filters for `Blob` rows that no registered row points at (rows matching `ignoring[name]` left out)."""
    ignoring = ignoring or {}
    return [
        ~Exists(ref.queryset(ignoring.get(name)).filter(**{ref.field: OuterRef("sha256")}))
        for name, ref in REFERENCES.items()
    ]


def referenced_among(sha256s: Iterable[str]) -> set[str]:
    """Which of these blobs some registered row points at (one indexed query per kind)."""
    wanted = list(sha256s)
    found: set[str] = set()
    for ref in REFERENCES.values():
        for start in range(0, len(wanted), 1000):
            batch = wanted[start : start + 1000]
            found.update(ref.queryset().filter(**{f"{ref.field}__in": batch}).values_list(ref.field, flat=True))
    return found
