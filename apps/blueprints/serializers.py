"""Input serializers of the blueprint endpoints."""

from __future__ import annotations

from rest_framework import serializers

from core.serializers import StrictInputSerializer


class BlueprintPreviewSerializer(StrictInputSerializer):
    document = serializers.CharField(
        trim_whitespace=False, max_length=256 * 1024, help_text="The structure document (Markdown or text)"
    )


class BlueprintRegisterSerializer(StrictInputSerializer):
    slug = serializers.CharField(max_length=100)
    name = serializers.CharField(max_length=200)
    document = serializers.CharField(trim_whitespace=False, max_length=256 * 1024)


class TemplateBlueprintCreateSerializer(StrictInputSerializer):
    blueprint = BlueprintRegisterSerializer()
