"""Drift: where every repository made from a template stands against the template's latest version."""

from __future__ import annotations

from typing import Any

from apps.templates.services.catalog import template_get
from apps.updates.models import TemplateUpdate
from apps.updates.services import versions
from apps.updates.services.targets import targets_of
from core.jobs import ACTIVE_STATUSES


def drift_rows(*, template_slug: str, actor: Any) -> list[dict[str, Any]]:
    """One row per target in the caller's projects: the version its default branch holds (as last
    observed), the latest version, and the update under way or whose result awaits review."""
    template = template_get(slug=template_slug)
    latest = versions.latest_label(template)
    positions = versions.version_positions(template)
    targets = targets_of(template, actor=actor)
    running: dict[int, TemplateUpdate] = {}
    rows = TemplateUpdate.objects.filter(
        export_id__in=[t.export.pk for t in targets], status__in=ACTIVE_STATUSES
    ).order_by("export_id", "-created_at", "-id")
    for row in rows:
        running.setdefault(row.export_id, row)
    result = []
    for target in targets:
        update: TemplateUpdate | None = running.get(target.export.pk) or target.open_update
        version = target.generated.template_version
        result.append(
            {
                "project": target.export.generated.project_id,
                "generated": target.generated.pk,
                "export": target.export.pk,
                "provider": target.export.provider,
                "remote_url": target.export.web_url or target.export.remote_url,
                "version": version,
                "latest_version": latest,
                "behind": versions.is_behind(version, latest, positions),
                "open_update": None
                if update is None
                else {
                    "id": update.pk,
                    "status": update.status,
                    "to_version": update.to_version,
                    "branch": update.branch,
                    "pull_request": update.pull_request or None,
                },
            }
        )
    return result
