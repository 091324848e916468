"""Input serializers of the blueprint endpoints."""

from __future__ import annotations

from rest_framework import serializers

from apps.templates.services.formats.native import VERSION_RE
from core.serializers import StrictInputSerializer

DOCUMENT_HELP = (
    "The structure document (Markdown or text). It must hold the project's directory tree (box drawing, "
    "ASCII |-- and `--, indentation or `tree` output, in a code block or bare) or headings naming its files and "
    "folders; otherwise 400 blueprint_invalid with a hint. Unsafe paths (.., absolute, .git/) are 400 "
    "blueprint_invalid naming the line; over 256 KiB, 5000 lines, 400 entries or depth 16: 400 blueprint_too_large."
)


class BlueprintPreviewSerializer(StrictInputSerializer):
    document = serializers.CharField(trim_whitespace=False, max_length=256 * 1024, help_text=DOCUMENT_HELP)


class BlueprintRegisterSerializer(StrictInputSerializer):
    slug = serializers.CharField(max_length=100, help_text="The template's slug: lowercase letters, digits, dashes")
    name = serializers.CharField(max_length=200)
    document = serializers.CharField(trim_whitespace=False, max_length=256 * 1024, help_text=DOCUMENT_HELP)
    version = serializers.RegexField(
        VERSION_RE.pattern,
        max_length=50,
        required=False,
        help_text="The label of the version this document becomes (e.g. 2.0.0). Default: the next label after the "
        "template's greatest (1.0.0 first, then 1.0.1, ...), and nothing new when the document equals the latest "
        "version's. The same label with another document is 400 template_version_exists.",
    )


class TemplateBlueprintCreateSerializer(StrictInputSerializer):
    blueprint = BlueprintRegisterSerializer()
