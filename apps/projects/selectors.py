"""Reads that several callers share: scoped querysets and role look-ups."""

from __future__ import annotations

import re
from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery
from django.utils.text import slugify

from apps.projects.models import ROLE_RANK, GeneratedProject, Project, ProjectFile, ProjectMembership, Role
from core.exceptions import NotFound


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


def project_for(user: Any, project_id: int) -> Project:
    """The project `project_id` as `user` sees it (with `caller_role`): 404 `not_found` unless a member."""
    project = projects_with_role(user).filter(pk=project_id).first()
    if project is None:
        raise NotFound("Project not found.")
    return project


def project_role(user: Any, project: Project) -> str | None:
    if not getattr(user, "is_authenticated", False):
        return None
    return ProjectMembership.objects.filter(project=project, user_id=user.pk).values_list("role", flat=True).first()


def role_at_least(role: str | None, minimum: str) -> bool:
    return role is not None and ROLE_RANK[Role(role)] >= ROLE_RANK[Role(minimum)]


def memberships_of(project: Project) -> QuerySet[ProjectMembership]:
    return ProjectMembership.objects.filter(project=project).select_related("user").order_by("id")


def generated_projects_of(project: Project) -> QuerySet[GeneratedProject]:
    """The project's generations; deleted ones are gone for every reader (404)."""
    return GeneratedProject.objects.filter(project=project, deleted_at__isnull=True).select_related(
        "template", "created_by"
    )


# Parameters that name the project a template generates, most specific first; then any
# other `*_slug` / `*_name` parameter (`service_name`, `package_name`) in the order given.
NAME_PARAMETERS = ("project_slug", "project_name", "repo_name", "name", "slug")


def generated_project_name(generated: GeneratedProject) -> str:
    """What the generated project calls itself: its name parameter as a slug, else the template's slug.

    Archives hold one top folder of this name and download as `<name>-<version>.zip`.
    """
    parameters = generated.parameters if isinstance(generated.parameters, dict) else {}
    others = [key for key in parameters if key.endswith(("_slug", "_name")) and key not in NAME_PARAMETERS]
    for key in (*NAME_PARAMETERS, *others):
        value = parameters.get(key)
        if isinstance(value, str):
            slug = slugify(value)[:100].strip("-")
            if slug:
                return slug
    return generated.template.slug


def generated_project_archive_name(generated: GeneratedProject, extension: str) -> str:
    version = re.sub(r"[^A-Za-z0-9._-]+", "-", generated.template_version).strip("-.") or "0"
    return f"{generated_project_name(generated)}-{version}.{extension}"


def generated_in(project: Project, generated_id: int) -> GeneratedProject:
    """A generation inside `project` (404 otherwise); the project is already scoped to the caller."""
    generated = generated_projects_of(project).filter(pk=generated_id).first()
    if generated is None:
        raise NotFound("Generated project not found.")
    return generated


def files_of(generated: GeneratedProject) -> QuerySet[ProjectFile]:
    return ProjectFile.objects.filter(generated=generated).order_by("path")
