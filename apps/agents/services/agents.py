"""Agent services: create agents with a scope, issue and revoke their tokens."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.tokens import new_token, token_hash, token_prefix
from apps.agents.models import Agent, AgentToken
from apps.projects.models import ROLE_RANK, Project, ProjectMembership, Role
from apps.projects.selectors import projects_with_role
from core.exceptions import Conflict, PermissionDenied, ValidationFailed


def agent_for_user(user: Any) -> Agent | None:
    """The agent a request's user stands for, or None for a person."""
    if not getattr(user, "is_authenticated", False):
        return None
    return Agent.objects.filter(user_id=user.pk).first()


def _grant(agent: Agent, *, actor: Any, project_ids: list[int], role: str | None) -> None:
    """Make the agent a member of each project with `role` (None: keep the role it has there,
    developer where it is new). The actor must be a maintainer or owner there, at or above `role`."""
    projects = list(projects_with_role(actor).filter(pk__in=project_ids).order_by("pk"))
    missing = sorted(set(project_ids) - {p.pk for p in projects})
    if missing:
        raise ValidationFailed(
            f"Unknown projects: {', '.join(map(str, missing))}.", extra={"fields": {"projects": ["Unknown project."]}}
        )
    held = dict(
        ProjectMembership.objects.filter(user=agent.user, project__in=projects).values_list("project_id", "role")
    )
    for project in projects:
        own_role = getattr(project, "caller_role", None)
        given = role or held.get(project.pk) or Role.DEVELOPER
        if own_role not in (Role.OWNER, Role.MAINTAINER) or ROLE_RANK[Role(given)] > ROLE_RANK[Role(own_role)]:
            raise PermissionDenied(
                f"You cannot give an agent the role '{given}' in project {project.pk} (your role: {own_role}).",
                extra={"project": project.pk},
            )
        if held.get(project.pk) == given:
            continue
        if held.get(project.pk) == Role.OWNER:
            _keep_an_owner(project.pk, leaving=agent.user)
        ProjectMembership.objects.update_or_create(project=project, user=agent.user, defaults={"role": given})


def _keep_an_owner(project_id: int, *, leaving: Any) -> None:
    """409 `last_owner` when `leaving` (losing its owner membership) is the project's only owner.

    The project row is locked first, as membership removals do, so concurrent changes of the
    owner set are serialised."""
    Project.objects.select_for_update().filter(pk=project_id).first()
    others = ProjectMembership.objects.filter(project_id=project_id, role=Role.OWNER).exclude(user=leaving)
    if not others.exists():
        raise Conflict(
            f"The agent is the only owner of project {project_id}; add another owner first.",
            code="last_owner",
            extra={"project": project_id},
        )


@transaction.atomic
def agent_create(
    *, owner: Any, name: str, description: str = "", projects: list[int] | None = None, role: str = Role.DEVELOPER
) -> Agent:
    if agent_for_user(owner) is not None:
        raise PermissionDenied("Agents cannot create agents.", code="permission_denied")
    user = get_user_model().objects.create(username=f"agent-{uuid.uuid4().hex[:12]}", is_active=True)
    user.set_unusable_password()
    user.save(update_fields=["password"])
    try:
        with transaction.atomic():
            agent = Agent.objects.create(owner=owner, user=user, name=name, description=description)
    except IntegrityError:
        raise Conflict(f"You already have an agent named '{name}'.", code="name_taken") from None
    if projects:
        _grant(agent, actor=owner, project_ids=projects, role=role)
    return agent


@transaction.atomic
def agent_update(*, agent: Agent, actor: Any, **changes: Any) -> Agent:
    fields = []
    for field in ("name", "description", "is_active"):
        if field in changes:
            setattr(agent, field, changes[field])
            fields.append(field)
    if fields:
        try:
            with transaction.atomic():
                agent.save(update_fields=[*fields, "updated_at"])
        except IntegrityError:
            raise Conflict(f"You already have an agent named '{agent.name}'.", code="name_taken") from None
    if "projects" in changes:
        _set_projects(agent, actor=actor, wanted=set(changes["projects"]), role=changes.get("role"))
    return agent


def _set_projects(agent: Agent, *, actor: Any, wanted: set[int], role: str | None) -> None:
    """The agent's projects become `wanted`, except the projects the agent created itself:
    there it is the owner of record and stays a member (removing it could leave the project
    with no member who can manage or delete it). Roles change only when `role` is given."""
    own = set(Project.objects.filter(owner=agent.user).values_list("pk", flat=True))
    for project_id in sorted(
        ProjectMembership.objects.filter(user=agent.user)
        .exclude(project_id__in=wanted | own)
        .values_list("project_id", flat=True)
    ):
        membership = ProjectMembership.objects.filter(user=agent.user, project_id=project_id)
        if membership.filter(role=Role.OWNER).exists():
            _keep_an_owner(project_id, leaving=agent.user)
        membership.delete()
    _grant(agent, actor=actor, project_ids=sorted(wanted - own), role=role)


def agent_projects(agent: Agent) -> list[int]:
    """Ids of the projects the agent may act in (reads a prefetch when there is one)."""
    return sorted(membership.project_id for membership in agent.user.project_memberships.all())


@transaction.atomic
def agent_delete(*, agent: Agent) -> None:
    user = agent.user
    AgentToken.objects.filter(agent=agent).update(revoked_at=timezone.now())
    for project in Project.objects.filter(owner=user):
        project.owner = agent.owner
        project.save(update_fields=["owner", "updated_at"])
        ProjectMembership.objects.update_or_create(project=project, user=agent.owner, defaults={"role": Role.OWNER})
    ProjectMembership.objects.filter(user=user).delete()
    agent.delete()
    user.is_active = False
    user.save(update_fields=["is_active"])


def agent_token_issue(*, agent: Agent, name: str = "", ttl: timedelta | None = None) -> tuple[AgentToken, str]:
    """A new token; the clear value is returned once and only its hash is stored."""
    token = new_token("a")
    row = AgentToken.objects.create(
        agent=agent,
        name=name,
        key_hash=token_hash(token),
        prefix=token_prefix(token),
        expires_at=timezone.now() + ttl if ttl else None,
    )
    return row, token


def agent_token_revoke(*, token: AgentToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at", "updated_at"])
