"""Reads that several callers share: scoped querysets and role look-ups."""

from __future__ import annotations

from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery

from apps.projects.models import ROLE_RANK, GeneratedProject, Project, ProjectFile, ProjectMembership, Role


def projects_visible_to(user: Any) -> QuerySet[Project]:
    """Projects `user` is a member of (any role); everything else is invisible (404)."""
    if not getattr(user, "is_authenticated", False):
        return Project.objects.none()
    return Project.objects.filter(memberships__user_id=user.pk).select_related("owner").distinct()


def projects_with_role(user: Any) -> QuerySet[Project]:
    """`projects_visible_to(user)`, each annotated with `caller_role` read in the same query.

    Scoping and the role check then agree: a member removed between two separate queries
    would otherwise pass the scoping (visible) and fail the role check with no role (403
    "role None") instead of getting the 404 every non-member gets.
    """
    if not getattr(user, "is_authenticated", False):
        return Project.objects.none()
    role = ProjectMembership.objects.filter(project=OuterRef("pk"), user_id=user.pk).values("role")
    return projects_visible_to(user).annotate(caller_role=Subquery(role[:1]))


def project_role(user: Any, project: Project) -> str | None:
    if not getattr(user, "is_authenticated", False):
        return None
    return ProjectMembership.objects.filter(project=project, user_id=user.pk).values_list("role", flat=True).first()


def role_at_least(role: str | None, minimum: str) -> bool:
    return role is not None and ROLE_RANK[Role(role)] >= ROLE_RANK[Role(minimum)]


def memberships_of(project: Project) -> QuerySet[ProjectMembership]:
    return ProjectMembership.objects.filter(project=project).select_related("user").order_by("id")


def generated_projects_of(project: Project) -> QuerySet[GeneratedProject]:
    return GeneratedProject.objects.filter(project=project).select_related("template", "created_by")


def files_of(generated: GeneratedProject) -> QuerySet[ProjectFile]:
    return ProjectFile.objects.filter(generated=generated).order_by("path")
