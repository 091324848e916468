"""Audit events for approvals: requested, approved, rejected, withdrawn (a side concern: signals)."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from apps.approvals.models import Approval, ApprovalStatus

ACTIONS = {
    ApprovalStatus.APPROVED: "approval.approved",
    ApprovalStatus.REJECTED: "approval.rejected",
    ApprovalStatus.WITHDRAWN: "approval.withdrawn",
}


@receiver(post_save, sender=Approval, dispatch_uid="approval_post_save")
def approval_post_save(
    sender: Any, instance: Approval, created: bool, update_fields: Any = None, **kwargs: Any
) -> None:
    from apps.projects.signals import audit

    job = {"export": instance.export_id} if instance.export_id else {"run": instance.run_id, "step": instance.step_id}
    if created:
        audit(
            "approval.requested",
            obj=instance,
            project_id=instance.project_id,
            actor=instance.requested_by,
            reason=instance.reason,
            plan_sha256=instance.plan_sha256,
            **job,
        )
    elif update_fields and "status" in update_fields and instance.status in ACTIONS:
        audit(
            ACTIONS[ApprovalStatus(instance.status)],
            obj=instance,
            project_id=instance.project_id,
            actor=instance.decided_by,
            plan_sha256=instance.plan_sha256,
            comment=instance.comment,
            **job,
        )
