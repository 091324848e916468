"""Workflows and runs API: CRUD for workflows; runs started with 202; logs, cancel, retry."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from django.http.response import HttpResponseBase
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.agents.models import Agent
from apps.agents.services.agents import agent_for_user
from apps.approvals import views as approval_views
from apps.approvals.serializers import ApprovalDecisionSerializer, ApprovalRejectSerializer
from apps.approvals.views import DECISION_ERRORS
from apps.events.drf import STREAM_ACTION, STREAM_RESPONSES
from apps.events.streams import event_stream_response
from apps.workflows.models import Workflow, WorkflowRun
from apps.workflows.serializers import (
    RunLogsSerializer,
    RunStartSerializer,
    WorkflowCreateSerializer,
    WorkflowRunSerializer,
    WorkflowSerializer,
    WorkflowUpdateSerializer,
)
from apps.workflows.services import workflow_executor as executor
from core.exceptions import PermissionDenied, ValidationFailed
from core.filters import IdFilter
from core.jobs import JobStatus

NOT_FOUND = OpenApiResponse(description="Not found (or not visible to the caller)")


class RunFilter(django_filters.FilterSet):
    # a plain number: a choice filter would reveal which workflow ids exist
    workflow = IdFilter(field_name="workflow_id")
    status = django_filters.ChoiceFilter(choices=JobStatus.choices)

    class Meta:
        model = WorkflowRun
        fields = ["workflow", "status"]


def _step_payload(data: dict[str, Any], raw: Any) -> dict[str, Any]:
    """`if` cannot be a serializer field name; take the raw steps (validated by the executor)."""
    if isinstance(raw, dict) and "steps" in raw:
        data["steps"] = raw["steps"]
    return data


@extend_schema_view(
    list=extend_schema(operation_id="workflows_list", summary="List workflows you can see", tags=["workflows"]),
    retrieve=extend_schema(operation_id="workflows_retrieve", summary="Get a workflow", tags=["workflows"]),
)
class WorkflowViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = WorkflowSerializer
    lookup_url_kwarg = "id"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Workflow]:
        return executor.workflows_visible_to(self.request.user)

    @extend_schema(
        operation_id="workflows_create",
        summary="Create a workflow; each step's input is validated against its type",
        request=WorkflowCreateSerializer,
        responses={201: WorkflowSerializer, 400: OpenApiResponse(description="invalid step or reference")},
        tags=["workflows"],
    )
    def create(self, request: Request) -> Response:
        serializer = WorkflowCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = _step_payload(dict(serializer.validated_data), request.data)
        workflow = executor.workflow_create(actor=request.user, **data)
        return Response(WorkflowSerializer(workflow).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="workflows_partial_update",
        summary="Change a workflow",
        request=WorkflowUpdateSerializer,
        responses={200: WorkflowSerializer, 400: OpenApiResponse(description="invalid"), 404: NOT_FOUND},
        tags=["workflows"],
    )
    def partial_update(self, request: Request, id: str) -> Response:
        workflow = self.get_object()
        serializer = WorkflowUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = _step_payload(dict(serializer.validated_data), request.data)
        workflow = executor.workflow_update(workflow=workflow, actor=request.user, **data)
        return Response(WorkflowSerializer(workflow).data)

    @extend_schema(
        operation_id="workflows_destroy",
        summary="Delete a workflow",
        responses={204: None, 404: NOT_FOUND},
        tags=["workflows"],
    )
    def destroy(self, request: Request, id: str) -> Response:
        executor.workflow_delete(workflow=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        operation_id="workflow_runs_create",
        summary="Start a run of the workflow (202), optionally as one of your agents",
        request=RunStartSerializer,
        responses={202: WorkflowRunSerializer, 400: OpenApiResponse(description="invalid inputs"), 404: NOT_FOUND},
        tags=["runs"],
    )
    @action(detail=True, methods=["post"], url_path="runs")
    def runs(self, request: Request, id: str) -> Response:
        workflow = self.get_object()
        serializer = RunStartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        agent = None
        if serializer.validated_data.get("agent"):
            if agent_for_user(request.user) is not None:
                raise PermissionDenied("An agent cannot start runs as another agent.")
            agent = Agent.objects.filter(pk=serializer.validated_data["agent"], owner_id=request.user.pk).first()
            if agent is None:
                raise ValidationFailed(
                    "Unknown agent.", code="agent_not_found", extra={"fields": {"agent": ["Unknown."]}}
                )
        run = executor.workflow_run_start(
            workflow=workflow, inputs=serializer.validated_data.get("inputs"), actor=request.user, agent=agent
        )
        return Response(WorkflowRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(
    list=extend_schema(operation_id="runs_list", summary="List workflow runs you can see", tags=["runs"]),
    retrieve=extend_schema(operation_id="runs_retrieve", summary="Get a run with its steps", tags=["runs"]),
)
class WorkflowRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = WorkflowRunSerializer
    lookup_url_kwarg = "id"
    filterset_class = RunFilter

    def get_queryset(self) -> QuerySet[WorkflowRun]:
        return (
            executor.runs_visible_to(self.request.user)
            .prefetch_related("step_runs", "approvals__decided_by")
            .order_by("-created_at", "-id")
        )

    @extend_schema(
        operation_id="runs_logs",
        summary="The logs of each step of a run",
        responses={200: RunLogsSerializer, 404: NOT_FOUND},
        tags=["runs"],
    )
    @action(detail=True, methods=["get"])
    def logs(self, request: Request, id: str) -> Response:
        run = self.get_object()
        steps = [
            {"id": s.step_id, "status": s.status, "attempt": s.attempt, "logs": s.logs} for s in run.step_runs.all()
        ]
        return Response(RunLogsSerializer({"run": run.pk, "steps": steps}).data)

    @extend_schema(
        operation_id="runs_events",
        summary="Follow a run live: status, progress (steps) and log lines as server-sent events",
        responses={**STREAM_RESPONSES, 404: NOT_FOUND},
        tags=["runs"],
    )
    @action(**STREAM_ACTION)
    def events(self, request: Request, id: str) -> HttpResponseBase:
        run = self.get_object()
        return event_stream_response(request._request, model=WorkflowRun, pk=run.pk)

    @extend_schema(
        operation_id="runs_cancel",
        summary="Cancel a run at the next step boundary",
        request=None,
        responses={200: WorkflowRunSerializer, 409: OpenApiResponse(description="already finished"), 404: NOT_FOUND},
        tags=["runs"],
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, id: str) -> Response:
        run = executor.workflow_run_cancel(run=self.get_object(), actor=request.user)
        return Response(WorkflowRunSerializer(run).data)

    @extend_schema(
        operation_id="runs_approve",
        summary="Approve the step a run waits at, with the plan_sha256 you reviewed (maintainer, not an agent; 202)",
        request=ApprovalDecisionSerializer,
        responses={202: WorkflowRunSerializer, **DECISION_ERRORS},
        tags=["runs"],
    )
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, id: str) -> Response:
        approval_views.approve(request, approval_views.pending_approval(run=self.get_object()))
        return Response(WorkflowRunSerializer(self.get_object()).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="runs_reject",
        summary="Reject the step a run waits at: the run ends cancelled with code rejected",
        request=ApprovalRejectSerializer,
        responses={200: WorkflowRunSerializer, **DECISION_ERRORS},
        tags=["runs"],
    )
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, id: str) -> Response:
        approval_views.reject(request, approval_views.pending_approval(run=self.get_object()))
        return Response(WorkflowRunSerializer(self.get_object()).data)

    @extend_schema(
        operation_id="runs_retry",
        summary="Retry a failed run from its failed step (202)",
        request=None,
        responses={202: WorkflowRunSerializer, 409: OpenApiResponse(description="not failed"), 404: NOT_FOUND},
        tags=["runs"],
    )
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, id: str) -> Response:
        run = executor.workflow_run_retry(run=self.get_object(), actor=request.user)
        return Response(WorkflowRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)
