"""Approval gates: a job (an export, a workflow run's step) that stops until a person approves its plan.

An `Approval` records the exact plan shown to the approver (the rendered step input, the target,
the manifest hash of the files) and its `plan_sha256`. Approving with a different hash (the plan
changed since it was shown) runs nothing. Each kind of gated job is one module in
`apps/approvals/kinds/` (the registry): how to compute its plan, resume it, end it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.models import TimeStampedModel


class ApprovalStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    WITHDRAWN = "withdrawn", "Withdrawn (the job was cancelled or retried)"


class ApprovalReason(models.TextChoices):
    REQUIRES_APPROVAL = "requires_approval", "The workflow step requires approval"
    AGENT_EXPORT = "agent_export", "An agent's export to GitHub/GitLab (the project requires approval)"


class Approval(TimeStampedModel):
    # the project whose maintainers decide (none for a step of a personal workflow: its creator decides)
    project = models.ForeignKey(
        "projects.Project", null=True, blank=True, on_delete=models.CASCADE, related_name="approvals"
    )
    kind = models.CharField(max_length=32, help_text="the gated job's kind: export | run_step")
    export = models.ForeignKey(
        "projects.RepositoryExport", null=True, blank=True, on_delete=models.CASCADE, related_name="approvals"
    )
    run = models.ForeignKey(
        "workflows.WorkflowRun", null=True, blank=True, on_delete=models.CASCADE, related_name="approvals"
    )
    step_id = models.CharField(max_length=64, blank=True, default="")
    attempt = models.PositiveIntegerField(default=1, help_text="the job's attempt this approval is for")
    reason = models.CharField(max_length=32, choices=ApprovalReason.choices)
    plan = models.JSONField(help_text="what runs once approved, exactly")
    plan_sha256 = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="approvals_requested"
    )
    requested_at = models.DateTimeField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="approvals_decided"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(blank=True, default="", max_length=2000)

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind="export", export__isnull=False, run__isnull=True))
                | (Q(kind="run_step", run__isnull=False, export__isnull=True) & ~Q(step_id="")),
                name="approval_has_one_job",
            ),
            models.CheckConstraint(condition=Q(status__in=ApprovalStatus.values), name="approval_status_valid"),
            models.UniqueConstraint(
                fields=["export"],
                condition=Q(status="pending", export__isnull=False),
                name="approval_one_pending_export",
            ),
            models.UniqueConstraint(
                fields=["run", "step_id", "attempt"],
                condition=Q(run__isnull=False),
                name="approval_one_per_run_step_attempt",
            ),
        ]
        indexes = [models.Index(fields=["project", "status"], name="approval_project_status")]

    def __str__(self) -> str:
        job = f"export #{self.export_id}" if self.export_id else f"run #{self.run_id} step {self.step_id}"
        return f"approval of {job} ({self.status})"
