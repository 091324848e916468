"""Admin pages for projects, templates and generations. Thin: actions call services."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.projects.models import GeneratedProject, Project, ProjectFile, ProjectMembership, ProjectTemplate
from apps.projects.services import generation
from core.exceptions import ApplicationError


class MembershipInline(admin.TabularInline):
    model = ProjectMembership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "owner", "created_at")
    search_fields = ("name", "slug", "owner__username")
    readonly_fields = ("created_at", "updated_at")
    inlines = [MembershipInline]
    list_select_related = ("owner",)


@admin.register(ProjectTemplate)
class ProjectTemplateAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "version", "source", "file_count", "is_active", "updated_at")
    list_filter = ("source", "is_active")
    search_fields = ("slug", "name", "description")
    readonly_fields = ("checksum", "file_count", "total_bytes", "source", "source_path", "created_at", "updated_at")


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
