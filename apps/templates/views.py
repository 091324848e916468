"""DRF viewsets of the template catalog: HTTP and validation only, one service call each."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.blueprints.serializers import TemplateBlueprintCreateSerializer
from apps.blueprints.services.blueprints import blueprint_template_register
from apps.projects.views import _errors
from apps.templates.models import ProjectTemplate, TemplateSource, TemplateVersion
from apps.templates.serializers import (
    TemplateGitCreateSerializer,
    TemplateSerializer,
    TemplateSyncSerializer,
    TemplateUploadSerializer,
    TemplateVersionSerializer,
)
from apps.templates.services import catalog, removal, versions
from apps.templates.services.sources import get_source, source_for_body, template_sync
from apps.templates.services.trust import template_version_trust
from core.exceptions import ValidationFailed
from core.parsers import KilnFormParser, KilnJSONParser, KilnMultiPartParser
from core.serializers import StrictInputSerializer

# the request body each registering source reads (by `SourceModule.kind`)
BODY_SERIALIZERS: dict[str, type[StrictInputSerializer]] = {
    TemplateSource.UPLOAD: TemplateUploadSerializer,
    TemplateSource.GIT: TemplateGitCreateSerializer,
}


@extend_schema_view(
    list=extend_schema(operation_id="templates_list", summary="List the template catalog", tags=["templates"]),
    retrieve=extend_schema(
        operation_id="templates_retrieve", summary="Get one template and its parameter schema", tags=["templates"]
    ),
)
class TemplateViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = TemplateSerializer
    lookup_field = "slug"
    lookup_value_regex = r"[a-z0-9-]{1,100}"
    filterset_fields = ["source"]

    def get_queryset(self) -> QuerySet[ProjectTemplate]:
        return (
            ProjectTemplate.objects.filter(is_active=True).annotate(versions_total=Count("versions")).order_by("slug")
        )

    @extend_schema(
        operation_id="templates_create",
        summary="Upload a template archive (zip or tar.gz), or register a git repository or a blueprint (JSON)",
        request={
            "multipart/form-data": TemplateUploadSerializer,
            "application/json": PolymorphicProxySerializer(
                component_name="TemplateCreateJSON",
                serializers=[TemplateGitCreateSerializer, TemplateBlueprintCreateSerializer],
                resource_type_field_name=None,
            ),
        },
        responses={201: TemplateSerializer, **_errors(400, 401)},
        tags=["templates"],
    )
    def create(self, request: Request) -> Response:
        if isinstance(request.data, dict) and "blueprint" in request.data:
            # a structure document registered as a template (apps/blueprints)
            body = TemplateBlueprintCreateSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            template = blueprint_template_register(**body.validated_data["blueprint"], user=request.user)
            return Response(TemplateSerializer(template).data, status=status.HTTP_201_CREATED)
        # an archive (multipart `archive`) or a git repository (JSON `git`): the source module registers it
        source = source_for_body(request.data) or get_source(TemplateSource.UPLOAD)
        serializer = BODY_SERIALIZERS[source.kind](data=request.data)
        serializer.is_valid(raise_exception=True)
        template = source.register(serializer.validated_data, user=request.user)
        return Response(TemplateSerializer(template).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="templates_destroy",
        summary="Delete an uploaded template (its uploader or staff); one with generations is only deactivated",
        parameters=[
            OpenApiParameter(
                "deactivate",
                OpenApiTypes.BOOL,
                OpenApiParameter.QUERY,
                description="true: hide the template from the catalog and keep its generations (needed once "
                "generations were made from it; without it that is a 409 template_in_use)",
            )
        ],
        request=None,
        responses={
            204: OpenApiResponse(description="deleted, or deactivated with ?deactivate=true"),
            400: OpenApiResponse(description="template_builtin, or a deactivate value that is not a boolean"),
            409: OpenApiResponse(description="template_in_use (generations were made from it), template_busy"),
            **_errors(401, 403, 404),
        },
        tags=["templates"],
    )
    def destroy(self, request: Request, slug: str) -> Response:
        raw = request.query_params.get("deactivate", "false").strip().lower()
        if raw not in ("true", "false", "1", "0"):
            raise ValidationFailed(
                "deactivate is true or false.", extra={"fields": {"deactivate": ["Expected true or false."]}}
            )
        removal.template_delete(template=self.get_object(), actor=request.user, deactivate=raw in ("true", "1"))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        operation_id="templates_sync",
        summary="Record the new versions of a git template (its owner or staff)",
        request=None,
        responses={200: TemplateSyncSerializer, **_errors(400, 401, 403, 404)},
        tags=["templates"],
    )
    @action(detail=True, methods=["post"])
    def sync(self, request: Request, slug: str | None = None) -> Response:
        result = template_sync(template=self.get_object(), actor=request.user)
        return Response(TemplateSyncSerializer(result).data)

    def get_parsers(self) -> list[Any]:
        if getattr(self, "action", None) == "create" or self.request is None or self.request.method == "POST":
            return [KilnMultiPartParser(), KilnFormParser(), KilnJSONParser()]
        return super().get_parsers()


VERSION_LABEL_RE = r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,49}"


@extend_schema_view(
    list=extend_schema(
        operation_id="templates_versions_list", summary="List a template's versions, newest first", tags=["templates"]
    ),
    retrieve=extend_schema(
        operation_id="templates_versions_retrieve",
        summary="Get one version of a template (its parameter schema, checksum, commit)",
        tags=["templates"],
    ),
)
class TemplateVersionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """`/templates/{slug}/versions/`: any signed-in user reads the catalog's versions."""

    serializer_class = TemplateVersionSerializer
    queryset = TemplateVersion.objects.none()  # the model, for the schema; get_queryset scopes it
    lookup_field = "version"
    lookup_value_regex = VERSION_LABEL_RE

    def get_queryset(self) -> QuerySet[TemplateVersion]:
        template = catalog.template_get(slug=self.kwargs["slug"])
        return versions.versions_of(template)

    def get_object(self) -> TemplateVersion:
        template = catalog.template_get(slug=self.kwargs["slug"])
        return versions.version_get(template, self.kwargs["version"])

    @extend_schema(
        operation_id="templates_versions_trust",
        summary="Trust a version's code (hooks, tasks, migrations) to run, isolated (staff)",
        request=None,
        responses={200: TemplateVersionSerializer, **_errors(401, 403, 404)},
        tags=["templates"],
    )
    @action(detail=True, methods=["post"])
    def trust(self, request: Request, slug: str, version: str) -> Response:
        trusted = template_version_trust(template=catalog.template_get(slug=slug), label=version, actor=request.user)
        return Response(TemplateVersionSerializer(trusted).data)

    @extend_schema(
        operation_id="templates_versions_destroy",
        summary="Delete one version of an uploaded template (its uploader or staff)",
        request=None,
        responses={
            204: OpenApiResponse(description="deleted; the template's latest version is its newest remaining one"),
            400: OpenApiResponse(description="template_builtin"),
            409: OpenApiResponse(description="version_in_use (generations pin it), version_last (its only version)"),
            **_errors(401, 403, 404),
        },
        tags=["templates"],
    )
    def destroy(self, request: Request, slug: str, version: str) -> Response:
        removal.version_delete(version=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
