"""HTTP shapes of the template catalog. Input and output serializers are separate."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.templates.models import ProjectTemplate, TemplateVersion
from core.serializers import FORM_MACHINERY_FIELDS, StrictInputSerializer


class TemplateSerializer(serializers.ModelSerializer):
    parameters = serializers.JSONField(help_text="JSON Schema of the latest version's parameters")
    latest_version = serializers.CharField(source="version", read_only=True, help_text="the latest version's label")
    versions_count = serializers.SerializerMethodField(help_text="how many versions are recorded")

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
