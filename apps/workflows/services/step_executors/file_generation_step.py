"""`file_generation`: render a template into a generated project.

Input is either an existing generation to run (`generated`, what a direct
`POST .../generated/` enqueues) or `project` + `template` + `parameters` (what a
workflow step gives): the step then records the generation and runs it in place.
"""

from __future__ import annotations

from typing import Any

from apps.projects.models import GeneratedProject, Project, Role
from apps.projects.selectors import projects_visible_to
from apps.projects.services.generation import generated_project_execute, generated_project_start
from apps.projects.services.projects import require_role
from apps.workflows.services.step_executors.base import StepContext, StepFailed, register_step
from core.exceptions import NotFound

INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "oneOf": [
        {"required": ["generated"]},
        {"required": ["project", "template"]},
    ],
    "properties": {
        "generated": {"type": "integer", "minimum": 1, "description": "id of a recorded generation to run"},
        "project": {"type": "integer", "minimum": 1, "description": "project id"},
        "template": {"type": "string", "minLength": 1, "maxLength": 100, "description": "template slug"},
        "version": {
            "type": "string",
            "minLength": 1,
            "maxLength": 50,
            "description": "the template version's label (default: the latest)",
        },
        "parameters": {"type": "object", "description": "template parameters", "default": {}},
    },
    "additionalProperties": False,
}

OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["generated_id", "file_count", "content_sha256"],
    "properties": {
        "generated_id": {"type": "integer"},
        "file_count": {"type": "integer"},
        "content_sha256": {"type": "string"},
    },
}


def _require_access(context: StepContext, generated_id: int) -> None:
    """A workflow may run a recorded generation only where its identity could have started it."""
    generated = GeneratedProject.objects.filter(pk=generated_id, project__in=projects_visible_to(context.actor)).first()
    if generated is None:
        raise NotFound(f"Generated project {generated_id} not found.")
    require_role(actor=context.actor, project=generated.project, minimum=Role.DEVELOPER, action="generate projects")


def plan(data: dict[str, Any]) -> dict[str, Any]:
    """What an approver sees besides the input: the template as the catalog has it now."""
    from apps.templates.services.catalog import template_get

    project: Project | None
    if "generated" in data:
        generated = GeneratedProject.objects.select_related("template", "project").get(pk=data["generated"])
        template, version = generated.template, generated.template_version
        checksum = generated.template_checksum
        project = generated.project
    else:
        from apps.templates.services.versions import version_for_generation

        template = template_get(slug=data["template"])
        pinned = version_for_generation(template, data.get("version"))
        version, checksum = pinned.version, pinned.checksum
        project = Project.objects.filter(pk=data["project"]).first()
    return {
        "project": {"id": project.pk, "slug": project.slug} if project is not None else None,
        "template": {"slug": template.slug, "version": version, "checksum": checksum},
    }


@register_step(
    type_id="file_generation",
    description="Render a template with parameters into a new generated project.",
    input_schema=INPUT_SCHEMA,
    output_schema=OUTPUT_SCHEMA,
    examples=(
        {"project": 1, "template": "python-package", "parameters": {"project_name": "demo"}},
        {"generated": 42},
    ),
    plan=plan,
)
def file_generation(context: StepContext, data: dict[str, Any]) -> dict[str, Any]:
    generated_id = data.get("generated")
    if generated_id is None:

        def record() -> int:
            project = projects_visible_to(context.actor).filter(pk=data["project"]).first()
            if project is None or not isinstance(project, Project):
                raise NotFound(f"Project {data['project']} not found.")
            generated = generated_project_start(
                project=project,
                template_slug=data["template"],
                parameters=data.get("parameters", {}),
                actor=context.actor,
                version=data.get("version"),
                enqueue=False,
            )
            context.log(f"recorded generation {generated.pk} of template {data['template']}")
            return int(generated.pk)

        generated_id = context.checkpoint("generated", record)
    elif context.actor is not None:
        _require_access(context, generated_id)
    outcome = generated_project_execute(generated_id=generated_id, owner=context.lease_owner)
    generated = outcome.generated
    if generated.status != "completed":
        error = generated.error or {}
        raise StepFailed(
            error.get("message") or f"Generation {generated_id} ended {generated.status}.",
            code=error.get("code") or f"generation_{generated.status}",
        )
    context.log(f"generation {generated_id}: {generated.file_count} files, sha256 {generated.content_sha256}")
    return {
        "generated_id": generated.pk,
        "file_count": generated.file_count,
        "content_sha256": generated.content_sha256,
    }
