"""Tools over the template catalog: what can be generated, and with which parameters."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from apps.agents.services.tools.registry import PAGE_ARGUMENTS, ToolCall, page_of, register_tool
from apps.templates.models import ProjectTemplate
from apps.templates.serializers import TemplateSerializer
from apps.templates.services.versions import versions_of
from core.exceptions import NotFound

MAX_VERSIONS_SHOWN = 100  # labels in get_template's answer (GET /templates/{slug}/versions/ pages them all)

TEMPLATE_ARGUMENT = {
    "type": "string",
    "minLength": 1,
    "maxLength": 100,
    "pattern": "^[a-z0-9-]+$",
    "description": "The template's slug, as list_templates shows it (e.g. python-package).",
}


@register_tool(
    name="list_templates",
    title="List templates",
    description=(
        "List the project templates Kiln can generate from: slug, name, description, version and the "
        "JSON Schema of each template's parameters. Start here to choose a template; then call "
        "get_template for one template's full parameter schema, and preview_generation or "
        "generate_project with its slug."
    ),
    input_schema={"type": "object", "properties": {**PAGE_ARGUMENTS}, "additionalProperties": False},
    operation_id="templates_list",
    query_arguments={"page": "page", "page_size": "page_size"},
    output="list",
)
def list_templates(call: ToolCall) -> dict[str, Any]:
    return page_of(_catalog(), call, lambda rows: TemplateSerializer(rows, many=True).data)


@register_tool(
    name="get_template",
    title="Get a template",
    description=(
        "One template with its parameters as a JSON Schema (types, defaults, enums, patterns, which are "
        "required). Build the `parameters` object of preview_generation / generate_project from it; "
        "parameters left out take their defaults. `versions` lists its version labels, newest first "
        "(pass one as `version` to generate an older one)."
    ),
    input_schema={
        "type": "object",
        "required": ["template"],
        "properties": {"template": TEMPLATE_ARGUMENT},
        "additionalProperties": False,
    },
    operation_id="templates_retrieve",
    path_arguments={"template": "slug"},
)
def get_template(call: ToolCall) -> dict[str, Any]:
    template = _catalog().filter(slug=call["template"]).first()
    if template is None:
        raise NotFound(f"No template named '{call['template']}'.")
    versions = versions_of(template).values_list("version", flat=True)[:MAX_VERSIONS_SHOWN]
    return {**TemplateSerializer(template).data, "versions": list(versions)}


def _catalog() -> QuerySet[ProjectTemplate]:
    """The templates the REST catalog lists (TemplateViewSet's queryset)."""
    return ProjectTemplate.objects.filter(is_active=True).order_by("slug")
