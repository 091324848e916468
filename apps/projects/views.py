"""DRF viewsets of the projects app: HTTP and validation only, one service call each."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http.response import HttpResponseBase
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.filters import SearchFilter
from rest_framework.request import Request
from rest_framework.response import Response

from apps.approvals import views as approval_views
from apps.approvals.serializers import ApprovalDecisionSerializer, ApprovalRejectSerializer
from apps.approvals.views import DECISION_ERRORS
from apps.events.drf import STREAM_ACTION, STREAM_RESPONSES, JobLogsSerializer
from apps.events.services import job_log_lines
from apps.events.streams import event_stream_response
from apps.projects.models import (
    AuditEvent,
    GeneratedProject,
    Project,
    ProjectFile,
    ProjectMembership,
    ProviderConnection,
    RepositoryExport,
)
from apps.projects.permissions import CanExportRepository, CanGenerateProject, CanManageMembers, ProjectRolePermission
from apps.projects.selectors import (
    files_of,
    generated_in,
    generated_project_archive_name,
    generated_projects_of,
    memberships_of,
    project_for,
    projects_visible_to,
)
from apps.projects.serializers import (
    AuditEventSerializer,
    ConnectionCreateSerializer,
    ConnectionSerializer,
    ConnectionVerifySerializer,
    DryRunSerializer,
    GeneratedProjectCreateSerializer,
    GeneratedProjectSerializer,
    MembershipCreateSerializer,
    MembershipSerializer,
    ProjectCreateSerializer,
    ProjectFileSerializer,
    ProjectSerializer,
    ProjectUpdateSerializer,
    RepositoryExportCreateSerializer,
    RepositoryExportSerializer,
)
from apps.projects.services import connections, exports, generation, projects
from apps.storage.downloads import blob_response
from core.exceptions import NotFound
from core.filters import DeclaredOrderingFilter, StrictQueryParams

ERRORS = {
    400: OpenApiResponse(description="Invalid input: `{message, code, extra}`"),
    401: OpenApiResponse(description="Not authenticated"),
    403: OpenApiResponse(description="The caller's role does not allow this"),
    404: OpenApiResponse(description="Not found (or not visible to the caller)"),
}


def url_id(value: str) -> int:
    """An id from the URL: a positive integer, else the object cannot exist (404)."""
    if not value.isdigit() or len(value) > 18:
        raise NotFound("Not found.")
    return int(value)


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: ERRORS[code] for code in codes}


@extend_schema_view(
    list=extend_schema(
        operation_id="projects_list", summary="List the projects you are a member of", tags=["projects"]
    ),
    retrieve=extend_schema(
        operation_id="projects_retrieve",
        summary="Get a project",
        tags=["projects"],
        responses={200: ProjectSerializer, **_errors(401, 404)},
    ),
)
class ProjectViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = ProjectSerializer
    lookup_url_kwarg = "id"
    filter_backends = [DjangoFilterBackend, SearchFilter, DeclaredOrderingFilter, StrictQueryParams]
    search_fields = ["name", "slug", "description"]
    ordering_fields = ["name", "created_at", "updated_at"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Project]:
        return projects_visible_to(self.request.user).order_by("-created_at", "-id")

    @extend_schema(
        operation_id="projects_create",
        summary="Create a project (you become its owner)",
        request=ProjectCreateSerializer,
        responses={201: ProjectSerializer, **_errors(400, 401)},
        tags=["projects"],
    )
    def create(self, request: Request) -> Response:
        serializer = ProjectCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        project = projects.project_create(owner=request.user, **serializer.validated_data)
        return Response(ProjectSerializer(project).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="projects_partial_update",
        summary="Change a project's name or description (maintainer)",
        request=ProjectUpdateSerializer,
        responses={200: ProjectSerializer, **_errors(400, 401, 403, 404)},
        tags=["projects"],
    )
    def partial_update(self, request: Request, id: str) -> Response:
        project = self.get_object()
        serializer = ProjectUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        project = projects.project_update(project=project, actor=request.user, **serializer.validated_data)
        return Response(ProjectSerializer(project).data)

    @extend_schema(
        operation_id="projects_destroy",
        summary="Delete a project and its generated files (owner)",
        responses={204: None, **_errors(401, 403, 404)},
        tags=["projects"],
    )
    def destroy(self, request: Request, id: str) -> Response:
        projects.project_delete(project=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(parameters=[OpenApiParameter("project_id", OpenApiTypes.INT, OpenApiParameter.PATH)])
class ProjectScopedViewSet(viewsets.GenericViewSet):
    """Loads the URL's project, scoped to the caller: non-members get 404."""

    def get_project(self) -> Project:
        if getattr(self, "swagger_fake_view", False):
            return Project()
        cached = getattr(self, "_project", None)
        if cached is not None:
            return cached
        project = project_for(self.request.user, url_id(self.kwargs["project_id"]))
        self._project = project
        return project

    def get_generated(self) -> GeneratedProject:
        """The URL's generated project, inside the URL's project (404 otherwise)."""
        return generated_in(self.get_project(), url_id(self.kwargs["generated_id"]))


