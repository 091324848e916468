"""The template catalog: templates that projects are generated from."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.models import TimeStampedModel


class TemplateSource(models.TextChoices):
    BUILTIN = "builtin", "Built-in"
    UPLOAD = "upload", "Uploaded archive"


class ProjectTemplate(TimeStampedModel):
    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    version = models.CharField(max_length=50)
    parameters = models.JSONField(default=dict, help_text="JSON Schema of the template's parameters")
    exclude = models.JSONField(default=list, blank=True)
    copy_without_render = models.JSONField(default=list, blank=True)
    source = models.CharField(max_length=16, choices=TemplateSource.choices)
    source_path = models.CharField(
        max_length=500, help_text="folder of the template, relative to its source root (built-in or upload storage)"
    )
    checksum = models.CharField(max_length=64, help_text="sha256 over the template's files")
    file_count = models.PositiveIntegerField(default=0)
    total_bytes = models.PositiveBigIntegerField(default=0)
    is_active = models.BooleanField(default=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="uploaded_templates"
    )

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(condition=Q(source__in=TemplateSource.values), name="template_source_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.slug} {self.version}"


class TemplateFile(models.Model):
    """One file of a template's content (by checksum), kept in the blob store: what a machine
    without the uploaded folder materialises to render the template (`template_folder`)."""

    checksum = models.CharField(max_length=64, help_text="the template content's checksum (ProjectTemplate.checksum)")
    path = models.CharField(max_length=1024, help_text="relative POSIX path, template.yaml included")
    mode = models.PositiveIntegerField(help_text="0o644 or 0o755")
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64, help_text="the blob holding the file's bytes")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["checksum", "path"], name="template_file_unique_path")]
        indexes = [models.Index(fields=["sha256"], name="template_file_sha256")]

    def __str__(self) -> str:
        return f"{self.checksum[:12]}:{self.path}"
