"""Projects, their members, generated projects, their files, provider connections and exports."""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings
from django.db import connections, models
from django.db.models import Q

from core.jobs import Job
from core.models import TimeStampedModel


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    DEVELOPER = "developer", "Developer"
    MAINTAINER = "maintainer", "Maintainer"
    OWNER = "owner", "Owner"


# Each role may do everything the roles before it may.
ROLE_RANK = {Role.VIEWER: 1, Role.DEVELOPER: 2, Role.MAINTAINER: 3, Role.OWNER: 4}


class Project(TimeStampedModel):
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=120, unique=True)
    description = models.TextField(blank=True, default="", max_length=2000)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_projects")
    # Counters kept by signals (apps/projects/signals.py).
    generations_completed = models.PositiveIntegerField(default=0, editable=False)
    generated_bytes = models.PositiveBigIntegerField(default=0, editable=False)
    exports_completed = models.PositiveIntegerField(default=0, editable=False)
    # GitHub/GitLab exports an agent starts (REST, workflows, MCP) wait for a person's approval
    agent_exports_require_approval = models.BooleanField(
        default=True, help_text="exports to GitHub/GitLab started by an agent wait for a maintainer's approval"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class ProjectMembership(TimeStampedModel):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="project_memberships")
    role = models.CharField(max_length=16, choices=Role.choices)

    class Meta:
        ordering = ["project_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique_per_project"),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="membership_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) in {self.project}"


