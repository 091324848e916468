"""Template updates of exported repositories, fleet rollouts of one version, and their items.

A `TemplateUpdate` is a job: it merges a new template version into the repository an export
made (or adopted) and leaves a branch, a pull/merge request or a preview. What it achieves is
recorded at once (the new generation, the target's head, the commit before it is pushed, the
pull request right after it is opened), so a redelivered job continues instead of repeating.
A `Rollout` is a job that keeps a bounded number of item updates running until every item of
the fleet is finished.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.jobs import Job
from core.models import TimeStampedModel


class UpdateMode(models.TextChoices):
    PREVIEW = "preview", "Preview (nothing pushed)"
    BRANCH = "branch", "Push a branch"
    PULL_REQUEST = "pull_request", "Push a branch and open a pull/merge request"


class UpdateOutcome(models.TextChoices):
    PENDING = "", "Not finished"
    PREVIEWED = "previewed", "Previewed; nothing pushed"
    NOTHING_TO_UPDATE = "nothing_to_update", "The target already matches; nothing pushed or opened"
    UP_TO_DATE = "up_to_date", "The update branch already holds this result"
    PUSHED = "pushed", "Branch pushed"
    PROPOSED = "proposed", "Branch pushed and a pull/merge request opened or updated"


class TemplateUpdate(Job):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="template_updates")
    generated = models.ForeignKey(
        "projects.GeneratedProject", on_delete=models.CASCADE, related_name="updates", help_text="the base"
    )
    export = models.ForeignKey(
        "projects.RepositoryExport", on_delete=models.CASCADE, related_name="updates", help_text="the target"
    )
    mode = models.CharField(max_length=16, choices=UpdateMode.choices)
    from_version = models.CharField(max_length=100)
    to_version = models.CharField(max_length=100)
    parameters = models.JSONField(default=dict, help_text="the answers the new version is rendered with")
    request_key = models.CharField(max_length=64, db_index=True, help_text="same target, version, answers and mode")
    render_key = models.CharField(max_length=64, db_index=True, help_text="same project, version and answers")
    new_generation = models.ForeignKey(
        "projects.GeneratedProject", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    branch = models.CharField(max_length=255, blank=True, default="")
    base_commit = models.CharField(max_length=64, blank=True, default="", help_text="the target branch's head")
    commit_sha = models.CharField(max_length=64, blank=True, default="", help_text="recorded before it is pushed")
    pushed = models.BooleanField(default=False)
    outcome = models.CharField(max_length=32, choices=UpdateOutcome.choices, blank=True, default="")
    pull_request = models.JSONField(null=True, blank=True, help_text="{number, url} of the pull/merge request")
    proposal_state = models.CharField(
        max_length=16, blank=True, default="", help_text="open | closed | merged, as Kiln last saw the result"
    )
    merged_at = models.DateTimeField(null=True, blank=True, help_text="when Kiln saw the result on the default branch")
    files = models.JSONField(default=list, blank=True, help_text="[{path, outcome, ...}], conflicts first")
    conflicts = models.JSONField(default=list, blank=True, help_text="paths left with conflicts")
    diff_sha256 = models.CharField(max_length=64, blank=True, default="", help_text="blob of the unified diff")
    diff_size = models.PositiveBigIntegerField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="template_updates"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["pending", "running", "completed", "failed", "cancelled"]),
                name="template_update_status_valid",
            ),
            models.CheckConstraint(condition=Q(mode__in=UpdateMode.values), name="template_update_mode_valid"),
        ]
        indexes = [
            models.Index(fields=["export", "branch"], name="template_update_branch"),
            models.Index(fields=["project", "status"], name="template_update_project_status"),
        ]

    def __str__(self) -> str:
        return f"update #{self.pk} of export {self.export_id} to {self.to_version}"


class Rollout(Job):
    template = models.ForeignKey("templates.ProjectTemplate", on_delete=models.CASCADE, related_name="rollouts")
    to_version = models.CharField(max_length=100)
    mode = models.CharField(max_length=16, choices=UpdateMode.choices)
    projects = models.JSONField(null=True, blank=True, help_text="project ids asked for; null: every project")
    request_key = models.CharField(max_length=64, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="rollouts"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["pending", "running", "completed", "failed", "cancelled"]),
                name="rollout_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"rollout #{self.pk} of {self.template_id} to {self.to_version}"


class RolloutItemStatus(models.TextChoices):
    PENDING = "pending", "Waiting for a slot"
    RUNNING = "running", "Update running"
    COMPLETED = "completed", "Update completed"
    FAILED = "failed", "Update failed"
    CANCELLED = "cancelled", "Cancelled"


class RolloutItem(TimeStampedModel):
    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="items")
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    generated = models.ForeignKey("projects.GeneratedProject", on_delete=models.CASCADE, related_name="+")
    export = models.ForeignKey("projects.RepositoryExport", on_delete=models.CASCADE, related_name="+")
    update = models.ForeignKey(
        TemplateUpdate, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="the item's job"
    )
    status = models.CharField(max_length=16, choices=RolloutItemStatus.choices, default=RolloutItemStatus.PENDING)
    outcome = models.CharField(max_length=32, blank=True, default="")
    pull_request = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["rollout_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["rollout", "export"], name="rollout_item_unique_target"),
            models.CheckConstraint(condition=Q(status__in=RolloutItemStatus.values), name="rollout_item_status_valid"),
        ]

    def __str__(self) -> str:
        return f"rollout {self.rollout_id} item {self.pk} ({self.status})"


class Adoption(Job):
    """Linking a repository Kiln did not make (Copier or cruft made it) to a registered template version.

    The job reads the repository's answers file, renders the recorded version with the recorded
    answers as a generation (the base of its updates) and records the repository as that
    generation's export target, after which it updates like any other.
    """

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="adoptions")
    provider = models.CharField(max_length=16)
    connection = models.ForeignKey(
        "projects.ProviderConnection", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    target = models.JSONField(default=dict, blank=True)
    target_key = models.CharField(max_length=600, blank=True, default="")
    branch = models.CharField(max_length=200, blank=True, default="")
    template_slug = models.CharField(max_length=100, blank=True, default="", help_text="as asked; blank: by source")
    version_label = models.CharField(max_length=100, blank=True, default="", help_text="as asked; blank: recorded")
    answers_file = models.CharField(max_length=300, blank=True, default="")
    recorded = models.JSONField(null=True, blank=True, help_text="{tool, source, version, answers} as read")
    template = models.ForeignKey(
        "templates.ProjectTemplate", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    version = models.CharField(max_length=100, blank=True, default="", help_text="the version linked")
    generated = models.ForeignKey(
        "projects.GeneratedProject", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    export = models.ForeignKey(
        "projects.RepositoryExport", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="adoptions"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["pending", "running", "completed", "failed", "cancelled"]),
                name="adoption_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"adoption #{self.pk} of {self.target_key or self.provider}"
