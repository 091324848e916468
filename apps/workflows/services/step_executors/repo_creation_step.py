"""`repo_creation`: publish a generated project (GitHub, GitLab, a git remote or an archive).

Input is either a recorded export to run (`export`, what a direct
`POST .../exports/` enqueues) or the export request itself (`generated`, `provider`,
and the provider's fields), which a workflow step gives: the step records the export
and runs it in place.
"""

from __future__ import annotations

from typing import Any

from apps.projects.models import GeneratedProject, RepositoryExport, Role
from apps.projects.selectors import projects_visible_to
from apps.projects.services.exports import repository_export_execute, repository_export_start
from apps.projects.services.projects import require_role
from apps.workflows.services.step_executors.base import StepContext, StepFailed, register_step
from core.exceptions import NotFound

DELETE_CREATED_REPOSITORY = "delete_created_repository"
# step input keys that are not part of the export request
STEP_ONLY = frozenset({"generated", "on_failure"})

INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "oneOf": [{"required": ["export"]}, {"required": ["generated", "provider"]}],
    "properties": {
        "export": {"type": "integer", "minimum": 1, "description": "id of a recorded export to run"},
        "generated": {"type": "integer", "minimum": 1, "description": "generated project id"},
        "provider": {"type": "string", "enum": ["github", "gitlab", "git", "zip", "tar.gz"]},
        "connection": {"type": "integer", "minimum": 1},
        "repository": {
            "type": "object",
            "properties": {
                "owner": {"type": "string"},
                "namespace": {"type": "string"},
                "name": {"type": "string"},
                "visibility": {"type": "string", "enum": ["private", "public", "internal"]},
                "description": {"type": "string"},
                "default_branch": {"type": "string"},
                "topics": {"type": "array", "items": {"type": "string"}},
            },
            "additionalProperties": False,
        },
        "remote_url": {"type": "string", "maxLength": 2000},
        "branch": {"type": "string", "maxLength": 200},
        "on_failure": {
            "type": "string",
            "enum": [DELETE_CREATED_REPOSITORY],
            "description": "if a later step of the run fails, delete the repository this step created "
            "(never one it adopted or that existed before)",
        },
    },
    "additionalProperties": False,
}

OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["export_id", "remote_url", "web_url", "commit_sha"],
    "properties": {
        "export_id": {"type": "integer"},
        "remote_url": {"type": "string"},
        "web_url": {"type": "string"},
        "commit_sha": {"type": "string"},
        "archive": {"type": ["object", "null"]},
    },
}


def _require_access(context: StepContext, export_id: int) -> None:
    """A workflow may run a recorded export only where its identity could have started it."""
    export = (
        RepositoryExport.objects.select_related("generated__project")
        .filter(pk=export_id, generated__project__in=projects_visible_to(context.actor))
        .first()
    )
    if export is None:
        raise NotFound(f"Export {export_id} not found.")
    require_role(
        actor=context.actor, project=export.generated.project, minimum=Role.MAINTAINER, action="export repositories"
    )
    if export.connection is not None and export.connection.owner_id != getattr(context.actor, "pk", None):
        raise NotFound(f"Export {export_id} not found.")


def _generated(data: dict[str, Any]) -> GeneratedProject:
    rows = GeneratedProject.objects.select_related("project", "template")
    generated = rows.filter(pk=int(data.get("generated") or 0)).first()
    if generated is None:
        raise NotFound(f"Generated project {data.get('generated')} not found.")
    return generated


def plan(data: dict[str, Any]) -> dict[str, Any]:
    """What an approver sees: the files (manifest hash) and where they go, with which connection."""
    from apps.approvals.kinds.export import publication_plan
    from apps.projects.models import ProviderConnection
    from apps.projects.services.repository_exporter import get_provider

    if "export" in data:
        export = RepositoryExport.objects.select_related("generated__template", "connection").get(pk=data["export"])
        generated, provider_id, connection = export.generated, export.provider, export.connection
        target, branch, remote_url = export.target, export.branch, export.remote_url
    else:
        generated, provider_id = _generated(data), data["provider"]
        connection = ProviderConnection.objects.filter(pk=int(data.get("connection") or 0)).first()
        clean = get_provider(provider_id).clean_target(
            {k: v for k, v in data.items() if k not in STEP_ONLY}, connection=connection
        )
        target, branch, remote_url = clean.target, clean.branch, clean.remote_url
    return {
        "project": {"id": generated.project_id, "slug": generated.project.slug},
        "on_failure": data.get("on_failure"),
        **publication_plan(
            generated=generated,
            provider=provider_id,
            connection=connection,
            target=target,
            branch=branch,
            remote_url=remote_url,
        ),
    }


def approval_reason(actor: Any, data: dict[str, Any]) -> str | None:
    """An agent's publication to GitHub/GitLab waits for a person, as a direct export would."""
    from apps.approvals.services import export_approval_reason

    if "generated" not in data:
        return None  # a recorded export passed its own gate when it was recorded
    return export_approval_reason(actor=actor, project=_generated(data).project, provider=data["provider"])


@register_step(
    type_id="repo_creation",
    description="Export a generated project to GitHub, GitLab, a git remote, or a zip/tar.gz archive.",
    input_schema=INPUT_SCHEMA,
    output_schema=OUTPUT_SCHEMA,
    examples=(
        {"generated": 7, "provider": "zip"},
        {
            "generated": 7,
            "provider": "github",
            "connection": 2,
            "repository": {"name": "demo", "visibility": "private"},
        },
        {"generated": 7, "provider": "git", "remote_url": "https://git.example.com/team/demo.git", "branch": "main"},
        {"export": 11},
        {
            "generated": 7,
            "provider": "github",
            "connection": 2,
            "repository": {"name": "demo"},
            "on_failure": DELETE_CREATED_REPOSITORY,
        },
    ),
    plan=plan,
    approval_reason=approval_reason,
)
def repo_creation(context: StepContext, data: dict[str, Any]) -> dict[str, Any]:
    export_id = data.get("export")
    if export_id is None:

        def record() -> int:
            generated = (
                GeneratedProject.objects.select_related("project")
                .filter(pk=data["generated"], project__in=projects_visible_to(context.actor))
                .first()
            )
            if generated is None:
                raise NotFound(f"Generated project {data['generated']} not found.")
            request = {key: value for key, value in data.items() if key not in STEP_ONLY}
            export = repository_export_start(
                generated=generated, data=request, actor=context.actor, enqueue=False, approved=context.approved
            )
            context.log(f"recorded export {export.pk} to {export.provider}")
            return int(export.pk)

        export_id = context.checkpoint("export", record)
    elif context.actor is not None:
        _require_access(context, export_id)
    export, logs = repository_export_execute(export_id=export_id, owner=context.lease_owner)
    for line in logs:
        context.log(line)
    if export.status != "completed":
        error = export.error or {}
        raise StepFailed(
            error.get("message") or f"Export {export_id} ended {export.status}.",
            code=error.get("code") or f"export_{export.status}",
        )
    archive = {"size": export.archive_size, "sha256": export.archive_sha256} if export.archive_path else None
    return {
        "export_id": export.pk,
        "remote_url": export.remote_url,
        "web_url": export.web_url,
        "commit_sha": export.commit_sha,
        "archive": archive,
    }
