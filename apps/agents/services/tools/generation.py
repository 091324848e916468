"""Tools over generations: dry run, generate, follow the job, read what it made."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings

from apps.agents.services.tools.catalog import TEMPLATE_ARGUMENT
from apps.agents.services.tools.projects import PROJECT_ARGUMENT
from apps.agents.services.tools.registry import PAGE_ARGUMENTS, ToolCall, page_of, register_tool
from apps.projects.models import GeneratedProject
from apps.projects.selectors import files_of, generated_in, project_for
from apps.projects.serializers import (
    DryRunSerializer,
    GeneratedProjectCreateSerializer,
    GeneratedProjectSerializer,
    ProjectFileSerializer,
)
from apps.projects.services import generation
from core.exceptions import NotFound
from core.jobs import JobStatus
from core.serializers import MAX_ID

GENERATED_ARGUMENT = {
    "type": "integer",
    "minimum": 1,
    "maximum": MAX_ID,
    "description": "The generation's id, as generate_project returned it.",
}
PARAMETERS_ARGUMENT = {
    "type": "object",
    "description": "Values for the template's parameters (get_template shows their JSON Schema); "
    "parameters left out take their defaults.",
}
MOVING = frozenset({JobStatus.PENDING, JobStatus.RUNNING})
FILE_URI = "kiln://projects/{project}/generated/{generated}/files/{path}"


def file_uri(project_id: int, generated_id: int, path: str) -> str:
    return FILE_URI.format(project=project_id, generated=generated_id, path=path)


def follow_job(call: ToolCall, load: Callable[[], Any], *, label: str, done: Callable[[Any], tuple[int, int]]) -> Any:
    """Follow a job the tool just started while the client listens for progress.

    Without a progress token the job's row is returned at once (poll it with the get_* tool).
    With one, the call keeps reporting `done/total` until the job ends (or waits for approval)
    or KILN_MCP_FOLLOW_SECONDS pass, then returns the row as it is then.
    """
    row = load()
    if not call.wants_progress:
        return row
    deadline = time.monotonic() + settings.KILN_MCP_FOLLOW_SECONDS
    delay = 0.1
    last: tuple[int, int] | None = None
    while True:
        current = done(row)
        if current != last:
            call.progress(current[0], current[1] or None, f"{label} {row.status}")
            last = current
        # a finished job, or one that waits for a person (awaiting_approval), is returned as it is
        if row.status not in MOVING or time.monotonic() >= deadline:
            return row
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)
        row = load()


def _project(call: ToolCall) -> Any:
    return project_for(call.actor, call["project"])


def _generation_request(call: ToolCall, *, dry_run: bool) -> dict[str, Any]:
    """The REST body of `POST .../generated/`, checked by the same input serializer."""
    body: dict[str, Any] = {"template": call["template"], "dry_run": dry_run}
    for optional in ("parameters", "version"):
        if optional in call.arguments:
            body[optional] = call[optional]
    serializer = GeneratedProjectCreateSerializer(data=body)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


GENERATION_INPUT = {
    "type": "object",
    "required": ["project", "template"],
    "properties": {
        "project": PROJECT_ARGUMENT,
        "template": TEMPLATE_ARGUMENT,
        "version": {
            "type": "string",
            "minLength": 1,
            "maxLength": 50,
            "description": "the template version's label (default: the latest, get_template's latest_version)",
        },
        "parameters": PARAMETERS_ARGUMENT,
    },
    "additionalProperties": False,
}


@register_tool(
    name="preview_generation",
    title="Preview a generation (dry run)",
    description=(
        "Render a template with parameters in memory and return the manifest it would produce (each "
        "file's path, size, sha256, whether it is binary; the file count, total bytes and content hash) "
        "without storing or publishing anything. Use it to check parameters before generate_project; "
        "invalid parameters come back as a validation_error naming each field."
    ),
    input_schema=GENERATION_INPUT,
    operation_id="generated_create",
    path_arguments={"project": "project_id"},
    fixed_body={"dry_run": True},
)
def preview_generation(call: ToolCall) -> dict[str, Any]:
    data = _generation_request(call, dry_run=True)
    result = generation.generated_project_dry_run(
        project=_project(call),
        template_slug=data["template"],
        parameters=data["parameters"],
        actor=call.actor,
        version=data.get("version"),
    )
    body = {
        "files": [f.__dict__ for f in result.files],
        "file_count": result.file_count,
        "total_bytes": result.total_bytes,
        "content_sha256": result.content_sha256,
    }
    return dict(DryRunSerializer(body).data)


@register_tool(
    name="generate_project",
    title="Generate a project",
    description=(
        "Start generating a project from a template into a project (a background job). Returns the "
        "generation at once with its `id` and status `pending`; follow it with get_generation until the "
        "status is completed (then list_files / read_file / export_generation) or failed (see `error`). "
        "A client that sends a progress token gets progress notifications and the call waits for the "
        "job for a while. Needs the developer role in the project."
    ),
    input_schema=GENERATION_INPUT,
    operation_id="generated_create",
    path_arguments={"project": "project_id"},
    fixed_body={"dry_run": False},
    response_status="202",
    read_only=False,
    idempotent=False,
    starts_job=True,
)
def generate_project(call: ToolCall) -> dict[str, Any]:
    data = _generation_request(call, dry_run=False)
    started = generation.generated_project_start(
        project=_project(call),
        template_slug=data["template"],
        parameters=data["parameters"],
        actor=call.actor,
        version=data.get("version"),
    )
    row = follow_job(
        call,
        lambda: GeneratedProject.objects.select_related("template", "created_by").get(pk=started.pk),
        label="generation",
        done=lambda g: (g.progress_done, g.progress_total),
    )
    return dict(GeneratedProjectSerializer(row).data)


GENERATED_INPUT = {
    "type": "object",
    "required": ["project", "generated"],
    "properties": {"project": PROJECT_ARGUMENT, "generated": GENERATED_ARGUMENT},
    "additionalProperties": False,
}


@register_tool(
    name="get_generation",
    title="Get a generation",
    description=(
        "A generation's status (pending, running, completed, failed, cancelled), progress {done, total}, "
        "file count, total bytes, content hash and, when it failed, `error` {code, message}. Poll it "
        "after generate_project until the status is no longer pending or running."
    ),
    input_schema=GENERATED_INPUT,
    operation_id="generated_retrieve",
    path_arguments={"project": "project_id", "generated": "id"},
)
def get_generation(call: ToolCall) -> dict[str, Any]:
    return dict(GeneratedProjectSerializer(generated_in(_project(call), call["generated"])).data)


@register_tool(
    name="list_files",
    title="List generated files",
    description=(
        "The files of a completed generation (path, size, sha256, mode, is_binary), by path. Read one "
        "with read_file, or as the resource kiln://projects/{project}/generated/{generated}/files/{path}."
    ),
    input_schema={
        "type": "object",
        "required": ["project", "generated"],
        "properties": {"project": PROJECT_ARGUMENT, "generated": GENERATED_ARGUMENT, **PAGE_ARGUMENTS},
        "additionalProperties": False,
    },
    operation_id="files_list",
    path_arguments={"project": "project_id", "generated": "generated_id"},
    query_arguments={"page": "page", "page_size": "page_size"},
    output="list",
)
def list_files(call: ToolCall) -> dict[str, Any]:
    generated = generated_in(_project(call), call["generated"])
    return page_of(files_of(generated), call, lambda rows: ProjectFileSerializer(rows, many=True).data)


READ_FILE_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["path", "size", "sha256", "is_binary", "encoding", "content", "truncated", "uri"],
    "properties": {
        "path": {"type": "string"},
        "size": {"type": "integer", "description": "The whole file's size in bytes."},
        "sha256": {"type": "string"},
        "mode": {"type": "integer"},
        "is_binary": {"type": "boolean"},
        "encoding": {"type": "string", "enum": ["utf-8", "base64"]},
        "content": {"type": "string", "description": "Text, or base64 for binary files; at most the size cap."},
        "truncated": {"type": "boolean", "description": "True when `content` holds only the first bytes."},
        "uri": {"type": "string", "description": "The file as an MCP resource (the whole file)."},
    },
}


def read_project_file(call_actor: Any, project_id: int, generated_id: int, path: str, *, limit: int | None) -> Any:
    """(file row, bytes read, truncated) for one recorded file, read as `call_actor` may."""
    generated = generated_in(project_for(call_actor, project_id), generated_id)
    project_file = files_of(generated).filter(path=path).first()
    if project_file is None:
        raise NotFound(f"No file '{path}' in generation {generated_id}.", extra={"path": path})
    with generation.generated_file_open(project_file) as handle:
        data = handle.read() if limit is None else handle.read(limit + 1)
    truncated = limit is not None and len(data) > limit
    return project_file, (data[:limit] if truncated and limit is not None else data), truncated


@register_tool(
    name="read_file",
    title="Read a generated file",
    description=(
        "The content of one file of a completed generation, by its path (list_files shows them). Text "
        "comes as UTF-8, binary files as base64; a file above the size cap comes back truncated "
        "(`truncated: true`) and whole through its resource `uri`."
    ),
    input_schema={
        "type": "object",
        "required": ["project", "generated", "path"],
        "properties": {
            "project": PROJECT_ARGUMENT,
            "generated": GENERATED_ARGUMENT,
            "path": {
                "type": "string",
                "minLength": 1,
                "maxLength": 1024,
                "description": "The file's relative POSIX path, e.g. src/app/__init__.py.",
            },
        },
        "additionalProperties": False,
    },
    operation_id="files_content",
    path_arguments={"project": "project_id", "generated": "generated_id"},
    looked_up={"id": "path"},
    output="own",
    own_output_schema=READ_FILE_OUTPUT,
)
def read_file(call: ToolCall) -> dict[str, Any]:
    limit = settings.KILN_MCP_READ_FILE_MAX_BYTES
    project_file, data, truncated = read_project_file(
        call.actor, call["project"], call["generated"], call["path"], limit=limit
    )
    text = None if project_file.is_binary else _utf8(data, truncated=truncated)
    return {
        "path": project_file.path,
        "size": project_file.size,
        "sha256": project_file.sha256,
        "mode": project_file.mode,
        "is_binary": project_file.is_binary,
        "encoding": "utf-8" if text is not None else "base64",
        "content": text if text is not None else base64.b64encode(data).decode("ascii"),
        "truncated": truncated,
        "uri": file_uri(call["project"], call["generated"], project_file.path),
    }


def _utf8(data: bytes, *, truncated: bool) -> str | None:
    """The text, or None if it is not UTF-8; a cap that cut a character in two drops that part."""
    for cut in range(4 if truncated else 1):
        try:
            return (data[: len(data) - cut] if cut else data).decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None