@extend_schema_view(
    list=extend_schema(operation_id="members_list", summary="List a project's members", tags=["members"]),
)
class MembershipViewSet(mixins.ListModelMixin, ProjectScopedViewSet):
    serializer_class = MembershipSerializer
    queryset = ProjectMembership.objects.none()  # the model, for the schema; get_queryset scopes it
    permission_classes = [CanManageMembers]
    lookup_url_kwarg = "id"

    def get_queryset(self) -> QuerySet[ProjectMembership]:
        return memberships_of(self.get_project())

    @extend_schema(
        operation_id="members_create",
        summary="Add a member with a role (owner)",
        request=MembershipCreateSerializer,
        responses={201: MembershipSerializer, **_errors(400, 401, 403, 404)},
        tags=["members"],
    )
    def create(self, request: Request, project_id: str) -> Response:
        serializer = MembershipCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = projects.membership_add(
            project=self.get_project(), actor=request.user, **serializer.validated_data
        )
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="members_destroy",
        summary="Remove a member (owner)",
        responses={204: None, **_errors(401, 403, 404)},
        tags=["members"],
    )
    def destroy(self, request: Request, project_id: str, id: str) -> Response:
        projects.membership_remove(membership=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(operation_id="generated_list", summary="List a project's generations", tags=["generated"]),
    retrieve=extend_schema(
        operation_id="generated_retrieve", summary="Get a generation's status, progress and result", tags=["generated"]
    ),
)
class GeneratedProjectViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProjectScopedViewSet):
    serializer_class = GeneratedProjectSerializer
    queryset = GeneratedProject.objects.none()  # the model, for the schema; get_queryset scopes it
    permission_classes = [CanGenerateProject]
    lookup_url_kwarg = "id"
    filterset_fields = ["status"]

    def get_queryset(self) -> QuerySet[GeneratedProject]:
        return generated_projects_of(self.get_project())

    @extend_schema(
        operation_id="generated_create",
        summary="Generate a project from a template (202), or dry-run it (200)",
        request=GeneratedProjectCreateSerializer,
        responses={
            202: GeneratedProjectSerializer,
            200: OpenApiResponse(DryRunSerializer, description="dry_run: the manifest; nothing stored"),
            422: OpenApiResponse(description="dry_run: the template failed to render"),
            429: OpenApiResponse(description="too many active generations in this project"),
            **_errors(400, 401, 403, 404),
        },
        tags=["generated"],
    )
    def create(self, request: Request, project_id: str) -> Response:
        serializer = GeneratedProjectCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        project = self.get_project()
        if data["dry_run"]:
            result = generation.generated_project_dry_run(
                project=project,
                template_slug=data["template"],
                parameters=data["parameters"],
                actor=request.user,
                version=data.get("version"),
            )
            body = {
                "files": [f.__dict__ for f in result.files],
                "file_count": result.file_count,
                "total_bytes": result.total_bytes,
                "content_sha256": result.content_sha256,
            }
            return Response(DryRunSerializer(body).data, status=status.HTTP_200_OK)
        generated = generation.generated_project_start(
            project=project,
            template_slug=data["template"],
            parameters=data["parameters"],
            actor=request.user,
            version=data.get("version"),
        )
        # The row as recorded (pending); a worker, or eager mode, may already be past it.
        return Response(GeneratedProjectSerializer(generated).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="generated_destroy",
        summary="Delete a generation: its files and archives (maintainer); its exports stay as history",
        responses={
            204: None,
            409: OpenApiResponse(description="the generation or one of its exports is pending or running"),
            **_errors(401, 403, 404),
        },
        tags=["generated"],
    )
    def destroy(self, request: Request, project_id: str, id: str) -> Response:
        generation.generated_project_delete(generated=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        operation_id="generated_cancel",
        summary="Cancel a pending or running generation",
        request=None,
        responses={
            200: GeneratedProjectSerializer,
            409: OpenApiResponse(description="already finished"),
            **_errors(401, 403, 404),
        },
        tags=["generated"],
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, project_id: str, id: str) -> Response:
        generated = generation.generated_project_cancel(generated=self.get_object(), actor=request.user)
        return Response(GeneratedProjectSerializer(generated).data)

    @extend_schema(
        operation_id="generated_retry",
        summary="Retry a failed or cancelled generation (202)",
        request=None,
        responses={
            202: GeneratedProjectSerializer,
            409: OpenApiResponse(description="not failed or cancelled"),
            **_errors(401, 403, 404),
        },
        tags=["generated"],
    )
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, project_id: str, id: str) -> Response:
        generated = generation.generated_project_retry(generated=self.get_object(), actor=request.user)
        generated.refresh_from_db()
        return Response(GeneratedProjectSerializer(generated).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="generated_events",
        summary="Follow a generation live: status, progress and log lines as server-sent events",
        responses={**STREAM_RESPONSES, **_errors(401, 404)},
        tags=["generated"],
    )
    @action(**STREAM_ACTION)
    def events(self, request: Request, project_id: str, id: str) -> HttpResponseBase:
        generated = self.get_object()
        return event_stream_response(request._request, model=GeneratedProject, pk=generated.pk)

    @extend_schema(
        operation_id="generated_logs",
        summary="The log lines of a generation",
        responses={200: JobLogsSerializer, **_errors(401, 404)},
        tags=["generated"],
    )
    @action(detail=True, methods=["get"])
    def logs(self, request: Request, project_id: str, id: str) -> Response:
        generated = self.get_object()
        lines = job_log_lines(model=GeneratedProject, pk=generated.pk)
        return Response(JobLogsSerializer({"id": generated.pk, "status": generated.status, "logs": lines}).data)


