"""HTTP shapes of the template catalog. Input and output serializers are separate."""

from __future__ import annotations

from rest_framework import serializers

from apps.templates.models import ProjectTemplate
from core.serializers import StrictInputSerializer


class TemplateSerializer(serializers.ModelSerializer):
    parameters = serializers.JSONField(help_text="JSON Schema of the template's parameters")

    class Meta:
        model = ProjectTemplate
        fields = [
            "slug",
            "name",
            "description",
            "version",
            "parameters",
            "source",
            "checksum",
            "file_count",
            "total_bytes",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class TemplateUploadSerializer(StrictInputSerializer):
    archive = serializers.FileField(help_text="zip or tar.gz of a template folder with template.yaml at its top")
