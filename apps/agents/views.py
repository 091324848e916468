"""Agents API: agents and their tokens, runs as an agent, and OpenAPI-based discovery."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.agents.models import Agent, AgentToken
from apps.agents.serializers import (
    AgentCreateSerializer,
    AgentRunStartSerializer,
    AgentSerializer,
    AgentTokenCreatedSerializer,
    AgentTokenCreateSerializer,
    AgentTokenSerializer,
    AgentUpdateSerializer,
    DiscoverySerializer,
    ToolSerializer,
)
from apps.agents.services import agents as agent_services
from apps.agents.services import api_discovery
from apps.agents.services.execution_engine import agent_run_start
from apps.projects.views import url_id
from apps.workflows.serializers import WorkflowRunSerializer
from core.exceptions import NotFound

NOT_FOUND = OpenApiResponse(description="Not found (or not yours)")


@extend_schema_view(
    list=extend_schema(operation_id="agents_list", summary="List your agents", tags=["agents"]),
    retrieve=extend_schema(operation_id="agents_retrieve", summary="Get an agent", tags=["agents"]),
)
class AgentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = AgentSerializer
    lookup_url_kwarg = "id"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Agent]:
        return (
            Agent.objects.filter(owner_id=self.request.user.pk)
            .select_related("user")
            .prefetch_related("user__project_memberships")
            .order_by("name", "id")
        )

    @extend_schema(
        operation_id="agents_create",
        summary="Create an agent acting in the given projects",
        request=AgentCreateSerializer,
        responses={201: AgentSerializer, 400: OpenApiResponse(description="invalid")},
        tags=["agents"],
    )
    def create(self, request: Request) -> Response:
        serializer = AgentCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        agent = agent_services.agent_create(owner=request.user, **serializer.validated_data)
        return Response(AgentSerializer(agent).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="agents_partial_update",
        summary="Change an agent (name, description, projects, active)",
        request=AgentUpdateSerializer,
        responses={200: AgentSerializer, 404: NOT_FOUND},
        tags=["agents"],
    )
    def partial_update(self, request: Request, id: str) -> Response:
        serializer = AgentUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        agent = agent_services.agent_update(agent=self.get_object(), actor=request.user, **serializer.validated_data)
        # read again: the memberships prefetched with get_object() are from before the change
        return Response(AgentSerializer(self.get_queryset().get(pk=agent.pk)).data)

    @extend_schema(
        operation_id="agents_destroy",
        summary="Delete an agent and revoke its tokens",
        responses={204: None, 404: NOT_FOUND},
        tags=["agents"],
    )
    def destroy(self, request: Request, id: str) -> Response:
        agent_services.agent_delete(agent=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        operation_id="agent_runs_create",
        summary="Start a workflow run as this agent (202)",
        request=AgentRunStartSerializer,
        responses={202: WorkflowRunSerializer, 400: OpenApiResponse(description="invalid"), 404: NOT_FOUND},
        tags=["agents"],
    )
    @action(detail=True, methods=["post"], url_path="runs")
    def runs(self, request: Request, id: str) -> Response:
        serializer = AgentRunStartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = agent_run_start(
            agent=self.get_object(),
            workflow_id=serializer.validated_data["workflow"],
            inputs=serializer.validated_data.get("inputs"),
            actor=request.user,
        )
        return Response(WorkflowRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(
    list=extend_schema(
        operation_id="agent_tokens_list", summary="List an agent's tokens (never the token values)", tags=["agents"]
    ),
)
class AgentTokenViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = AgentTokenSerializer
    queryset = AgentToken.objects.none()  # the model, for the schema; get_queryset scopes it
    lookup_url_kwarg = "id"

    def get_agent(self) -> Agent:
        agent = Agent.objects.filter(pk=url_id(self.kwargs["agent_id"]), owner_id=self.request.user.pk).first()
        if agent is None:
            raise NotFound("Agent not found.")
        return agent

    def get_queryset(self) -> QuerySet[AgentToken]:
        if getattr(self, "swagger_fake_view", False):
            return AgentToken.objects.none()
        return AgentToken.objects.filter(agent=self.get_agent(), expires_at__isnull=True).order_by("-created_at", "-id")

    @extend_schema(
        operation_id="agent_tokens_create",
        summary="Issue a token for the agent (shown once)",
        request=AgentTokenCreateSerializer,
        responses={201: AgentTokenCreatedSerializer, 404: NOT_FOUND},
        tags=["agents"],
    )
    def create(self, request: Request, agent_id: str) -> Response:
        serializer = AgentTokenCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        row, token = agent_services.agent_token_issue(agent=self.get_agent(), name=serializer.validated_data["name"])
        return Response(
            AgentTokenCreatedSerializer({"id": row.pk, "token": token, "prefix": row.prefix}).data,
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(
        operation_id="agent_tokens_destroy",
        summary="Revoke an agent token",
        responses={204: None, 404: NOT_FOUND},
        tags=["agents"],
    )
    def destroy(self, request: Request, agent_id: str, id: str) -> Response:
        agent_services.agent_token_revoke(token=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class DiscoveryView(APIView):
    @extend_schema(
        operation_id="discovery_operations",
        summary="Every API operation with its schemas",
        responses={200: DiscoverySerializer},
        tags=["discovery"],
    )
    def get(self, request: Request) -> Response:
        return Response(
            {
                "operations": [op.as_dict() for op in api_discovery.registry().values()],
                "tools": api_discovery.curated_tools(),
            }
        )


class DiscoveryToolsView(APIView):
    @extend_schema(
        operation_id="discovery_tools",
        summary="Kiln's curated agent tools, then every operation, as function-calling tool definitions",
        responses={200: ToolSerializer(many=True)},
        tags=["discovery"],
    )
    def get(self, request: Request) -> Response:
        return Response(api_discovery.tool_definitions())


class DiscoveryDocsView(APIView):
    @extend_schema(
        operation_id="discovery_docs",
        summary="A Markdown reference of the API generated from the schema",
        responses={(200, "text/markdown"): OpenApiTypes.STR},
        tags=["discovery"],
    )
    def get(self, request: Request) -> HttpResponse:
        return HttpResponse(api_discovery.markdown_reference(), content_type="text/markdown; charset=utf-8")
