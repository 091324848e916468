"""Pages for approvals: the pending approvals a person may decide, each with its exact plan, and
the decisions. Thin callers of apps.approvals.services, as the API views: `approvals_visible_to`
scopes the rows (someone who may not decide gets 404), `approval_approve` runs the plan only
when the plan_sha256 the page showed is still the job's plan.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.approvals import services
from apps.approvals.models import Approval, ApprovalStatus
from apps.web import highlight
from core.exceptions import ApplicationError

LISTED = 100


def _visible(request: HttpRequest) -> Any:
    return services.approvals_visible_to(request.user).select_related("run__workflow", "export__generated")


def _approval(request: HttpRequest, approval_id: int) -> Approval:
    approval = _visible(request).filter(pk=approval_id).first()
    if approval is None:
        raise Http404("Approval not found.")
    return approval


def job_link(approval: Approval) -> tuple[str, str]:
    """(label, href) of the gated job: an export on its generation's page, a run in the API."""
    if approval.export is not None:
        generated = approval.export.generated
        href = reverse("web:generation", args=[generated.project_id, generated.pk]) + "#exports"
        return f"Export #{approval.export_id} of generation #{generated.pk}", href
    return f"Run #{approval.run_id}, step {approval.step_id}", f"/api/v1/runs/{approval.run_id}/"


def requester(approval: Approval) -> str:
    user = approval.requested_by
    if user is None:
        return "(unknown)"
    agent = getattr(user, "agent_identity", None)
    return f"agent:{agent.name}" if agent is not None else user.get_username()


@login_required
def approval_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", ApprovalStatus.PENDING)
    if status not in ApprovalStatus.values:
        status = ApprovalStatus.PENDING
    rows = list(_visible(request).filter(status=status).order_by("-requested_at", "-id")[:LISTED])
    entries = [{"approval": a, "job": job_link(a), "requested_by": requester(a)} for a in rows]
    return render(
        request,
        "web/approvals.html",
        {"entries": entries, "status": status, "statuses": ApprovalStatus.choices, "nav": "approvals"},
    )


@login_required
def approval_page(request: HttpRequest, approval_id: int) -> HttpResponse:
    approval = _approval(request, approval_id)
    plan = json.dumps(approval.plan, indent=2, sort_keys=True, ensure_ascii=False)
    return render(
        request,
        "web/approval.html",
        {
            "approval": approval,
            "job": job_link(approval),
            "requested_by": requester(approval),
            "plan_html": highlight.to_html("plan.json", plan),
            "why_not": services.can_decide(request.user, approval),
            "nav": "approvals",
        },
    )


@login_required
@require_POST
def approval_approve_page(request: HttpRequest, approval_id: int) -> HttpResponse:
    approval = _approval(request, approval_id)
    try:
        services.approval_approve(approval=approval, actor=request.user, plan_sha256=request.POST.get("plan_sha256"))
    except ApplicationError as exc:
        if exc.code == "plan_changed":
            messages.error(request, f"{exc.message} The current plan is shown below.")
        else:
            messages.error(request, exc.message)
        return redirect("web:approval", approval_id=approval.pk)
    messages.success(request, f"Approved: {job_link(approval)[0]} runs the plan {approval.plan_sha256[:12]}….")
    return redirect("web:approval", approval_id=approval.pk)


@login_required
@require_POST
def approval_reject_page(request: HttpRequest, approval_id: int) -> HttpResponse:
    approval = _approval(request, approval_id)
    try:
        services.approval_reject(
            approval=approval, actor=request.user, comment=request.POST.get("comment", "").strip()[:2000]
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("web:approval", approval_id=approval.pk)
    messages.success(request, f"Rejected: {job_link(approval)[0]} is cancelled.")
    return redirect("web:approval", approval_id=approval.pk)
