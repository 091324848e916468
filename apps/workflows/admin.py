from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.approvals.admin import decide, pending_of
from apps.workflows.models import StepRun, Workflow, WorkflowRun
from apps.workflows.services import workflow_executor
from core.exceptions import ApplicationError


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "created_by", "created_at")
    search_fields = ("name", "description")
    list_select_related = ("project", "created_by")
    readonly_fields = ("steps", "inputs_schema", "created_by", "created_at", "updated_at")


class StepRunInline(admin.TabularInline):
    model = StepRun
    extra = 0
    can_delete = False
    fields = (
        "index",
        "step_id",
        "type",
        "status",
        "attempt",
        "started_at",
        "finished_at",
        "error",
        "output",
        "compensation",
    )
    readonly_fields = fields
    max_num = 0


@admin.register(WorkflowRun)
class WorkflowRunAdmin(admin.ModelAdmin):
    list_display = ("id", "workflow", "status", "actor", "agent", "attempts", "created_at", "finished_at")
    list_filter = ("status",)
    search_fields = ("workflow__name",)
    list_select_related = ("workflow", "actor", "agent")
    readonly_fields = [f.name for f in WorkflowRun._meta.fields]
    inlines = [StepRunInline]
    actions = ["retry_runs", "cancel_runs", "approve_runs", "reject_runs"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Retry selected failed/cancelled runs")
    def retry_runs(self, request: HttpRequest, queryset: QuerySet[WorkflowRun]) -> None:
        for run in queryset:
            try:
                workflow_executor.workflow_run_retry(run=run, actor=run.actor)
            except ApplicationError as exc:
                self.message_user(request, f"#{run.pk}: {exc.message}", level=messages.WARNING)

    @admin.action(description="Cancel selected runs")
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet[WorkflowRun]) -> None:
        for run in queryset:
            try:
                workflow_executor.workflow_run_cancel(run=run, actor=run.actor)
            except ApplicationError as exc:
                self.message_user(request, f"#{run.pk}: {exc.message}", level=messages.WARNING)

    @admin.action(description="Approve the plans of runs awaiting approval")
    def approve_runs(self, request: HttpRequest, queryset: QuerySet[WorkflowRun]) -> None:
        decide(self, request, pending_of(run__in=queryset), approve=True)

    @admin.action(description="Reject runs awaiting approval")
    def reject_runs(self, request: HttpRequest, queryset: QuerySet[WorkflowRun]) -> None:
        decide(self, request, pending_of(run__in=queryset), approve=False)