@extend_schema_view(
    list=extend_schema(operation_id="files_list", summary="List the files of a generation", tags=["files"]),
    retrieve=extend_schema(operation_id="files_retrieve", summary="Get one file's metadata", tags=["files"]),
)
class ProjectFileViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProjectScopedViewSet):
    serializer_class = ProjectFileSerializer
    queryset = ProjectFile.objects.none()  # the model, for the schema; get_queryset scopes it
    permission_classes = [ProjectRolePermission]
    lookup_url_kwarg = "id"

    def get_queryset(self) -> QuerySet[ProjectFile]:
        return files_of(self.get_generated())

    @extend_schema(
        operation_id="files_content",
        summary="Download a file's raw bytes",
        responses={
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            302: OpenApiResponse(description="KILN_DOWNLOAD_REDIRECT (S3): to a short-lived presigned URL"),
            410: OpenApiResponse(description="the stored file is missing (blob_missing)"),
            **_errors(401, 404),
        },
        tags=["files"],
    )
    @action(detail=True, methods=["get"])
    def content(self, request: Request, project_id: str, generated_id: str, id: str) -> HttpResponseBase:
        project_file = self.get_object()
        return blob_response(
            sha256=project_file.sha256,
            size=project_file.size,
            filename=project_file.path.rsplit("/", 1)[-1],
            content_type="application/octet-stream",
        )


