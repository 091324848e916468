from __future__ import annotations

from rest_framework import serializers

from core.serializers import StrictInputSerializer


class TokenLoginInputSerializer(StrictInputSerializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=256, trim_whitespace=False, style={"input_type": "password"})


class TokenOutputSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Shown once. Send it as `Authorization: Token <token>`.")
