"""Approvals API: the pending approvals a person may decide, and the decisions.

Exports and runs take the same decisions on their own routes (`.../exports/{id}/approve/`,
`/runs/{id}/approve/`); all of them call the services in `apps.approvals.services`.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.approvals import services
from apps.approvals.models import Approval, ApprovalStatus
from apps.approvals.serializers import ApprovalDecisionSerializer, ApprovalRejectSerializer, ApprovalSerializer
from core.exceptions import Conflict
from core.filters import IdFilter

DECISION_ERRORS = {
    400: OpenApiResponse(description="plan_sha256 missing or malformed"),
    403: OpenApiResponse(description="an agent (self_approval), or not a maintainer/owner"),
    404: OpenApiResponse(description="not found (or not yours to decide)"),
    409: OpenApiResponse(description="plan_changed (nothing ran; extra has the current plan), or not pending"),
}


class ApprovalFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ApprovalStatus.choices)
    kind = django_filters.ChoiceFilter(choices=[("export", "export"), ("run_step", "run_step")])
    # a plain number: a choice filter would reveal which project ids exist
    project = IdFilter(field_name="project_id")

    class Meta:
        model = Approval
        fields = ["status", "kind", "project"]


def pending_approval(*, export: Any = None, run: Any = None) -> Approval:
    """The pending approval of an export or run; 409 when it is not waiting for one."""
    rows = Approval.objects.filter(status=ApprovalStatus.PENDING).select_related("project", "run__workflow")
    approval = (rows.filter(export=export) if export is not None else rows.filter(run=run)).first()
    if approval is None:
        raise Conflict("It is not awaiting approval.", code="approval_not_pending")
    return approval


def approve(request: Request, approval: Approval) -> Approval:
    serializer = ApprovalDecisionSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    return services.approval_approve(
        approval=approval, actor=request.user, plan_sha256=serializer.validated_data["plan_sha256"]
    )


def reject(request: Request, approval: Approval) -> Approval:
    serializer = ApprovalRejectSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    return services.approval_reject(approval=approval, actor=request.user, comment=serializer.validated_data["comment"])


@extend_schema_view(
    list=extend_schema(
        operation_id="approvals_list",
        summary="Approvals you may decide (pending by default; ?status=approved|rejected|withdrawn|pending)",
        tags=["approvals"],
    ),
    retrieve=extend_schema(
        operation_id="approvals_retrieve", summary="Get an approval and its plan", tags=["approvals"]
    ),
)
class ApprovalViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ApprovalSerializer
    lookup_url_kwarg = "id"
    filterset_class = ApprovalFilter

    def get_queryset(self) -> QuerySet[Approval]:
        rows = services.approvals_visible_to(self.request.user).select_related("run__workflow")
        if self.action == "list" and "status" not in self.request.query_params:
            rows = rows.filter(status=ApprovalStatus.PENDING)
        return rows.order_by("-requested_at", "-id")

    @extend_schema(
        operation_id="approvals_approve",
        summary="Approve the plan with the plan_sha256 you reviewed; the job then runs exactly that plan (202)",
        request=ApprovalDecisionSerializer,
        responses={202: ApprovalSerializer, **DECISION_ERRORS},
        tags=["approvals"],
    )
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, id: str) -> Response:
        approval = approve(request, self.get_object())
        return Response(ApprovalSerializer(approval).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="approvals_reject",
        summary="Reject: the job ends cancelled with code rejected",
        request=ApprovalRejectSerializer,
        responses={200: ApprovalSerializer, **DECISION_ERRORS},
        tags=["approvals"],
    )
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, id: str) -> Response:
        return Response(ApprovalSerializer(reject(request, self.get_object())).data)
