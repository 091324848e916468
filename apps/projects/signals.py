"""Side concerns of the projects app: audit events and counters. Signals never start work.

Job status changes are made with conditional UPDATEs (see core.jobs), which send no
post_save; those arrive through `core.jobs.job_status_changed` instead.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from apps.projects.models import (
    AuditEvent,
    GeneratedProject,
    Project,
    ProjectFile,
    ProjectMembership,
    ProviderConnection,
    RepositoryExport,
)
from core.context import actor_id, request_id
from core.jobs import job_status_changed


def _actor_label(user: Any) -> str:
    if user is None:
        return ""
    agent = getattr(user, "agent_identity", None)
    return f"agent:{agent.name}" if agent is not None else user.get_username()


def audit(action: str, *, obj: Any, project_id: int | None, actor: Any = None, **detail: Any) -> None:
    current = actor_id.get()
    if actor is None and current is not None:
        actor = get_user_model().objects.filter(pk=current).first()
    AuditEvent.objects.create(
        project_id=project_id,
        actor=actor,
        actor_label=_actor_label(actor),
        action=action,
        object_type=type(obj).__name__ if not isinstance(obj, type) else obj.__name__,
        object_id=str(getattr(obj, "pk", obj)),
        detail=detail,
        request_id=request_id.get() if request_id.get() != "-" else "",
    )


@receiver(post_save, sender=Project, dispatch_uid="project_post_save")
def project_post_save(sender: Any, instance: Project, created: bool, **kwargs: Any) -> None:
    if created:
        audit("project.created", obj=instance, project_id=instance.pk, actor=instance.owner, name=instance.name)


@receiver(post_save, sender=ProjectMembership, dispatch_uid="membership_post_save")
def membership_post_save(sender: Any, instance: ProjectMembership, created: bool, **kwargs: Any) -> None:
    action = "member.added" if created else "member.changed"
    audit(action, obj=instance, project_id=instance.project_id, user=instance.user.get_username(), role=instance.role)


@receiver(post_delete, sender=ProjectMembership, dispatch_uid="membership_post_delete")
def membership_post_delete(sender: Any, instance: ProjectMembership, **kwargs: Any) -> None:
    project_id, pk, username = instance.project_id, instance.pk, instance.user.get_username()

    def record() -> None:  # after commit: a membership removed with its whole project is not an event
        if Project.objects.filter(pk=project_id).exists():
            audit("member.removed", obj=ProjectMembership(pk=pk), project_id=project_id, user=username)

    transaction.on_commit(record)


@receiver(post_delete, sender=Project, dispatch_uid="project_post_delete")
def project_post_delete(sender: Any, instance: Project, **kwargs: Any) -> None:
    pk, name = instance.pk, instance.name
    transaction.on_commit(lambda: audit("project.deleted", obj=Project(pk=pk), project_id=None, project=pk, name=name))


@receiver(pre_save, sender=GeneratedProject, dispatch_uid="generated_project_pre_save")
def generated_project_pre_save(sender: Any, instance: GeneratedProject, **kwargs: Any) -> None:
    """Remember the stored status, so a save that changes it can be told apart."""
    instance._previous_status = (  # type: ignore[attr-defined]
        GeneratedProject.objects.filter(pk=instance.pk).values_list("status", flat=True).first()
        if instance.pk
        else None
    )


@receiver(post_save, sender=GeneratedProject, dispatch_uid="generated_project_post_save")
def generated_project_post_save(sender: Any, instance: GeneratedProject, created: bool, **kwargs: Any) -> None:
    if created:
        audit(
            "generation.requested",
            obj=instance,
            project_id=instance.project_id,
            actor=instance.created_by,
            template=instance.template.slug,
            version=instance.template_version,
        )
    elif getattr(instance, "_previous_status", None) not in (None, instance.status):
        _generation_finished(instance.pk, instance.status)


@receiver(post_save, sender=ProjectFile, dispatch_uid="project_file_post_save")
def project_file_post_save(sender: Any, instance: ProjectFile, created: bool, **kwargs: Any) -> None:
    """A file row saved on its own (not the bulk insert of a generation): keep the totals right."""
    rows = ProjectFile.objects.filter(generated_id=instance.generated_id)
    GeneratedProject.objects.filter(pk=instance.generated_id).update(
        file_count=rows.count(), total_bytes=sum(rows.values_list("size", flat=True))
    )


@receiver(post_save, sender=RepositoryExport, dispatch_uid="repository_export_post_save")
def repository_export_post_save(sender: Any, instance: RepositoryExport, created: bool, **kwargs: Any) -> None:
    if created:
        audit(
            "export.requested",
            obj=instance,
            project_id=instance.generated.project_id,
            actor=instance.created_by,
            provider=instance.provider,
            target={k: v for k, v in instance.target.items() if k in ("owner", "namespace", "name", "visibility")},
        )


@receiver(post_save, sender=ProviderConnection, dispatch_uid="connection_post_save")
def connection_post_save(sender: Any, instance: ProviderConnection, created: bool, **kwargs: Any) -> None:
    if created:
        audit(
            "connection.created",
            obj=instance,
            project_id=None,
            actor=instance.owner,
            provider=instance.provider,
            name=instance.name,
        )


def _generation_finished(pk: Any, status: str) -> None:
    if status not in ("completed", "failed", "cancelled"):
        return
    row = (
        GeneratedProject.objects.filter(pk=pk)
        .values("project_id", "total_bytes", "file_count", "created_by_id", "error")
        .first()
    )
    if row is None:
        return
    if status == "completed":
        Project.objects.filter(pk=row["project_id"]).update(
            generations_completed=F("generations_completed") + 1,
            generated_bytes=F("generated_bytes") + row["total_bytes"],
        )
    error = row["error"] or {}
    audit(
        f"generation.{status}",
        obj=GeneratedProject(pk=pk),
        project_id=row["project_id"],
        actor=get_user_model().objects.filter(pk=row["created_by_id"]).first(),
        file_count=row["file_count"],
        error_code=error.get("code") if isinstance(error, dict) else None,
    )


@receiver(job_status_changed, sender=GeneratedProject, dispatch_uid="generated_project_status")
def generated_project_status(sender: Any, pk: Any, status: str, **kwargs: Any) -> None:
    _generation_finished(pk, status)


@receiver(job_status_changed, sender=RepositoryExport, dispatch_uid="repository_export_status")
def repository_export_status(sender: Any, pk: Any, status: str, **kwargs: Any) -> None:
    if status not in ("completed", "failed", "cancelled"):
        return
    row = RepositoryExport.objects.filter(pk=pk).select_related("generated", "created_by").first()
    if row is None:
        return
    if status == "completed":
        Project.objects.filter(pk=row.generated.project_id).update(exports_completed=F("exports_completed") + 1)
    audit(
        f"export.{status}",
        obj=row,
        project_id=row.generated.project_id,
        actor=row.created_by,
        provider=row.provider,
        commit_sha=row.commit_sha or None,
        error_code=(row.error or {}).get("code"),
    )
