from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.approvals.serializers import ApprovalSummarySerializer, latest_approval
from apps.projects.serializers import JobErrorSerializer
from apps.workflows.models import StepRun, Workflow, WorkflowRun
from core.serializers import JSONObjectField, StrictInputSerializer, id_field, name_field, validate_display_name


class WorkflowSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True)

    class Meta:
        model = Workflow
        fields = [
            "id",
            "name",
            "project",
            "description",
            "inputs_schema",
            "steps",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class WorkflowCreateSerializer(StrictInputSerializer):
    name = name_field()
    project = id_field(required=False, allow_null=True)
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")
    inputs_schema = JSONObjectField(required=False, default=dict)
    steps = serializers.ListField(
        child=serializers.JSONField(), min_length=1, max_length=50, help_text="[{id, type, input, if?}]"
    )

    def validate_name(self, value: str) -> str:
        return validate_display_name(value)


class WorkflowUpdateSerializer(WorkflowCreateSerializer):
    name = name_field(required=False)
    steps = serializers.ListField(child=serializers.JSONField(), min_length=1, max_length=50, required=False)
    inputs_schema = JSONObjectField(required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    project = None  # type: ignore[assignment]


class StepRunSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="step_id", read_only=True)
    error = JobErrorSerializer(allow_null=True, read_only=True)

    class Meta:
        model = StepRun
        fields = [
            "id",
            "type",
            "status",
            "attempt",
            "rendered_input",
            "output",
            "error",
            "compensation",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class WorkflowRunSerializer(serializers.ModelSerializer):
    steps = serializers.SerializerMethodField()
    error = JobErrorSerializer(allow_null=True, read_only=True)
    approval = serializers.SerializerMethodField()
    actor = serializers.CharField(source="actor.username", read_only=True, allow_null=True)

    class Meta:
        model = WorkflowRun
        fields = [
            "id",
            "workflow",
            "status",
            "inputs",
            "outputs",
            "steps",
            "error",
            "approval",
            "attempts",
            "actor",
            "agent",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    @extend_schema_field(ApprovalSummarySerializer(allow_null=True))
    def get_approval(self, obj: WorkflowRun) -> dict[str, Any] | None:
        return latest_approval(obj)

    @extend_schema_field(StepRunSerializer(many=True))
    def get_steps(self, obj: WorkflowRun) -> list[dict[str, Any]]:
        return StepRunSerializer(obj.step_runs.all(), many=True).data  # type: ignore[return-value]


class RunStartSerializer(StrictInputSerializer):
    inputs = JSONObjectField(required=False, default=dict)
    agent = id_field(required=False, help_text="run as this agent (one of yours)")


class StepLogSerializer(serializers.Serializer):
    id = serializers.CharField()
    status = serializers.CharField()
    attempt = serializers.IntegerField()
    logs = serializers.ListField(child=serializers.CharField())


class RunLogsSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    steps = StepLogSerializer(many=True)
