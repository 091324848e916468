"""HTTP shapes of the projects app. Input and output serializers are separate."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.approvals.serializers import ApprovalSummarySerializer, latest_approval
from apps.projects.models import (
    AuditEvent,
    ExportProvider,
    GeneratedProject,
    Project,
    ProjectFile,
    ProjectMembership,
    Provider,
    ProviderConnection,
    RepositoryExport,
    Role,
)
from core.serializers import JSONObjectField, StrictInputSerializer, id_field, name_field, validate_display_name


class ProjectSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)

    class Meta:
        model = Project
        fields = [
            "id",
            "name",
            "slug",
            "description",
            "owner",
            "agent_exports_require_approval",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ProjectCreateSerializer(StrictInputSerializer):
    name = name_field()
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")

    def validate_name(self, value: str) -> str:
        return validate_display_name(value)


class ProjectUpdateSerializer(ProjectCreateSerializer):
    name = name_field(required=False)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    agent_exports_require_approval = serializers.BooleanField(
        required=False, help_text="owner only, and never an agent: agents' GitHub/GitLab exports wait for approval"
    )


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = ProjectMembership
        fields = ["id", "username", "role", "created_at"]
        read_only_fields = fields


class MembershipCreateSerializer(StrictInputSerializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)


class ProgressSerializer(serializers.Serializer):
    done = serializers.IntegerField()
    total = serializers.IntegerField()


class JobErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    extra = serializers.DictField(required=False)


class GeneratedProjectSerializer(serializers.ModelSerializer):
    template = serializers.CharField(source="template.slug", read_only=True)
    progress = serializers.SerializerMethodField()
    error = JobErrorSerializer(allow_null=True, read_only=True)
    created_by = serializers.SerializerMethodField()

    class Meta:
        model = GeneratedProject
        fields = [
            "id",
            "project",
            "template",
            "template_version",
            "parameters",
            "status",
            "progress",
            "file_count",
            "total_bytes",
            "content_sha256",
            "error",
            "attempts",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, obj: GeneratedProject) -> dict[str, int]:
        return {"done": obj.progress_done, "total": obj.progress_total}

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_created_by(self, obj: GeneratedProject) -> str | None:
        return obj.created_by.username if obj.created_by else None


class GeneratedProjectCreateSerializer(StrictInputSerializer):
    template = serializers.CharField(max_length=100, help_text="template slug")
    version = serializers.CharField(
        max_length=50, required=False, help_text="the template version's label (default: the latest)"
    )
    parameters = JSONObjectField(required=False, default=dict, help_text="values for the template's parameters")
    dry_run = serializers.BooleanField(required=False, default=False, help_text="render without storing anything")


class ManifestFileSerializer(serializers.Serializer):
    path = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()
    mode = serializers.IntegerField()
    is_binary = serializers.BooleanField()


class DryRunSerializer(serializers.Serializer):
    files = ManifestFileSerializer(many=True)
    file_count = serializers.IntegerField()
    total_bytes = serializers.IntegerField()
    content_sha256 = serializers.CharField()


class ProjectFileSerializer(serializers.ModelSerializer):
    class Meta:
        model = ProjectFile
        fields = ["id", "path", "size", "sha256", "mode", "is_binary"]
        read_only_fields = fields


class ArchiveSerializer(serializers.Serializer):
    size = serializers.IntegerField()
    sha256 = serializers.CharField()


class RepositoryExportSerializer(serializers.ModelSerializer):
    archive = serializers.SerializerMethodField()
    error = JobErrorSerializer(allow_null=True, read_only=True)
    approval = serializers.SerializerMethodField()

    class Meta:
        model = RepositoryExport
        fields = [
            "id",
            "generated",
            "provider",
            "connection",
            "target",
            "status",
            "remote_url",
            "web_url",
            "branch",
            "commit_sha",
            "pushed",
            "archive",
            "error",
            "approval",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    @extend_schema_field(ApprovalSummarySerializer(allow_null=True))
    def get_approval(self, obj: RepositoryExport) -> dict[str, Any] | None:
        return latest_approval(obj)

    @extend_schema_field(ArchiveSerializer(allow_null=True))
    def get_archive(self, obj: RepositoryExport) -> dict[str, Any] | None:
        if not obj.archive_path:
            return None
        return {"size": obj.archive_size, "sha256": obj.archive_sha256}


class RepositoryTargetSerializer(StrictInputSerializer):
    owner = serializers.CharField(
        required=False, max_length=100, help_text="GitHub organisation (default: the token's user)"
    )
    namespace = serializers.CharField(
        required=False, max_length=1000, help_text="GitLab group path, e.g. acme/platform"
    )
    name = serializers.CharField(max_length=100)
    visibility = serializers.ChoiceField(choices=["private", "public", "internal"], required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    default_branch = serializers.CharField(required=False, max_length=200)
    topics = serializers.ListField(child=serializers.CharField(max_length=50), required=False, max_length=20)


class RepositoryExportCreateSerializer(StrictInputSerializer):
    provider = serializers.ChoiceField(choices=ExportProvider.choices)
    connection = id_field(required=False)
    repository = RepositoryTargetSerializer(required=False)
    remote_url = serializers.CharField(required=False, max_length=2000)
    branch = serializers.CharField(required=False, max_length=200)


class ConnectionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ProviderConnection
        fields = ["id", "provider", "name", "base_url", "token_hint", "account", "verified_at", "created_at"]
        read_only_fields = fields


class ConnectionCreateSerializer(StrictInputSerializer):
    provider = serializers.ChoiceField(choices=Provider.choices)
    name = name_field()
    base_url = serializers.CharField(required=False, allow_blank=True, max_length=500)
    token = serializers.CharField(
        write_only=True, max_length=500, trim_whitespace=True, style={"input_type": "password"}
    )

    def validate_name(self, value: str) -> str:
        return validate_display_name(value)


class ConnectionVerifySerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    account = serializers.CharField()
    verified_at = serializers.DateTimeField()


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["id", "action", "actor_label", "object_type", "object_id", "detail", "request_id", "created_at"]
        read_only_fields = fields
