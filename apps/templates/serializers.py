"""HTTP shapes of the template catalog. Input and output serializers are separate."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.templates.models import ProjectTemplate, TemplateVersion
from core.serializers import FORM_MACHINERY_FIELDS, MAX_ID, StrictInputSerializer


class TemplateGitSerializer(serializers.Serializer):
    url = serializers.CharField()
    ref = serializers.CharField(help_text="'' : the default branch")
    subdirectory = serializers.CharField(help_text="'' : the repository's top")
    connection = serializers.IntegerField(allow_null=True, help_text="the owner's connection that reads it")
    last_synced_at = serializers.DateTimeField(allow_null=True)


class TemplateSerializer(serializers.ModelSerializer):
    parameters = serializers.JSONField(help_text="JSON Schema of the latest version's parameters")
    latest_version = serializers.CharField(source="version", read_only=True, help_text="the latest version's label")
    versions_count = serializers.SerializerMethodField(help_text="how many versions are recorded")
    git = serializers.SerializerMethodField(help_text="Where a git template comes from; null for other sources.")

    class Meta:
        model = ProjectTemplate
        fields = [
            "slug",
            "name",
            "description",
            "format",
            "version",
            "latest_version",
            "versions_count",
            "parameters",
            "source",
            "git",
            "checksum",
            "file_count",
            "total_bytes",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_versions_count(self, template: ProjectTemplate) -> int:
        annotated = getattr(template, "versions_total", None)
        return int(annotated) if annotated is not None else template.versions.count()

    @extend_schema_field(TemplateGitSerializer(allow_null=True))
    def get_git(self, template: ProjectTemplate) -> dict[str, Any] | None:
        from apps.templates.services.sources import get_source

        if template.source != "git":
            return None
        return get_source(template.source).describe(template)


class TemplateVersionSerializer(serializers.ModelSerializer):
    parameters = serializers.JSONField(help_text="JSON Schema of the version's parameters")
    uses_code = serializers.ListField(
        child=serializers.CharField(), help_text="what of the version runs code (hooks, tasks, extensions)"
    )

    class Meta:
        model = TemplateVersion
        fields = [
            "version",
            "format",
            "commit",
            "checksum",
            "parameters",
            "file_count",
            "total_bytes",
            "uses_code",
            "is_trusted",
            "created_at",
        ]
        read_only_fields = fields


UPLOAD_FIELD_HINT = "Send the template archive (zip or tar.gz) as the multipart field 'archive'."


class TemplateUploadSerializer(StrictInputSerializer):
    archive = serializers.FileField(
        help_text="zip or tar.gz of a template folder with template.yaml, copier.yml/copier.yaml or "
        "cookiecutter.json at its top (or inside its one top folder)"
    )
    slug = serializers.CharField(
        required=False,
        max_length=100,
        help_text="the template's slug: required for Cookiecutter and Copier templates (a native template's "
        "template.yaml names it)",
    )
    version = serializers.CharField(
        required=False,
        max_length=50,
        help_text="the version label: required for Cookiecutter and Copier templates (template.yaml's for native ones)",
    )

    def to_internal_value(self, data: Any) -> Any:
        """A file under another name (`file`, `template`...) is an error that names `archive`."""
        if hasattr(data, "keys") and "archive" not in data:
            others = sorted(str(key) for key in data if str(key) not in FORM_MACHINERY_FIELDS | {"slug", "version"})
            if others:
                raise serializers.ValidationError(
                    {
                        "archive": [f"{UPLOAD_FIELD_HINT} Got {', '.join(others)} instead."],
                        **{key: ["This field is not accepted here; did you mean 'archive'?"] for key in others},
                    }
                )
        return super().to_internal_value(data)


GIT_URL_HELP = (
    "The repository's URL: https (http and file:// only where the administrator allows them), without "
    "credentials, query or fragment; no git transport helpers ('ext::') or leading '-'."
)


class TemplateGitLocationSerializer(StrictInputSerializer):
    url = serializers.CharField(max_length=2000, help_text=GIT_URL_HELP)
    ref = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        help_text="Branch or tag whose head is the one version when the repository has no version tags "
        "(default: its default branch).",
    )
    subdirectory = serializers.CharField(
        max_length=500,
        required=False,
        allow_blank=True,
        help_text="Folder of the repository that holds the template (default: its top).",
    )
    connection = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=MAX_ID,
        help_text="One of your provider connections, whose token reads a private repository.",
    )


class TemplateGitCreateSerializer(StrictInputSerializer):
    git = TemplateGitLocationSerializer(
        help_text="A git repository: its tags that read as versions (PEP 440, with or without 'v') are the "
        "template's versions, else the head of ref."
    )
    slug = serializers.CharField(
        max_length=100,
        required=False,
        help_text="The template's slug (default: from the repository's or the subdirectory's name).",
    )


class TemplateSyncSerializer(serializers.Serializer):
    added = serializers.ListField(child=serializers.CharField(), help_text="Version labels recorded, oldest first.")
    skipped = serializers.ListField(
        child=serializers.DictField(),
        help_text="New tags that could not be recorded: {version, code, message} each (tried again next sync).",
    )
