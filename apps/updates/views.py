"""Updates, rollouts and drift over HTTP: validation and one service call each."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from apps.events.drf import STREAM_ACTION, STREAM_RESPONSES, JobLogsSerializer
from apps.events.services import job_log_lines
from apps.events.streams import event_stream_response
from apps.projects.models import Role
from apps.projects.permissions import CanExportRepository, ProjectRolePermission
from apps.projects.views import ProjectScopedViewSet, _errors
from apps.templates.services.catalog import template_get
from apps.updates.models import Adoption, Rollout, TemplateUpdate
from apps.updates.serializers import (
    AdoptionCreateSerializer,
    AdoptionSerializer,
    DriftSerializer,
    RolloutCreateSerializer,
    RolloutDetailSerializer,
    RolloutSerializer,
    UpdateCreateSerializer,
    UpdateSerializer,
)
from apps.updates.services import adoptions, drift, rollouts, updates


class CanStartUpdate(ProjectRolePermission):
    """Members read; a preview needs a developer, a branch or pull request a maintainer (the service checks)."""

    write_role = Role.DEVELOPER


@extend_schema(
    parameters=[
        OpenApiParameter("project_id", OpenApiTypes.INT, OpenApiParameter.PATH),
        OpenApiParameter("generated_id", OpenApiTypes.INT, OpenApiParameter.PATH),
    ]
)
@extend_schema_view(
    list=extend_schema(
        operation_id="updates_list", summary="List the template updates of a generation", tags=["updates"]
    ),
    retrieve=extend_schema(
        operation_id="updates_retrieve",
        summary="Get an update: status, per-file outcomes, branch and pull request",
        tags=["updates"],
    ),
)
class TemplateUpdateViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProjectScopedViewSet):
    serializer_class = UpdateSerializer
    queryset = TemplateUpdate.objects.none()  # the model, for the schema; get_queryset scopes it
    permission_classes = [CanStartUpdate]
    lookup_url_kwarg = "id"
    filterset_fields = ["status", "mode"]

    def get_queryset(self) -> QuerySet[TemplateUpdate]:
        return updates.updates_of(self.get_generated()).order_by("-created_at", "-id")

    @extend_schema(
        operation_id="updates_create",
        summary="Update the exported repository to a new template version: preview, branch or pull request (202)",
        request=UpdateCreateSerializer,
        responses={
            202: UpdateSerializer,
            409: OpenApiResponse(description="not exported, or the generation is not completed"),
            429: OpenApiResponse(description="too many active updates"),
            **_errors(400, 401, 403, 404),
        },
        tags=["updates"],
    )
    def create(self, request: Request, project_id: str, generated_id: str) -> Response:
        serializer = UpdateCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        update, _ = updates.update_start(
            generated=self.get_generated(), data=dict(serializer.validated_data), actor=request.user
        )
        return Response(UpdateSerializer(update).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="updates_diff",
        summary="The unified diff the update makes to the target branch",
        responses={
            (200, "text/x-diff"): OpenApiTypes.STR,
            409: OpenApiResponse(description="the update has not finished"),
            **_errors(401, 404),
        },
        tags=["updates"],
    )
    @action(detail=True, methods=["get"])
    def diff(self, request: Request, project_id: str, generated_id: str, id: str) -> HttpResponse:
        content = updates.update_diff(self.get_object())
        return HttpResponse(content, content_type="text/x-diff; charset=utf-8")

    @extend_schema(
        operation_id="updates_events",
        summary="Follow an update live: status, progress and log lines as server-sent events",
        responses={**STREAM_RESPONSES, **_errors(401, 404)},
        tags=["updates"],
    )
    @action(**STREAM_ACTION)
    def events(self, request: Request, project_id: str, generated_id: str, id: str) -> HttpResponseBase:
        update = self.get_object()
        return event_stream_response(request._request, model=TemplateUpdate, pk=update.pk)

    @extend_schema(
        operation_id="updates_logs",
        summary="The log lines of an update",
        responses={200: JobLogsSerializer, **_errors(401, 404)},
        tags=["updates"],
    )
    @action(detail=True, methods=["get"])
    def logs(self, request: Request, project_id: str, generated_id: str, id: str) -> Response:
        update = self.get_object()
        lines = job_log_lines(model=TemplateUpdate, pk=update.pk)
        return Response(JobLogsSerializer({"id": update.pk, "status": update.status, "logs": lines}).data)


@extend_schema(parameters=[OpenApiParameter("slug", OpenApiTypes.STR, OpenApiParameter.PATH)])
class TemplateFleetViewSet(viewsets.GenericViewSet):
    """`/templates/{slug}/rollouts/` and `/templates/{slug}/drift/`."""

    permission_classes = [IsAuthenticated]
    serializer_class = RolloutSerializer
    queryset = Rollout.objects.none()

    @extend_schema(
        operation_id="rollouts_create",
        summary="Update every exported repository of the template in your projects (maintainer+) (202)",
        request=RolloutCreateSerializer,
        responses={202: RolloutSerializer, 429: OpenApiResponse(description="busy"), **_errors(400, 401, 404)},
        tags=["updates"],
    )
    def rollouts_create(self, request: Request, slug: str) -> Response:
        serializer = RolloutCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rollout, _ = rollouts.rollout_start(
            template_slug=slug, data=dict(serializer.validated_data), actor=request.user
        )
        return Response(RolloutSerializer(rollout).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="rollouts_list",
        summary="The rollouts of a template you started or that touch your projects",
        responses={200: RolloutSerializer(many=True), **_errors(401, 404)},
        tags=["updates"],
    )
    def rollouts_list(self, request: Request, slug: str) -> Response:
        template = template_get(slug=slug)
        found = [r for r in rollouts.rollouts_visible_to(request.user) if r.template_id == template.pk]
        page = self.paginate_queryset(found)
        return self.get_paginated_response(RolloutSerializer(page, many=True).data)

    @extend_schema(
        operation_id="templates_drift",
        summary="Where each repository made from the template stands against its latest version",
        responses={200: DriftSerializer(many=True), **_errors(401, 404)},
        tags=["updates"],
    )
    def drift(self, request: Request, slug: str) -> Response:
        rows = drift.drift_rows(template_slug=slug, actor=request.user)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(DriftSerializer(page, many=True).data)


@extend_schema(parameters=[OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH)])
class RolloutViewSet(viewsets.GenericViewSet):
    permission_classes = [IsAuthenticated]
    serializer_class = RolloutDetailSerializer
    queryset = Rollout.objects.none()

    @extend_schema(
        operation_id="rollouts_retrieve",
        summary="A rollout with its items (each update's status and pull request) and progress",
        responses={200: RolloutDetailSerializer, **_errors(401, 404)},
        tags=["updates"],
    )
    def retrieve(self, request: Request, id: str) -> Response:
        rollout = rollouts.rollout_get(pk=id, actor=request.user)
        context: dict[str, Any] = {
            "items": rollouts.items_visible(rollout, request.user),
            "skipped": rollouts.skipped_projects(rollout, request.user),
        }
        return Response(RolloutDetailSerializer(rollout, context=context).data)

    @extend_schema(
        operation_id="rollouts_events",
        summary="Follow a rollout live: status, progress (finished items) and log lines as server-sent events",
        responses={**STREAM_RESPONSES, **_errors(401, 404)},
        tags=["updates"],
    )
    @action(**STREAM_ACTION)
    def events(self, request: Request, id: str) -> HttpResponseBase:
        rollout = rollouts.rollout_get(pk=id, actor=request.user)
        return event_stream_response(request._request, model=Rollout, pk=rollout.pk)


@extend_schema(parameters=[OpenApiParameter("project_id", OpenApiTypes.INT, OpenApiParameter.PATH)])
@extend_schema_view(
    list=extend_schema(operation_id="adoptions_list", summary="List a project's adoptions", tags=["updates"]),
    retrieve=extend_schema(
        operation_id="adoptions_retrieve",
        summary="Get an adoption: the answers file read, the version linked, the generation and export it made",
        tags=["updates"],
    ),
)
class AdoptionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProjectScopedViewSet):
    serializer_class = AdoptionSerializer
    queryset = Adoption.objects.none()
    permission_classes = [CanExportRepository]
    lookup_url_kwarg = "id"

    def get_queryset(self) -> QuerySet[Adoption]:
        return adoptions.adoptions_of(self.get_project()).order_by("-created_at", "-id")

    @extend_schema(
        operation_id="adoptions_create",
        summary="Adopt a repository Copier or cruft made, linking it to a registered template version (202)",
        request=AdoptionCreateSerializer,
        responses={202: AdoptionSerializer, **_errors(400, 401, 403, 404)},
        tags=["updates"],
    )
    def create(self, request: Request, project_id: str) -> Response:
        serializer = AdoptionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        adoption = adoptions.adoption_start(
            project=self.get_project(), data=dict(serializer.validated_data), actor=request.user
        )
        return Response(AdoptionSerializer(adoption).data, status=status.HTTP_202_ACCEPTED)
