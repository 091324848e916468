"""The template catalog: templates that projects are generated from, and their versions.

A `ProjectTemplate` is the named thing people pick (slug, name, where it comes from, who owns
it); each `TemplateVersion` is one immutable recording of its files (content-addressed in the
blob store through `TemplateFile`, keyed by the version's checksum), its parameter schema and
its format. The template's `version`, `parameters`, `format`, `checksum`, ... columns repeat its
latest version's, kept by `apps.templates.services.versions` in the transaction that records a
version, so lists and callers that only need the latest read one row.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.models import TimeStampedModel


class TemplateSource(models.TextChoices):
    BUILTIN = "builtin", "Built-in"
    UPLOAD = "upload", "Uploaded archive"
    GIT = "git", "Git repository"


class TemplateFormat(models.TextChoices):
    NATIVE = "native", "Kiln (template.yaml)"
    COOKIECUTTER = "cookiecutter", "Cookiecutter"
    COPIER = "copier", "Copier"
    BLUEPRINT = "blueprint", "Blueprint (structure document)"


class ProjectTemplate(TimeStampedModel):
    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    # the latest version's (see the module docstring)
    version = models.CharField(max_length=50)
    format = models.CharField(max_length=16, choices=TemplateFormat.choices, default=TemplateFormat.NATIVE)
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
    # git sources (source == "git"): where versions come from
    git_url = models.CharField(max_length=2048, blank=True, default="")
    git_ref = models.CharField(max_length=255, blank=True, default="", help_text="branch for untagged heads")
    git_subdirectory = models.CharField(max_length=1024, blank=True, default="")
    git_connection = models.ForeignKey(
        "projects.ProviderConnection",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="git_templates",
        help_text="the connection whose token reads a private repository",
    )
    last_synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(condition=Q(source__in=TemplateSource.values), name="template_source_valid"),
            models.CheckConstraint(condition=Q(format__in=TemplateFormat.values), name="template_format_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.slug} {self.version}"


class TemplateVersion(models.Model):
    """One immutable version of a template: its files (by `checksum`), schema and format."""

    template = models.ForeignKey(ProjectTemplate, on_delete=models.CASCADE, related_name="versions")
    version = models.CharField(max_length=50, help_text="the version label (template.yaml's version, a git tag)")
    format = models.CharField(max_length=16, choices=TemplateFormat.choices, default=TemplateFormat.NATIVE)
    parameters = models.JSONField(default=dict, help_text="JSON Schema of the version's parameters")
    checksum = models.CharField(max_length=64, help_text="sha256 over the version's files; keys its TemplateFile rows")
    commit = models.CharField(max_length=64, blank=True, default="", help_text="git commit (git sources)")
    exclude = models.JSONField(default=list, blank=True)
    copy_without_render = models.JSONField(default=list, blank=True)
    file_count = models.PositiveIntegerField(default=0)
    total_bytes = models.PositiveBigIntegerField(default=0)
    uses_code = models.JSONField(
        default=list, blank=True, help_text="what of the version runs code (hooks, tasks, extensions)"
    )
    is_trusted = models.BooleanField(default=False, help_text="staff allowed the version's code to run, isolated")
    source_path = models.CharField(
        max_length=500,
        blank=True,
        default="",
        help_text="a local folder holding exactly these files, relative to the source root (built-in or "
        "upload storage); empty when only the blob store has them",
    )
    sort_key = models.CharField(
        max_length=400, editable=False, help_text="orders versions (apps.templates.versioning); newest is greatest"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="template_versions"
    )

    class Meta:
        ordering = ["-sort_key", "-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["template", "version"], name="template_version_unique_label"),
            models.CheckConstraint(condition=Q(format__in=TemplateFormat.values), name="template_version_format_valid"),
        ]
        indexes = [models.Index(fields=["template", "sort_key"], name="template_version_order")]

    def __str__(self) -> str:
        return f"{self.template.slug} {self.version}"


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