@extend_schema_view(
    list=extend_schema(operation_id="exports_list", summary="List the exports of a generation", tags=["exports"]),
    retrieve=extend_schema(
        operation_id="exports_retrieve", summary="Get an export's status and result", tags=["exports"]
    ),
)
class RepositoryExportViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProjectScopedViewSet):
    serializer_class = RepositoryExportSerializer
    queryset = RepositoryExport.objects.none()  # the model, for the schema; get_queryset scopes it
    permission_classes = [CanExportRepository]
    lookup_url_kwarg = "id"
    filterset_fields = ["status", "provider"]

    def get_queryset(self) -> QuerySet[RepositoryExport]:
        return (
            RepositoryExport.objects.filter(generated=self.get_generated())
            .prefetch_related("approvals__decided_by")
            .order_by("-created_at", "-id")
        )

    @extend_schema(
        operation_id="exports_create",
        summary="Export a generation to GitHub, GitLab, a git remote or an archive (202)",
        request=RepositoryExportCreateSerializer,
        responses={
            202: RepositoryExportSerializer,
            409: OpenApiResponse(description="the generation is not completed"),
            429: OpenApiResponse(description="too many active exports"),
            **_errors(400, 401, 403, 404),
        },
        tags=["exports"],
    )
    def create(self, request: Request, project_id: str, generated_id: str) -> Response:
        serializer = RepositoryExportCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        export = exports.repository_export_start(
            generated=self.get_generated(), data=dict(serializer.validated_data), actor=request.user
        )
        return Response(RepositoryExportSerializer(export).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="exports_download",
        summary="Download a zip or tar.gz export",
        responses={
            (200, "application/zip"): OpenApiTypes.BINARY,
            (200, "application/gzip"): OpenApiTypes.BINARY,
            302: OpenApiResponse(description="KILN_DOWNLOAD_REDIRECT (S3): to a short-lived presigned URL"),
            409: OpenApiResponse(description="the archive is not ready"),
            410: OpenApiResponse(description="the archive was removed"),
            **_errors(400, 401, 404),
        },
        tags=["exports"],
    )
    @action(detail=True, methods=["get"])
    def download(self, request: Request, project_id: str, generated_id: str, id: str) -> HttpResponseBase:
        export = self.get_object()
        archive = exports.repository_export_archive(export)
        extension = "zip" if export.provider == "zip" else "tar.gz"
        content_type = "application/zip" if extension == "zip" else "application/gzip"
        return blob_response(
            sha256=archive.sha256,
            size=archive.size,
            filename=generated_project_archive_name(export.generated, extension),
            content_type=content_type,
        )

    @extend_schema(
        operation_id="exports_approve",
        summary="Approve an export awaiting approval with the plan_sha256 you reviewed (maintainer, not an agent; 202)",
        request=ApprovalDecisionSerializer,
        responses={202: RepositoryExportSerializer, **DECISION_ERRORS},
        tags=["exports"],
    )
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, project_id: str, generated_id: str, id: str) -> Response:
        export = self.get_object()
        approval_views.approve(request, approval_views.pending_approval(export=export))
        return Response(RepositoryExportSerializer(self.get_object()).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="exports_reject",
        summary="Reject an export awaiting approval: it ends cancelled with code rejected",
        request=ApprovalRejectSerializer,
        responses={200: RepositoryExportSerializer, **DECISION_ERRORS},
        tags=["exports"],
    )
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, project_id: str, generated_id: str, id: str) -> Response:
        export = self.get_object()
        approval_views.reject(request, approval_views.pending_approval(export=export))
        return Response(RepositoryExportSerializer(self.get_object()).data)

    @extend_schema(
        operation_id="exports_retry",
        summary="Retry a failed or cancelled export (202)",
        request=None,
        responses={
            202: RepositoryExportSerializer,
            409: OpenApiResponse(description="not retryable"),
            **_errors(401, 403, 404),
        },
        tags=["exports"],
    )
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, project_id: str, generated_id: str, id: str) -> Response:
        export = exports.repository_export_retry(export=self.get_object(), actor=request.user)
        return Response(RepositoryExportSerializer(export).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="exports_events",
        summary="Follow an export live: status, progress and log lines as server-sent events",
        responses={**STREAM_RESPONSES, **_errors(401, 404)},
        tags=["exports"],
    )
    @action(**STREAM_ACTION)
    def events(self, request: Request, project_id: str, generated_id: str, id: str) -> HttpResponseBase:
        export = self.get_object()
        return event_stream_response(request._request, model=RepositoryExport, pk=export.pk)

    @extend_schema(
        operation_id="exports_logs",
        summary="The log lines of an export",
        responses={200: JobLogsSerializer, **_errors(401, 404)},
        tags=["exports"],
    )
    @action(detail=True, methods=["get"])
    def logs(self, request: Request, project_id: str, generated_id: str, id: str) -> Response:
        export = self.get_object()
        lines = job_log_lines(model=RepositoryExport, pk=export.pk)
        return Response(JobLogsSerializer({"id": export.pk, "status": export.status, "logs": lines}).data)


