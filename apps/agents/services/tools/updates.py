"""Tools over template updates: preview what a newer template version changes, then propose it."""

from __future__ import annotations

from typing import Any

from apps.agents.services.tools.generation import GENERATED_ARGUMENT, follow_job
from apps.agents.services.tools.projects import PROJECT_ARGUMENT
from apps.agents.services.tools.registry import ToolCall, register_tool
from apps.projects.selectors import generated_in, project_for
from apps.updates.models import TemplateUpdate
from apps.updates.serializers import UpdateCreateSerializer, UpdateSerializer
from apps.updates.services.updates import update_start, updates_of
from core.exceptions import NotFound
from core.serializers import MAX_ID

UPDATE_ARGUMENTS: dict[str, Any] = {
    "project": PROJECT_ARGUMENT,
    "generated": GENERATED_ARGUMENT,
    "to_version": {
        "type": "string",
        "maxLength": 100,
        "description": "The template version to update to (default: the latest).",
    },
    "parameters": {
        "type": "object",
        "description": "Answers to change (get_template shows the parameters); new parameters take their defaults.",
    },
    "export": {
        "type": "integer",
        "minimum": 1,
        "maximum": MAX_ID,
        "description": "The export whose repository is updated (default: the latest git/GitHub/GitLab export).",
    },
}


def _start(call: ToolCall, mode: str) -> dict[str, Any]:
    generated = generated_in(project_for(call.actor, call["project"]), call["generated"])
    body = {key: call[key] for key in ("to_version", "parameters", "export") if key in call.arguments}
    serializer = UpdateCreateSerializer(data={**body, "mode": mode})
    serializer.is_valid(raise_exception=True)
    update, _ = update_start(generated=generated, data=dict(serializer.validated_data), actor=call.actor)
    row = follow_job(
        call,
        lambda: TemplateUpdate.objects.select_related("export", "new_generation").get(pk=update.pk),
        label="update",
        done=lambda u: (u.progress_done, u.progress_total),
    )
    return dict(UpdateSerializer(row).data)


@register_tool(
    name="preview_update",
    title="Preview a template update",
    description=(
        "Preview what updating an exported generation to a newer template version (and/or changed "
        "answers) would change in its repository, without pushing anything: a background job whose "
        "result lists each file's outcome (unchanged, updated, merged, conflict, added, deleted, kept) "
        "and the conflicts. Returns the update at once with its `id`; follow it with get_update. "
        "Needs the developer role."
    ),
    input_schema={
        "type": "object",
        "required": ["project", "generated"],
        "properties": UPDATE_ARGUMENTS,
        "additionalProperties": False,
    },
    operation_id="updates_create",
    path_arguments={"project": "project_id", "generated": "generated_id"},
    fixed_body={"mode": "preview"},
    response_status="202",
    read_only=False,
    starts_job=True,
)
def preview_update(call: ToolCall) -> dict[str, Any]:
    return _start(call, "preview")


@register_tool(
    name="propose_update",
    title="Propose a template update",
    description=(
        "Update the repository an exported generation went to, to a newer template version: pushes a "
        "branch and (mode pull_request, the default) opens a pull/merge request with a per-file report; "
        "nothing is merged and the target branch is never force-pushed. Run preview_update first. "
        "Returns the update at once; follow it with get_update. Needs the maintainer role."
    ),
    input_schema={
        "type": "object",
        "required": ["project", "generated"],
        "properties": {
            **UPDATE_ARGUMENTS,
            "mode": {
                "type": "string",
                "enum": ["pull_request", "branch"],
                "default": "pull_request",
                "description": "pull_request (a branch and a pull/merge request) or branch (the branch only).",
            },
        },
        "additionalProperties": False,
    },
    operation_id="updates_create",
    path_arguments={"project": "project_id", "generated": "generated_id"},
    response_status="202",
    read_only=False,
    idempotent=True,
    starts_job=True,
)
def propose_update(call: ToolCall) -> dict[str, Any]:
    return _start(call, call["mode"])


@register_tool(
    name="get_update",
    title="Get a template update",
    description=(
        "A template update's status, its per-file outcomes and conflicts, the pushed branch and commit "
        "and the pull/merge request once opened; `error` when it failed."
    ),
    input_schema={
        "type": "object",
        "required": ["project", "generated", "update"],
        "properties": {
            "project": PROJECT_ARGUMENT,
            "generated": GENERATED_ARGUMENT,
            "update": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_ID,
                "description": "The update's id, as preview_update / propose_update returned it.",
            },
        },
        "additionalProperties": False,
    },
    operation_id="updates_retrieve",
    path_arguments={"project": "project_id", "generated": "generated_id", "update": "id"},
)
def get_update(call: ToolCall) -> dict[str, Any]:
    generated = generated_in(project_for(call.actor, call["project"]), call["generated"])
    update = updates_of(generated).filter(pk=call["update"]).first()
    if update is None:
        raise NotFound("Update not found.")
    return dict(UpdateSerializer(update).data)
