"""Project and membership services. Each checks its rules first, then acts."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils.text import slugify

from apps.projects.models import GeneratedProject, Project, ProjectMembership, Role
from apps.projects.selectors import project_role, role_at_least
from core.exceptions import Conflict, NotFound, PermissionDenied, ValidationFailed
from core.jobs import ACTIVE_STATUSES

logger = logging.getLogger("kiln.projects")

ROLE_NEEDED = "Your role '{role}' cannot {action}; it needs '{needed}' or above."


def require_role(*, actor: Any, project: Project, minimum: str, action: str) -> str:
    """Return the actor's role, or raise 403 when it ranks below `minimum`.

    Callers have already scoped the project to the actor; someone who is no member (any
    more: removed since that scoping) gets the 404 every non-member gets, never a 403
    naming no role.
    """
    role = project_role(actor, project)
    if role is None:
        raise NotFound("Project not found.")
    if not role_at_least(role, minimum):
        raise PermissionDenied(
            ROLE_NEEDED.format(role=role, action=action, needed=minimum),
            extra={"role": role, "required_role": minimum},
        )
    return role


def _unique_slug(name: str) -> str:
    base = slugify(name)[:100] or "project"
    slug = base
    counter = 2
    while Project.objects.filter(slug=slug).exists():
        slug = f"{base}-{counter}"
        counter += 1
    return slug


@transaction.atomic
def project_create(*, owner: Any, name: str, description: str = "") -> Project:
    project = Project.objects.create(name=name, slug=_unique_slug(name), description=description, owner=owner)
    ProjectMembership.objects.create(project=project, user=owner, role=Role.OWNER)
    return project


def project_update(*, project: Project, actor: Any, **changes: Any) -> Project:
    require_role(actor=actor, project=project, minimum=Role.MAINTAINER, action="edit the project")
    fields = []
    if "agent_exports_require_approval" in changes:
        # the gate that keeps agents' publications in front of a person: only a person who owns the project
        require_role(actor=actor, project=project, minimum=Role.OWNER, action="change the approval setting")
        if getattr(actor, "agent_identity", None) is not None:
            raise PermissionDenied("Agents cannot change whether their own exports need approval.")
        project.agent_exports_require_approval = bool(changes["agent_exports_require_approval"])
        fields.append("agent_exports_require_approval")
    for field in ("name", "description"):
        if field in changes:
            setattr(project, field, changes[field])
            fields.append(field)
    if fields:
        project.save(update_fields=[*fields, "updated_at"])
    return project


def project_output_root(project_id: int) -> Path:
    return Path(settings.GENERATED_PROJECTS_DIR) / str(int(project_id))


def project_delete(*, project: Project, actor: Any) -> None:
    require_role(actor=actor, project=project, minimum=Role.OWNER, action="delete the project")
    if GeneratedProject.objects.filter(project=project, status__in=ACTIVE_STATUSES).exists():
        raise Conflict(
            "The project has generations that are still pending or running; cancel them or wait, then delete.",
            code="project_busy",
        )
    folder = project_output_root(project.pk)
    with transaction.atomic():
        project.delete()
        transaction.on_commit(lambda: shutil.rmtree(folder, ignore_errors=True))


def membership_add(*, project: Project, actor: Any, username: str, role: str) -> ProjectMembership:
    require_role(actor=actor, project=project, minimum=Role.OWNER, action="manage members")
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise ValidationFailed(f"No active user named '{username}'.", extra={"fields": {"username": ["Unknown user."]}})
    if ProjectMembership.objects.filter(project=project, user=user).exists():
        raise Conflict(f"'{username}' is already a member of this project.", code="already_member")
    return ProjectMembership.objects.create(project=project, user=user, role=role)


@transaction.atomic
def membership_remove(*, membership: ProjectMembership, actor: Any) -> None:
    """Remove a member (and the member's agents). A project never loses its last owner.

    The project row is locked first, so concurrent removals (two owners removing each
    other) run one after the other: the second sees the first's result and gets 409
    `last_owner` (or 404 when its target or its own membership is gone by then).
    """
    project = membership.project
    require_role(actor=actor, project=project, minimum=Role.OWNER, action="manage members")
    Project.objects.select_for_update().filter(pk=project.pk).first()
    target = ProjectMembership.objects.filter(pk=membership.pk, project=project).first()
    if target is None:
        raise NotFound("Member not found.")
    # the member's agents act on the member's behalf: they leave the project with them
    leaving = ProjectMembership.objects.filter(project=project).filter(
        Q(pk=target.pk) | Q(user__agent_identity__owner_id=target.user_id)
    )
    owners_left = (
        ProjectMembership.objects.filter(project=project, role=Role.OWNER).exclude(pk__in=leaving.values("pk")).count()
    )
    if owners_left == 0:
        raise Conflict("A project needs at least one owner; add another owner first.", code="last_owner")
    require_role(actor=actor, project=project, minimum=Role.OWNER, action="manage members")  # still, under the lock
    leaving.delete()
