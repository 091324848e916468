"""HTTP shapes of the template catalog. Input and output serializers are separate."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.templates.models import ProjectTemplate
from core.serializers import FORM_MACHINERY_FIELDS, StrictInputSerializer


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


UPLOAD_FIELD_HINT = "Send the template archive (zip or tar.gz) as the multipart field 'archive'."


class TemplateUploadSerializer(StrictInputSerializer):
    archive = serializers.FileField(help_text="zip or tar.gz of a template folder with template.yaml at its top")

    def to_internal_value(self, data: Any) -> Any:
        """A file under another name (`file`, `template`...) is an error that names `archive`."""
        if hasattr(data, "keys") and "archive" not in data:
            others = sorted(str(key) for key in data if str(key) not in FORM_MACHINERY_FIELDS)
            if others:
                raise serializers.ValidationError(
                    {
                        "archive": [f"{UPLOAD_FIELD_HINT} Got {', '.join(others)} instead."],
                        **{key: ["This field is not accepted here; did you mean 'archive'?"] for key in others},
                    }
                )
        return super().to_internal_value(data)
