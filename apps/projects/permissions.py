"""Role checks for project-scoped endpoints.

Scoping happens first, in each view's queryset: a caller who is not a member of the
project gets 404 for everything in it. These classes then check the member's role for
the action (viewer reads; developer generates; maintainer exports and manages
workflows and connections; owner manages members and deletes). Services check the
same roles again, so a workflow step that calls a service is held to the same rules.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from apps.projects.models import Role
from apps.projects.selectors import project_role, role_at_least
from core.exceptions import NotFound


class ProjectRolePermission(BasePermission):
    """Reads need `read_role`, writes need `write_role`, on the view's project."""

    read_role: str = Role.VIEWER
    write_role: str = Role.OWNER
    message = "Your role in this project does not allow this action."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False  # DRF answers 401 for an unauthenticated request
        project = view.get_project()
        needed = self.read_role if request.method in SAFE_METHODS else self.write_role
        # the role read by the scoping query itself (one snapshot): no role means not visible
        role = project.caller_role if hasattr(project, "caller_role") else project_role(request.user, project)
        if role is None:
            raise NotFound("Project not found.")
        if role_at_least(role, needed):
            return True
        self.message = f"Your role '{role}' cannot do this; it needs '{needed}' or above."
        return False


class IsProjectMemberOrReadOnly(ProjectRolePermission):
    """Members read; changing the project itself needs a maintainer."""

    write_role = Role.MAINTAINER


class CanManageMembers(ProjectRolePermission):
    write_role = Role.OWNER


class CanGenerateProject(ProjectRolePermission):
    write_role = Role.DEVELOPER


class CanExportRepository(ProjectRolePermission):
    write_role = Role.MAINTAINER
