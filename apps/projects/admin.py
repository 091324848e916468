"""Admin pages for projects and generations. Thin: actions call services."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.approvals.admin import decide, pending_of
from apps.projects.models import (
    AuditEvent,
    GeneratedProject,
    Project,
    ProjectFile,
    ProjectMembership,
    ProviderConnection,
    RepositoryExport,
)
from apps.projects.services import exports, generation
from core.exceptions import ApplicationError


class MembershipInline(admin.TabularInline):
    model = ProjectMembership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "owner", "generations_completed", "exports_completed", "created_at")
    search_fields = ("name", "slug", "owner__username")
    readonly_fields = ("generations_completed", "generated_bytes", "exports_completed", "created_at", "updated_at")
    inlines = [MembershipInline]
    list_select_related = ("owner",)


class ProjectFileInline(admin.TabularInline):
    model = ProjectFile
    extra = 0
    can_delete = False
    fields = ("path", "size", "mode", "is_binary", "sha256")
    readonly_fields = fields
    show_change_link = False
    max_num = 0


@admin.register(GeneratedProject)
class GeneratedProjectAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "project",
        "template",
        "status",
        "progress",
        "file_count",
        "created_by",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "template")
    search_fields = ("project__name", "template__slug", "content_sha256")
    list_select_related = ("project", "template", "created_by")
    readonly_fields = [f.name for f in GeneratedProject._meta.fields] + ["progress", "duration"]
    inlines = [ProjectFileInline]
    actions = ["retry_generations", "cancel_generations"]

    @admin.display(description="progress")
    def progress(self, obj: GeneratedProject) -> str:
        return f"{obj.progress_done}/{obj.progress_total}"

    @admin.display(description="duration (s)")
    def duration(self, obj: GeneratedProject) -> str:
        seconds = obj.duration_seconds
        return f"{seconds:.2f}" if seconds is not None else "-"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def _each(self, request: HttpRequest, queryset: QuerySet[GeneratedProject], service: Any, verb: str) -> None:
        done = 0
        for generated in queryset.select_related("project"):
            try:
                service(generated=generated, actor=_acting_owner(request, generated))
                done += 1
            except ApplicationError as exc:
                self.message_user(request, f"#{generated.pk}: {exc.message}", level=messages.WARNING)
        self.message_user(request, f"{verb} {done} generation(s).")

    @admin.action(description="Retry selected failed/cancelled generations")
    def retry_generations(self, request: HttpRequest, queryset: QuerySet[GeneratedProject]) -> None:
        self._each(request, queryset, generation.generated_project_retry, "Retried")

    @admin.action(description="Cancel selected pending/running generations")
    def cancel_generations(self, request: HttpRequest, queryset: QuerySet[GeneratedProject]) -> None:
        self._each(request, queryset, generation.generated_project_cancel, "Cancelled")


def _acting_owner(request: HttpRequest, generated: GeneratedProject) -> Any:
    """Staff act through the admin as the project's owner would (the admin is trusted)."""
    return generated.project.owner


@admin.register(ProviderConnection)
class ProviderConnectionAdmin(admin.ModelAdmin):
    list_display = ("name", "provider", "owner", "base_url", "token_hint", "account", "verified_at")
    list_filter = ("provider",)
    search_fields = ("name", "owner__username", "account")
    fields = ("owner", "provider", "name", "base_url", "token_hint", "account", "verified_at", "created_at")
    readonly_fields = ("owner", "provider", "token_hint", "account", "verified_at", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tokens are entered through the API, which encrypts them


@admin.register(RepositoryExport)
class RepositoryExportAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "generated",
        "provider",
        "status",
        "remote_url",
        "commit_sha",
        "attempts",
        "created_at",
        "finished_at",
    )
    list_filter = ("provider", "status")
    search_fields = ("remote_url", "remote_full_name", "commit_sha")
    list_select_related = ("generated", "generated__template", "generated__project")
    readonly_fields = [f.name for f in RepositoryExport._meta.fields] + ["duration"]
    actions = ["retry_exports", "re_export", "approve_exports", "reject_exports"]

    @admin.display(description="duration (s)")
    def duration(self, obj: RepositoryExport) -> str:
        seconds = obj.duration_seconds
        return f"{seconds:.2f}" if seconds is not None else "-"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Retry selected failed/cancelled exports")
    def retry_exports(self, request: HttpRequest, queryset: QuerySet[RepositoryExport]) -> None:
        done = 0
        for export in queryset.select_related("generated__project"):
            try:
                exports.repository_export_retry(export=export, actor=export.generated.project.owner)
                done += 1
            except ApplicationError as exc:
                self.message_user(request, f"#{export.pk}: {exc.message}", level=messages.WARNING)
        self.message_user(request, f"Retried {done} export(s).")

    @admin.action(description="Approve the plans of exports awaiting approval")
    def approve_exports(self, request: HttpRequest, queryset: QuerySet[RepositoryExport]) -> None:
        decide(self, request, pending_of(export__in=queryset), approve=True)

    @admin.action(description="Reject exports awaiting approval")
    def reject_exports(self, request: HttpRequest, queryset: QuerySet[RepositoryExport]) -> None:
        decide(self, request, pending_of(export__in=queryset), approve=False)

    @admin.action(description="Export again to the same target")
    def re_export(self, request: HttpRequest, queryset: QuerySet[RepositoryExport]) -> None:
        done = 0
        for export in queryset.select_related("generated__project", "connection"):
            data: dict[str, Any] = {"provider": export.provider}
            if export.connection_id:
                data["connection"] = export.connection_id
            if export.provider in ("github", "gitlab"):
                repository = {key: value for key, value in export.target.items() if value not in ("", [], None)}
                data["repository"] = {**repository, "default_branch": export.branch}
            elif export.provider == "git":
                data.update(remote_url=export.target.get("remote_url"), branch=export.branch)
            actor = export.connection.owner if export.connection else export.generated.project.owner
            try:
                exports.repository_export_start(generated=export.generated, data=data, actor=actor)
                done += 1
            except ApplicationError as exc:
                self.message_user(request, f"#{export.pk}: {exc.message}", level=messages.WARNING)
        self.message_user(request, f"Started {done} export(s).")


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "action", "actor_label", "project", "object_type", "object_id")
    list_filter = ("action", "object_type")
    search_fields = ("action", "actor_label", "object_id", "request_id")
    list_select_related = ("project",)
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
