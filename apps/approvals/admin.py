"""Approvals in the admin: the plan to review, and approve / reject actions (the same services as the API).

Exports and runs carry the same two actions (apps/projects/admin.py, apps/workflows/admin.py).
An admin action approves the plan the change page shows (its recorded plan_sha256); if the job's
plan changed since, nothing runs and the admin is told.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.approvals import services
from apps.approvals.models import Approval, ApprovalStatus
from core.exceptions import ApplicationError


def decide(
    model_admin: admin.ModelAdmin[Any], request: HttpRequest, approvals: Iterable[Approval], *, approve: bool
) -> None:
    done = 0
    for approval in approvals:
        try:
            if approve:
                services.approval_approve(approval=approval, actor=request.user, plan_sha256=approval.plan_sha256)
            else:
                services.approval_reject(approval=approval, actor=request.user, comment="rejected in the admin")
            done += 1
        except ApplicationError as exc:
            model_admin.message_user(request, f"approval #{approval.pk}: {exc.message}", level=messages.WARNING)
    model_admin.message_user(request, f"{'Approved' if approve else 'Rejected'} {done} approval(s).")


def pending_of(**filters: Any) -> QuerySet[Approval]:
    return Approval.objects.filter(status=ApprovalStatus.PENDING, **filters).select_related("project")


@admin.register(Approval)
class ApprovalAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "kind",
        "status",
        "reason",
        "project",
        "export",
        "run",
        "step_id",
        "requested_by",
        "requested_at",
    )
    list_filter = ("status", "kind", "reason")
    list_select_related = ("project", "requested_by", "export", "run")
    readonly_fields = [f.name for f in Approval._meta.fields]
    actions = ["approve_selected", "reject_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Approve the plans shown (pending only)")
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[Approval]) -> None:
        decide(self, request, queryset.filter(status=ApprovalStatus.PENDING), approve=True)

    @admin.action(description="Reject (the jobs end cancelled, code rejected)")
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[Approval]) -> None:
        decide(self, request, queryset.filter(status=ApprovalStatus.PENDING), approve=False)
