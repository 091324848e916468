"""Workflows (declared steps), their runs and each step's run."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.jobs import Job
from core.models import TimeStampedModel


class Workflow(TimeStampedModel):
    name = models.CharField(max_length=100)
    project = models.ForeignKey(
        "projects.Project", null=True, blank=True, on_delete=models.CASCADE, related_name="workflows"
    )
    description = models.TextField(blank=True, default="", max_length=2000)
    inputs_schema = models.JSONField(default=dict, blank=True)
    steps = models.JSONField(default=list, help_text="[{id, type, input, if?}]")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="workflows"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class WorkflowRun(Job):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="runs")
    steps_snapshot = models.JSONField(default=list, help_text="the workflow's steps when the run started")
    inputs = models.JSONField(default=dict, blank=True)
    outputs = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="workflow_runs"
    )
    agent = models.ForeignKey("agents.Agent", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["pending", "running", "completed", "failed", "cancelled", "awaiting_approval"]),
                name="run_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"run #{self.pk} of {self.workflow}"


class StepStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    CANCELLED = "cancelled", "Cancelled"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    # a repo_creation step whose repository was deleted after a later step failed
    COMPENSATED = "compensated", "Compensated"


class StepRun(TimeStampedModel):
    run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="step_runs")
    index = models.PositiveIntegerField()
    step_id = models.CharField(max_length=64)
    type = models.CharField(max_length=64)
    status = models.CharField(max_length=32, choices=StepStatus.choices, default=StepStatus.PENDING)
    attempt = models.PositiveIntegerField(default=0)
    rendered_input = models.JSONField(null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    logs = models.JSONField(default=list, blank=True)
    checkpoints = models.JSONField(default=dict, blank=True, help_text="ids recorded by the step, for redelivery")
    compensation = models.JSONField(
        null=True, blank=True, help_text="what undoing the step did after a later step failed: {outcome, ...}"
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run_id", "index"]
        constraints = [
            models.UniqueConstraint(fields=["run", "step_id"], name="step_run_unique_step"),
            models.UniqueConstraint(fields=["run", "index"], name="step_run_unique_index"),
            models.CheckConstraint(condition=Q(status__in=StepStatus.values), name="step_run_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.step_id} ({self.status})"
