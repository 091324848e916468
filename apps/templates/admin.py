"""Admin pages of the template catalog."""

from __future__ import annotations

from django.contrib import admin

from apps.templates.models import ProjectTemplate


@admin.register(ProjectTemplate)
class ProjectTemplateAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "version", "source", "file_count", "is_active", "updated_at")
    list_filter = ("source", "is_active")
    search_fields = ("slug", "name", "description")
    readonly_fields = ("checksum", "file_count", "total_bytes", "source", "source_path", "created_at", "updated_at")
