"""HTTP shapes of approvals: the `approval` object of exports and runs, the list, the decisions."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.approvals.models import Approval, ApprovalReason, ApprovalStatus
from core.serializers import StrictCharField, StrictInputSerializer


class ApprovalSummarySerializer(serializers.Serializer):
    """The approval of an export or run: the plan the approver decides on and its hash."""

    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=ApprovalStatus.choices)
    reason = serializers.ChoiceField(choices=ApprovalReason.choices)
    step = serializers.SerializerMethodField(help_text="the workflow step that waits (runs only)")
    plan = serializers.JSONField(help_text="what runs once approved: the rendered input, the target, the files")
    plan_sha256 = serializers.CharField(help_text="sha256 of the plan's canonical JSON; approve with it")
    requested_at = serializers.DateTimeField()
    decided_by = serializers.CharField(source="decided_by.username", allow_null=True, default=None)
    decided_at = serializers.DateTimeField(allow_null=True)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_step(self, obj: Approval) -> str | None:
        return obj.step_id or None


def latest_approval(obj: Any) -> dict[str, Any] | None:
    """The export's or run's newest approval (from a prefetch when there is one), or None."""
    rows = list(obj.approvals.all())
    if not rows:
        return None
    latest = max(rows, key=lambda a: (a.requested_at, a.pk))
    return dict(ApprovalSummarySerializer(latest).data)


class ApprovalSerializer(serializers.ModelSerializer):
    requested_by = serializers.SerializerMethodField()
    decided_by = serializers.CharField(source="decided_by.username", allow_null=True, default=None)
    generated = serializers.IntegerField(source="export.generated_id", allow_null=True, default=None)
    job_status = serializers.SerializerMethodField()

    class Meta:
        model = Approval
        fields = [
            "id",
            "kind",
            "status",
            "reason",
            "project",
            "generated",
            "export",
            "run",
            "step_id",
            "job_status",
            "plan",
            "plan_sha256",
            "requested_by",
            "requested_at",
            "decided_by",
            "decided_at",
            "comment",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_requested_by(self, obj: Approval) -> str | None:
        user = obj.requested_by
        if user is None:
            return None
        agent = getattr(user, "agent_identity", None)
        return f"agent:{agent.name}" if agent is not None else user.get_username()

    @extend_schema_field(serializers.CharField())
    def get_job_status(self, obj: Approval) -> str:
        job = obj.export if obj.export_id else obj.run
        return str(job.status) if job is not None else ""


class ApprovalDecisionSerializer(StrictInputSerializer):
    plan_sha256 = StrictCharField(
        min_length=64, max_length=64, help_text="the plan_sha256 of the plan you reviewed and approve"
    )


class ApprovalRejectSerializer(StrictInputSerializer):
    comment = StrictCharField(required=False, allow_blank=True, max_length=2000, default="")
