"""Tools over projects: the workspaces generations and exports belong to."""

from __future__ import annotations

from typing import Any

from apps.agents.services.tools.registry import PAGE_ARGUMENTS, ToolCall, page_of, register_tool
from apps.projects.selectors import projects_visible_to
from apps.projects.serializers import ProjectCreateSerializer, ProjectSerializer
from apps.projects.services.projects import project_create
from core.serializers import MAX_ID, NAME_PATTERN

PROJECT_ARGUMENT = {
    "type": "integer",
    "minimum": 1,
    "maximum": MAX_ID,
    "description": "The project's id (list_projects shows the projects you may use).",
}


@register_tool(
    name="list_projects",
    title="List projects",
    description=(
        "List the projects you are a member of (id, name, slug, description, owner), newest first. "
        "Generations and exports live inside a project; an agent sees only the projects it was given "
        "and the ones it created."
    ),
    input_schema={"type": "object", "properties": {**PAGE_ARGUMENTS}, "additionalProperties": False},
    operation_id="projects_list",
    query_arguments={"page": "page", "page_size": "page_size"},
    output="list",
)
def list_projects(call: ToolCall) -> dict[str, Any]:
    queryset = projects_visible_to(call.actor).order_by("-created_at", "-id")
    return page_of(queryset, call, lambda rows: ProjectSerializer(rows, many=True).data)


@register_tool(
    name="create_project",
    title="Create a project",
    description=(
        "Create a new project; you become its owner. Use it when no existing project (list_projects) "
        "fits. Returns the project with its id, which the generation tools take as `project`."
    ),
    input_schema={
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {
                "type": "string",
                "minLength": 1,
                "maxLength": 100,
                "pattern": NAME_PATTERN,
                "description": "A short display name, e.g. 'Billing service'.",
            },
            "description": {"type": "string", "maxLength": 2000, "description": "What the project is for."},
        },
        "additionalProperties": False,
    },
    operation_id="projects_create",
    response_status="201",
    read_only=False,
    idempotent=False,
)
def create_project(call: ToolCall) -> dict[str, Any]:
    serializer = ProjectCreateSerializer(data=call.arguments)
    serializer.is_valid(raise_exception=True)
    project = project_create(owner=call.actor, **serializer.validated_data)
    return dict(ProjectSerializer(project).data)
