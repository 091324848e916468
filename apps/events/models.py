"""What happened to a background job, in order: status changes, progress, log lines.

One append-only table for every kind of job (generations, exports, workflow runs, and
whatever job the next app adds): the row id is the `id` of the server-sent event, so a
client that reconnects with `Last-Event-ID` gets exactly the events after it.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class EventKind(models.TextChoices):
    STATUS = "status", "Status"
    PROGRESS = "progress", "Progress"
    LOG = "log", "Log line"


class JobEvent(models.Model):
    job_type = models.CharField(max_length=100, help_text="the job model's label, e.g. projects.generatedproject")
    job_id = models.BigIntegerField()
    kind = models.CharField(max_length=16, choices=EventKind.choices)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["job_type", "job_id", "id"], name="job_event_job_order")]
        constraints = [models.CheckConstraint(condition=models.Q(kind__in=EventKind.values), name="job_event_kind")]

    def __str__(self) -> str:
        return f"{self.job_type}#{self.job_id} {self.kind} {self.pk}"