class GeneratedProject(Job):
    """One rendering of a template with parameters into `generated-projects/<project>/<id>/`."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="generated_projects")
    template = models.ForeignKey(
        "templates.ProjectTemplate", on_delete=models.PROTECT, related_name="generated_projects"
    )
    template_version = models.CharField(max_length=50, help_text="the version's label, as the API shows it")
    template_version_ref = models.ForeignKey(
        "templates.TemplateVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="generations",
        help_text="the version rendered (null only for generations of versions recorded before versions existed)",
    )
    template_checksum = models.CharField(max_length=64)
    parameters = models.JSONField(default=dict)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="generations"
    )
    file_count = models.PositiveIntegerField(default=0)
    total_bytes = models.PositiveBigIntegerField(default=0)
    content_sha256 = models.CharField(max_length=64, blank=True, default="")
    deleted_at = models.DateTimeField(
        null=True, blank=True, help_text="deleted by a person: files and archives removed, the row kept for its exports"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["pending", "running", "completed", "failed", "cancelled"]),
                name="generated_status_valid",
            ),
            models.CheckConstraint(
                condition=~Q(status="completed") | ~Q(content_sha256=""), name="generated_completed_has_hash"
            ),
        ]
        indexes = [models.Index(fields=["project", "status"], name="generated_project_status")]

    def __str__(self) -> str:
        return f"{self.template.slug} → {self.project} #{self.pk}"


FileRow = tuple[str, int, str, int, bool]  # path, size, sha256, mode, is_binary


class ProjectFileQuerySet(models.QuerySet["ProjectFile"]):
    def insert_many(self, generated_id: int, rows: Sequence[FileRow]) -> None:
        """Insert a generation's file rows with plain multi-row INSERTs.

        `bulk_create` builds and prepares a model instance per row (~20 ms per 1,000 files,
        against ~3 ms for the same rows here); these rows need none of it (no defaults to
        compute, no signals, which bulk_create does not send either). Runs inside the
        caller's transaction.
        """
        meta = ProjectFile._meta
        connection = connections[self.db]
        quote = connection.ops.quote_name
        names = ("generated", "path", "size", "sha256", "mode", "is_binary")
        column = {field.name: field.column for field in meta.concrete_fields if field.column}
        columns = ", ".join(quote(column[name]) for name in names)
        limit = connection.features.max_query_params or 6000
        per_statement = max(1, min(1000, limit // len(names)))
        with connection.cursor() as cursor:
            for start in range(0, len(rows), per_statement):
                batch = rows[start : start + per_statement]
                values = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(batch))
                cursor.execute(
                    f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES {values}",  # noqa: S608 - names from the model
                    [value for row in batch for value in (generated_id, *row)],
                )


class ProjectFile(models.Model):
    generated = models.ForeignKey(GeneratedProject, on_delete=models.CASCADE, related_name="files")
    path = models.CharField(max_length=1024, help_text="relative POSIX path")
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    mode = models.PositiveIntegerField(help_text="permission bits, 0o644 or 0o755")
    is_binary = models.BooleanField(default=False)

    objects = ProjectFileQuerySet.as_manager()

    class Meta:
        ordering = ["path"]
        constraints = [
            models.UniqueConstraint(fields=["generated", "path"], name="project_file_unique_path"),
        ]
        # the blob sweeper asks "does any file still point at these blobs?" (apps.storage.sweep)
        indexes = [models.Index(fields=["sha256"], name="project_file_sha256")]

    def __str__(self) -> str:
        return self.path


class Provider(models.TextChoices):
    GITHUB = "github", "GitHub"
    GITLAB = "gitlab", "GitLab"
    GIT = "git", "Git remote"


class ExportProvider(models.TextChoices):
    GITHUB = "github", "GitHub"
    GITLAB = "gitlab", "GitLab"
    GIT = "git", "Git remote"
    ZIP = "zip", "Zip archive"
    TAR_GZ = "tar.gz", "tar.gz archive"


class ProviderConnection(TimeStampedModel):
    """Credentials for a provider; the token is encrypted at rest and never shown again."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="connections")
    provider = models.CharField(max_length=16, choices=Provider.choices)
    name = models.CharField(max_length=100)
    base_url = models.CharField(max_length=500, blank=True, default="", help_text="API root; blank: the provider's")
    token_encrypted = models.TextField(editable=False)
    token_hint = models.CharField(max_length=8, editable=False, help_text="last four characters of the token")
    verified_at = models.DateTimeField(null=True, blank=True)
    account = models.CharField(max_length=200, blank=True, default="", help_text="login seen by the last verify")

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="connection_name_unique_per_owner"),
            models.CheckConstraint(condition=Q(provider__in=Provider.values), name="connection_provider_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.provider})"


class RepositoryExport(Job):
    """One publication of a generated project to a provider, a git remote or an archive."""

    generated = models.ForeignKey(GeneratedProject, on_delete=models.CASCADE, related_name="exports")
    provider = models.CharField(max_length=16, choices=ExportProvider.choices)
    connection = models.ForeignKey(
        ProviderConnection, null=True, blank=True, on_delete=models.SET_NULL, related_name="exports"
    )
    target = models.JSONField(default=dict, blank=True, help_text="owner/namespace, name, visibility, ... as requested")
    target_key = models.CharField(max_length=600, blank=True, default="", db_index=True)
    branch = models.CharField(max_length=200, default="main")
    remote_url = models.CharField(max_length=2000, blank=True, default="")
    web_url = models.CharField(max_length=2000, blank=True, default="")
    commit_sha = models.CharField(max_length=64, blank=True, default="")
    remote_repo_id = models.CharField(max_length=100, blank=True, default="")
    remote_full_name = models.CharField(max_length=500, blank=True, default="")
    create_requested_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="when the first request to create the remote repository left"
    )
    pushed = models.BooleanField(default=False, help_text="False when the remote already had the commit")
    repository_created = models.BooleanField(
        default=False,
        editable=False,
        help_text="True when this export's own create request made the remote repository (never when it adopted one)",
    )
    archive_path = models.CharField(
        max_length=500, blank=True, default="", help_text="the archive's key in the blob store"
    )
    archive_size = models.PositiveBigIntegerField(null=True, blank=True)
    archive_sha256 = models.CharField(max_length=64, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="exports"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(provider__in=ExportProvider.values), name="export_provider_valid"),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "running", "completed", "failed", "cancelled", "awaiting_approval"]),
                name="export_status_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["generated", "status"], name="export_generated_status"),
            models.Index(fields=["archive_sha256"], name="export_archive_sha256"),
        ]

    def __str__(self) -> str:
        return f"export #{self.pk} of {self.generated_id} to {self.provider}"


class AuditEvent(models.Model):
    """Who did what to which object, when. Details never hold secrets."""

    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    actor_label = models.CharField(max_length=200, blank=True, default="", help_text="username or agent name")
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    detail = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "-created_at"], name="audit_project_time")]

    def __str__(self) -> str:
        return f"{self.action} {self.object_type}#{self.object_id} by {self.actor_label or '-'}"
