"""Pages for a template's fleet: where each repository made from it stands (drift), its
rollouts, and one rollout's items. Thin callers of apps/updates' services, as the API views:
the drift and the targets are the caller's projects only; `rollout_start` checks the roles.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.events.services import job_log_lines
from apps.projects.selectors import projects_visible_to
from apps.templates.services.catalog import template_get
from apps.templates.services.versions import versions_of
from apps.updates.models import Rollout, UpdateMode
from apps.updates.services import drift, rollouts
from core.exceptions import ApplicationError
from core.jobs import TERMINAL_STATUSES

ROLLOUTS_SHOWN = 50


def _template(slug: str) -> Any:
    try:
        return template_get(slug=slug)
    except ApplicationError:
        raise Http404("Template not found.") from None


@login_required
def fleet_page(request: HttpRequest, slug: str) -> HttpResponse:
    template = _template(slug)
    rows = drift.drift_rows(template_slug=template.slug, actor=request.user)
    names = dict(
        projects_visible_to(request.user).filter(pk__in={r["project"] for r in rows}).values_list("pk", "name")
    )
    for row in rows:
        row["project_name"] = names.get(row["project"], f"#{row['project']}")
    started = [r for r in rollouts.rollouts_visible_to(request.user) if r.template_id == template.pk]
    return render(
        request,
        "web/fleet.html",
        {
            "template": template,
            "rows": rows,
            "behind": sum(1 for r in rows if r["behind"]),
            "rollouts": started[:ROLLOUTS_SHOWN],
            "modes": UpdateMode.choices,
            "template_versions": list(versions_of(template).values_list("version", flat=True)[:100]),
        },
    )


@login_required
@require_POST
def rollout_start_page(request: HttpRequest, slug: str) -> HttpResponse:
    template = _template(slug)
    data: dict[str, Any] = {"mode": request.POST.get("mode", "")}
    if request.POST.get("to_version", "").strip():
        data["to_version"] = request.POST["to_version"].strip()
    try:
        rollout, _ = rollouts.rollout_start(template_slug=template.slug, data=data, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("web:fleet", slug=template.slug)
    return redirect("web:rollout", rollout_id=rollout.pk)


@login_required
def rollout_page(request: HttpRequest, rollout_id: int) -> HttpResponse:
    try:
        rollout: Rollout = rollouts.rollout_get(pk=rollout_id, actor=request.user)
    except ApplicationError:
        raise Http404("Rollout not found.") from None
    items = list(rollouts.items_visible(rollout, request.user).select_related("project", "export", "update"))
    return render(
        request,
        "web/rollout.html",
        {
            "rollout": rollout,
            "template": rollout.template,
            "items": items,
            "skipped": rollouts.skipped_projects(rollout, request.user),
            "finished": rollout.status in TERMINAL_STATUSES,
            "api": f"/api/v1/rollouts/{rollout.pk}/",
            "logs": job_log_lines(model=Rollout, pk=rollout.pk, limit=500),
        },
    )