@extend_schema_view(
    list=extend_schema(operation_id="connections_list", summary="List your provider connections", tags=["connections"]),
    retrieve=extend_schema(
        operation_id="connections_retrieve", summary="Get a provider connection", tags=["connections"]
    ),
)
class ConnectionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ConnectionSerializer
    lookup_url_kwarg = "id"

    def get_queryset(self) -> QuerySet[ProviderConnection]:
        return ProviderConnection.objects.filter(owner_id=self.request.user.pk).order_by("name", "id")

    @extend_schema(
        operation_id="connections_create",
        summary="Add a provider connection (the token is stored encrypted and never returned)",
        request=ConnectionCreateSerializer,
        responses={201: ConnectionSerializer, **_errors(400, 401)},
        tags=["connections"],
    )
    def create(self, request: Request) -> Response:
        serializer = ConnectionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        connection = connections.connection_create(owner=request.user, **serializer.validated_data)
        return Response(ConnectionSerializer(connection).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="connections_destroy",
        summary="Delete a provider connection",
        responses={204: None, **_errors(401, 404)},
        tags=["connections"],
    )
    def destroy(self, request: Request, id: str) -> Response:
        connections.connection_delete(connection=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        operation_id="connections_verify",
        summary="Check the connection's token against the provider",
        request=None,
        responses={200: ConnectionVerifySerializer, **_errors(400, 401, 404)},
        tags=["connections"],
    )
    @action(detail=True, methods=["post"])
    def verify(self, request: Request, id: str) -> Response:
        result = connections.connection_verify(connection=self.get_object())
        return Response(ConnectionVerifySerializer(result).data)


@extend_schema_view(
    list=extend_schema(
        operation_id="audit_list", summary="List a project's audit events (newest first)", tags=["audit"]
    ),
)
class AuditEventViewSet(mixins.ListModelMixin, ProjectScopedViewSet):
    serializer_class = AuditEventSerializer
    queryset = AuditEvent.objects.none()  # the model, for the schema; get_queryset scopes it
    permission_classes = [ProjectRolePermission]
    filterset_fields = ["action"]

    def get_queryset(self) -> QuerySet[AuditEvent]:
        return AuditEvent.objects.filter(project=self.get_project()).order_by("-created_at", "-id")
