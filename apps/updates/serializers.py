"""Input and output shapes of the updates API (API.md § Updates, rollouts, drift)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.projects.serializers import JobErrorSerializer, ProgressSerializer, RepositoryTargetSerializer
from apps.updates.models import Adoption, Rollout, RolloutItem, TemplateUpdate, UpdateMode
from core.serializers import JSONObjectField, StrictInputSerializer, id_field


class PullRequestSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    url = serializers.CharField()


class FileOutcomeSerializer(serializers.Serializer):
    path = serializers.CharField()
    outcome = serializers.ChoiceField(
        choices=["unchanged", "updated", "merged", "conflict", "added", "deleted", "kept_deleted", "kept"]
    )
    reason = serializers.CharField(required=False)
    renamed_from = serializers.CharField(required=False)


class UpdateCreateSerializer(StrictInputSerializer):
    to_version = serializers.CharField(required=False, max_length=100, help_text="default: the latest version")
    parameters = JSONObjectField(required=False, default=dict, help_text="answers to change; new questions default")
    export = id_field(required=False, help_text="the export whose repository is updated (default: the latest)")
    mode = serializers.ChoiceField(choices=UpdateMode.choices, default=UpdateMode.PULL_REQUEST)


class UpdateSerializer(serializers.ModelSerializer):
    pull_request = serializers.SerializerMethodField()
    files = FileOutcomeSerializer(many=True, read_only=True)
    conflicts = serializers.ListField(child=serializers.CharField(), read_only=True)
    error = JobErrorSerializer(allow_null=True, read_only=True)
    progress = serializers.SerializerMethodField()

    class Meta:
        model = TemplateUpdate
        fields = [
            "id",
            "status",
            "mode",
            "generated",
            "from_version",
            "to_version",
            "parameters",
            "export",
            "branch",
            "base_commit",
            "commit_sha",
            "pushed",
            "outcome",
            "pull_request",
            "new_generation",
            "files",
            "conflicts",
            "diff_size",
            "progress",
            "error",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    @extend_schema_field(PullRequestSerializer(allow_null=True))
    def get_pull_request(self, obj: TemplateUpdate) -> dict[str, Any] | None:
        return obj.pull_request or None

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, obj: TemplateUpdate) -> dict[str, int]:
        return {"done": obj.progress_done, "total": obj.progress_total}


class RolloutCreateSerializer(StrictInputSerializer):
    to_version = serializers.CharField(required=False, max_length=100, help_text="default: the latest version")
    mode = serializers.ChoiceField(choices=UpdateMode.choices)
    projects = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, max_length=500, help_text="default: all yours"
    )


class RolloutItemSerializer(serializers.ModelSerializer):
    pull_request = serializers.SerializerMethodField()
    error = JobErrorSerializer(allow_null=True, read_only=True)

    class Meta:
        model = RolloutItem
        fields = ["project", "generated", "export", "update", "status", "outcome", "pull_request", "error"]
        read_only_fields = fields

    @extend_schema_field(PullRequestSerializer(allow_null=True))
    def get_pull_request(self, obj: RolloutItem) -> dict[str, Any] | None:
        return obj.pull_request or None


class SkippedProjectSerializer(serializers.Serializer):
    project = serializers.IntegerField()
    reason = serializers.CharField()


class RolloutSerializer(serializers.ModelSerializer):
    template: serializers.SlugRelatedField = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    progress = serializers.SerializerMethodField()
    error = JobErrorSerializer(allow_null=True, read_only=True)

    class Meta:
        model = Rollout
        fields = [
            "id",
            "template",
            "to_version",
            "mode",
            "projects",
            "status",
            "progress",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, obj: Rollout) -> dict[str, int]:
        return {"done": obj.progress_done, "total": obj.progress_total}


class RolloutDetailSerializer(RolloutSerializer):
    items = serializers.SerializerMethodField()
    skipped = serializers.SerializerMethodField()

    class Meta(RolloutSerializer.Meta):
        fields = [*RolloutSerializer.Meta.fields, "items", "skipped"]
        read_only_fields = fields

    @extend_schema_field(RolloutItemSerializer(many=True))
    def get_items(self, obj: Rollout) -> list[dict[str, Any]]:
        return RolloutItemSerializer(self.context["items"], many=True).data  # type: ignore[return-value]

    @extend_schema_field(SkippedProjectSerializer(many=True))
    def get_skipped(self, obj: Rollout) -> list[dict[str, Any]]:
        return list(self.context["skipped"])


class OpenUpdateSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    to_version = serializers.CharField()
    branch = serializers.CharField()
    pull_request = PullRequestSerializer(allow_null=True)


class DriftSerializer(serializers.Serializer):
    project = serializers.IntegerField()
    generated = serializers.IntegerField()
    export = serializers.IntegerField()
    provider = serializers.CharField()
    remote_url = serializers.CharField()
    version = serializers.CharField()
    latest_version = serializers.CharField()
    behind = serializers.BooleanField()
    open_update = OpenUpdateSerializer(allow_null=True)


class AdoptionCreateSerializer(StrictInputSerializer):
    provider = serializers.ChoiceField(choices=[("github", "GitHub"), ("gitlab", "GitLab"), ("git", "Git remote")])
    connection = id_field(required=False)
    repository = RepositoryTargetSerializer(required=False, help_text="GitHub/GitLab: the repository to adopt")
    remote_url = serializers.CharField(required=False, max_length=2000, help_text="git: the remote")
    branch = serializers.CharField(required=False, max_length=200, help_text="git: the branch (default main)")
    template = serializers.CharField(required=False, max_length=100, help_text="default: by the answers' source")
    version = serializers.CharField(required=False, max_length=100, help_text="default: the recorded one")


class AdoptionSerializer(serializers.ModelSerializer):
    template = serializers.SlugRelatedField(slug_field="slug", read_only=True)  # type: ignore[var-annotated]
    error = JobErrorSerializer(allow_null=True, read_only=True)

    class Meta:
        model = Adoption
        fields = [
            "id",
            "status",
            "provider",
            "target",
            "branch",
            "answers_file",
            "recorded",
            "template",
            "version",
            "generated",
            "export",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields
