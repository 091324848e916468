"""Tools over exports: publish a completed generation and follow the export."""

from __future__ import annotations

from typing import Any

from apps.agents.services.tools.generation import GENERATED_ARGUMENT, follow_job
from apps.agents.services.tools.projects import PROJECT_ARGUMENT
from apps.agents.services.tools.registry import ToolCall, register_tool
from apps.projects.models import RepositoryExport
from apps.projects.selectors import generated_in, project_for
from apps.projects.serializers import RepositoryExportCreateSerializer, RepositoryExportSerializer
from apps.projects.services.exports import repository_export_start
from core.exceptions import NotFound
from core.serializers import MAX_ID

EXPORT_BODY = ("provider", "connection", "repository", "remote_url", "branch")
REPOSITORY_ARGUMENT = {
    "type": "object",
    "description": "The repository to create (github, gitlab). It is created if it does not exist; an existing "
    "repository Kiln did not create for this target is refused (name_taken), never overwritten.",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "maxLength": 100, "description": "Repository name."},
        "owner": {
            "type": "string",
            "maxLength": 100,
            "description": "github: an organisation to create it in (default: the token's own account).",
        },
        "namespace": {
            "type": "string",
            "maxLength": 1000,
            "description": "gitlab: a group path such as acme/platform (default: the token's own namespace).",
        },
        "visibility": {"type": "string", "enum": ["private", "public", "internal"], "description": "Default private."},
        "description": {"type": "string", "maxLength": 2000},
        "default_branch": {"type": "string", "maxLength": 200, "description": "Default main."},
        "topics": {
            "type": "array",
            "maxItems": 20,
            "items": {"type": "string", "maxLength": 50},
            "description": "github: repository topics.",
        },
    },
    "additionalProperties": False,
}


@register_tool(
    name="export_generation",
    title="Export a generation",
    description=(
        "Publish a completed generation (a background job): provider `zip` or `tar.gz` makes an archive; "
        "`github` / `gitlab` create a repository through one of the caller's provider connections "
        "(`connection` id, `repository` {name, owner/namespace, visibility, ...}) and push one commit; "
        "`git` pushes to `remote_url`. Returns the export at once with its `id`; follow it with "
        "get_export. Exporting the same generation to the same target again never makes a second "
        "repository and never force-pushes. Exports to GitHub/GitLab started by an agent may wait in "
        "`awaiting_approval` until a project maintainer approves them. Needs the maintainer role."
    ),
    input_schema={
        "type": "object",
        "required": ["project", "generated", "provider"],
        "properties": {
            "project": PROJECT_ARGUMENT,
            "generated": GENERATED_ARGUMENT,
            "provider": {
                "type": "string",
                "enum": ["github", "gitlab", "git", "zip", "tar.gz"],
                "description": "Where to publish.",
            },
            "connection": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_ID,
                "description": "github / gitlab (and git over HTTPS with a token): the id of a provider connection.",
            },
            "repository": REPOSITORY_ARGUMENT,
            "remote_url": {"type": "string", "maxLength": 2000, "description": "git: the remote's https URL."},
            "branch": {"type": "string", "maxLength": 200, "description": "git: the branch to push (default main)."},
        },
        "additionalProperties": False,
    },
    operation_id="exports_create",
    path_arguments={"project": "project_id", "generated": "generated_id"},
    response_status="202",
    read_only=False,
    idempotent=True,
    starts_job=True,
)
def export_generation(call: ToolCall) -> dict[str, Any]:
    generated = generated_in(project_for(call.actor, call["project"]), call["generated"])
    body = {
        key: call[key]
        for key in ("provider", "connection", "repository", "remote_url", "branch")
        if key in call.arguments
    }
    serializer = RepositoryExportCreateSerializer(data=body)
    serializer.is_valid(raise_exception=True)
    started = repository_export_start(generated=generated, data=dict(serializer.validated_data), actor=call.actor)
    row = follow_job(
        call,
        lambda: RepositoryExport.objects.get(pk=started.pk),
        label="export",
        done=lambda e: (1 if e.status == "completed" else 0, 1),
    )
    return dict(RepositoryExportSerializer(row).data)


@register_tool(
    name="get_export",
    title="Get an export",
    description=(
        "An export's status (pending, running, awaiting_approval, completed, failed, cancelled), its "
        "repository URLs and pushed commit, or for archives their size and sha256; `error` when it failed."
    ),
    input_schema={
        "type": "object",
        "required": ["project", "generated", "export"],
        "properties": {
            "project": PROJECT_ARGUMENT,
            "generated": GENERATED_ARGUMENT,
            "export": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_ID,
                "description": "The export's id, as export_generation returned it.",
            },
        },
        "additionalProperties": False,
    },
    operation_id="exports_retrieve",
    path_arguments={"project": "project_id", "generated": "generated_id", "export": "id"},
)
def get_export(call: ToolCall) -> dict[str, Any]:
    generated = generated_in(project_for(call.actor, call["project"]), call["generated"])
    export = RepositoryExport.objects.filter(generated=generated, pk=call["export"]).first()
    if export is None:
        raise NotFound("Export not found.")
    return dict(RepositoryExportSerializer(export).data)
