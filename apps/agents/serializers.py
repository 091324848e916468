from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.agents.models import Agent, AgentToken
from apps.agents.services.agents import agent_projects
from apps.projects.models import Role
from core.serializers import JSONObjectField, StrictInputSerializer, id_field, name_field, validate_display_name


class AgentSerializer(serializers.ModelSerializer):
    projects = serializers.SerializerMethodField()
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Agent
        fields = ["id", "name", "description", "projects", "is_active", "username", "created_at", "updated_at"]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_projects(self, obj: Agent) -> list[int]:
        return agent_projects(obj)  # uses the view's prefetch of the agent user's memberships


class AgentCreateSerializer(StrictInputSerializer):
    name = name_field()
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")
    projects = serializers.ListField(child=id_field(), required=False, default=list, max_length=100)
    role = serializers.ChoiceField(
        choices=Role.choices, required=False, default=Role.DEVELOPER, help_text="role in those projects"
    )

    def validate_name(self, value: str) -> str:
        return validate_display_name(value)


class AgentUpdateSerializer(AgentCreateSerializer):
    name = name_field(required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    projects = serializers.ListField(child=id_field(), required=False, max_length=100)
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    is_active = serializers.BooleanField(required=False)


class AgentTokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = AgentToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at", "expires_at"]
        read_only_fields = fields


class AgentTokenCreateSerializer(StrictInputSerializer):
    name = serializers.CharField(required=False, allow_blank=True, max_length=100, default="")


class AgentTokenCreatedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    token = serializers.CharField(help_text="shown once; send as `Authorization: Token <token>`")
    prefix = serializers.CharField()


class AgentRunStartSerializer(StrictInputSerializer):
    workflow = id_field()
    inputs = JSONObjectField(required=False, default=dict)


class DiscoveryOperationSerializer(serializers.Serializer):
    operation_id = serializers.CharField()
    method = serializers.CharField()
    path = serializers.CharField()
    summary = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    parameters = serializers.ListField(child=serializers.DictField())
    request_schema = serializers.JSONField(allow_null=True)
    request_content_type = serializers.CharField(allow_null=True)
    response_schema = serializers.JSONField(allow_null=True)


class DiscoveryToolSerializer(serializers.Serializer):
    name = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField()
    operation_id = serializers.CharField(help_text="the REST operation the tool wraps")
    method = serializers.CharField()
    path = serializers.CharField()
    input_schema = serializers.JSONField()
    output_schema = serializers.JSONField()
    annotations = serializers.DictField()
    mcp = serializers.CharField(help_text="the MCP endpoint serving the tool")


class DiscoverySerializer(serializers.Serializer):
    operations = DiscoveryOperationSerializer(many=True)
    tools = DiscoveryToolSerializer(many=True, help_text="Kiln's curated agent tools (also served at /mcp)")


class ToolFunctionSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    parameters = serializers.JSONField()


class ToolSerializer(serializers.Serializer):
    type = serializers.CharField()
    function = ToolFunctionSerializer()
