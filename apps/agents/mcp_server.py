"""Kiln's MCP endpoint: the agent tool registry served with the official `mcp` SDK.

`/mcp` speaks Streamable HTTP, stateless (any web process answers any request), behind the
SDK's bearer-token middleware: `KilnTokenVerifier` accepts the same user and agent tokens as
the REST API (`apps.accounts.authentication.resolve_token`), an absent or dead token gets the
SDK's 401 with `WWW-Authenticate: Bearer ... resource_metadata=...` (RFC 9728 metadata at
`/.well-known/oauth-protected-resource/mcp`), and the SDK's Host/Origin checks run against
the allowlists in settings (DNS-rebinding protection).

The SDK's low-level `Server` is used rather than `MCPServer`, whose tools take their schemas
from Python signatures: Kiln's tools, their JSON Schemas and their handlers come from one
registry (`apps.agents.services.tools`), which the REST discovery documents read too. Each call
runs its (synchronous, Django) handler on a worker thread with the caller's identity, inside
Django's connection lifecycle. Generated files are also resources,
`kiln://projects/{project}/generated/{generated}/files/{+path}`.
"""

from __future__ import annotations

import base64
import json
import logging
import mimetypes
import re
from collections.abc import Callable
from datetime import UTC
from typing import Any, TypeVar
from urllib.parse import unquote

import anyio
import anyio.from_thread
import anyio.to_thread
import mcp_types as types
from django.conf import settings
from django.db import close_old_connections
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from starlette.applications import Starlette

from core.exceptions import ApplicationError

logger = logging.getLogger("kiln.mcp")

T = TypeVar("T")

SERVER_NAME = "kiln"
INSTRUCTIONS = (
    "Kiln turns a project template plus parameters into a new repository. Typical use: list_templates → "
    "get_template (its parameters' JSON Schema) → list_projects or create_project → preview_generation "
    "(dry run) → generate_project → get_generation until completed → list_files / read_file → "
    "export_generation (zip, tar.gz, git, github, gitlab) → get_export. Errors carry {code, message, extra}."
)
RESOURCE_TEMPLATE = "kiln://projects/{project}/generated/{generated}/files/{+path}"
RESOURCE_URI = re.compile(
    r"^kiln://projects/(?P<project>\d{1,18})/generated/(?P<generated>\d{1,18})/files/(?P<path>.+)$"
)
RESOURCES_PAGE = 100


# --- identity ------------------------------------------------------------------------------


def _resolve(token: str) -> AccessToken | None:
    from apps.accounts.authentication import resolve_token
    from apps.agents.models import AgentToken

    result = resolve_token(token)
    if result is None:
        return None
    user, row = result
    kind = "agent" if isinstance(row, AgentToken) else "user"
    expires = row.expires_at.astimezone(UTC) if row.expires_at else None
    return AccessToken(
        token=token,
        client_id=f"kiln-{kind}-{row.agent_id if kind == 'agent' else user.pk}",
        scopes=[],
        expires_at=int(expires.timestamp()) if expires else None,
        subject=str(user.pk),
        claims={"kind": kind, "token_id": row.pk},
    )


class KilnTokenVerifier:
    """The SDK's `TokenVerifier` over Kiln's hashed user and agent tokens."""

    async def verify_token(self, token: str) -> AccessToken | None:
        return await in_django_thread(lambda: _resolve(token))


async def in_django_thread(work: Callable[[], T]) -> T:
    """Run Django code on a worker thread with a request's connection lifecycle around it."""

    def run() -> T:
        close_old_connections()
        try:
            return work()
        finally:
            close_old_connections()

    return await anyio.to_thread.run_sync(run)


def _actor() -> Any:
    """The user (a person, or an agent's own user) the request's bearer token stands for."""
    from django.contrib.auth import get_user_model

    from core.context import set_actor

    access = get_access_token()
    if access is None or access.subject is None:  # the SDK's middleware let no such request through
        raise MCPError(code=types.INVALID_REQUEST, message="Not authenticated.")
    user = get_user_model().objects.filter(pk=int(access.subject), is_active=True).first()
    if user is None:
        raise MCPError(code=types.INVALID_REQUEST, message="Not authenticated.")
    set_actor(user)
    return user


# --- tools ----------------------------------------------------------------------------------


def _tool_list() -> list[types.Tool]:
    from apps.agents.services.tools import tools

    return [
        types.Tool(
            name=tool.name,
            title=tool.title,
            description=tool.description,
            input_schema=tool.input_schema,
            output_schema=tool.output_schema(),
            annotations=types.ToolAnnotations(
                title=tool.title,
                read_only_hint=tool.read_only,
                destructive_hint=tool.destructive,
                idempotent_hint=tool.idempotent,
                open_world_hint=tool.name == "export_generation",
            ),
        )
        for tool in tools().values()
    ]


_listed: list[types.Tool] | None = None


async def list_tools(
    ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    global _listed
    if _listed is None:
        # the output schemas come from Kiln's OpenAPI document, built once per process
        _listed = await in_django_thread(_tool_list)
    return types.ListToolsResult(tools=_listed)


def _progress_token(ctx: ServerRequestContext[Any]) -> Any:
    meta = ctx.meta or {}
    return meta.get("progress_token", meta.get("progressToken"))  # type: ignore[attr-defined]


async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
    from apps.agents.services.tools import ToolCall, tools
    from apps.agents.services.tools import call_tool as run

    tool = tools().get(params.name)
    if tool is None:
        raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown tool: {params.name}")

    def progress(done: float, total: float | None, message: str | None) -> None:
        anyio.from_thread.run(ctx.session.report_progress, done, total, message)

    call = ToolCall(actor=None, arguments={}, progress=progress, wants_progress=_progress_token(ctx) is not None)

    def work() -> Any:
        return run(tool, actor=_actor(), arguments=params.arguments, call=call)

    outcome = await in_django_thread(work)
    text = json.dumps(outcome.structured, ensure_ascii=False, sort_keys=True, default=str)
    if outcome.is_error:
        logger.info("mcp tool %s: %s", tool.name, outcome.structured.get("code"))
    content: list[types.ContentBlock] = [types.TextContent(type="text", text=text)]
    uri = outcome.structured.get("uri") if not outcome.is_error else None
    if isinstance(uri, str):
        content.append(types.ResourceLink(type="resource_link", uri=uri, name=str(outcome.structured.get("path", uri))))
    return types.CallToolResult(content=content, structured_content=outcome.structured, is_error=outcome.is_error)


# --- resources: generated files ---------------------------------------------------------------


def _resource_error(exc: ApplicationError, uri: str) -> MCPError:
    body = exc.as_dict()
    return MCPError(code=types.INVALID_PARAMS, message=body["message"], data={**body, "uri": uri})


async def list_resource_templates(
    ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
) -> types.ListResourceTemplatesResult:
    return types.ListResourceTemplatesResult(
        resource_templates=[
            types.ResourceTemplate(
                name="generated-file",
                title="A file of a generation",
                uri_template=RESOURCE_TEMPLATE,
                description="One file of a completed generation (list_files shows the paths).",
            )
        ]
    )


async def list_resources(
    ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
) -> types.ListResourcesResult:
    from apps.agents.services.tools.generation import file_uri
    from apps.projects.models import ProjectFile
    from apps.projects.selectors import projects_visible_to
    from core.jobs import JobStatus

    cursor = params.cursor if params else None
    start = int(cursor) if cursor and cursor.isdigit() else 0

    def page() -> tuple[list[types.Resource], str | None]:
        rows = list(
            ProjectFile.objects.filter(
                generated__project__in=projects_visible_to(_actor()), generated__status=JobStatus.COMPLETED
            )
            .order_by("-generated_id", "path")
            .values_list("generated__project_id", "generated_id", "path", "size", "is_binary")[
                start : start + RESOURCES_PAGE + 1
            ]
        )
        resources = [
            types.Resource(
                uri=file_uri(project, generated, path),
                name=path,
                size=size,
                mime_type="application/octet-stream" if binary else _text_type(path),
            )
            for project, generated, path, size, binary in rows[:RESOURCES_PAGE]
        ]
        return resources, (str(start + RESOURCES_PAGE) if len(rows) > RESOURCES_PAGE else None)

    resources, next_cursor = await in_django_thread(page)
    return types.ListResourcesResult(resources=resources, next_cursor=next_cursor)


def _text_type(path: str) -> str:
    guessed, _ = mimetypes.guess_type(path)
    return guessed if guessed and guessed.startswith("text/") else "text/plain"


async def read_resource(
    ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
) -> types.ReadResourceResult:
    from apps.agents.services.tools.generation import read_project_file

    uri = str(params.uri)
    match = RESOURCE_URI.match(uri)
    if match is None:
        raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown resource: {uri}", data={"uri": uri})

    def read() -> tuple[Any, bytes]:
        project_file, data, _ = read_project_file(
            _actor(), int(match["project"]), int(match["generated"]), unquote(match["path"]), limit=None
        )
        return project_file, data

    try:
        project_file, data = await in_django_thread(read)
    except ApplicationError as exc:
        raise _resource_error(exc, uri) from None
    if not project_file.is_binary:
        try:
            text = data.decode("utf-8")
            return types.ReadResourceResult(
                contents=[types.TextResourceContents(uri=uri, text=text, mime_type=_text_type(project_file.path))]
            )
        except UnicodeDecodeError:
            pass
    blob = base64.b64encode(data).decode("ascii")
    return types.ReadResourceResult(
        contents=[types.BlobResourceContents(uri=uri, blob=blob, mime_type="application/octet-stream")]
    )


# --- the server and its ASGI app ----------------------------------------------------------------


def build_server() -> Server[Any]:
    return Server(
        SERVER_NAME,
        title="Kiln",
        version="1.0.0",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_resource_templates,
        on_read_resource=read_resource,
    )


def auth_settings() -> AuthSettings:
    # validated from strings, which keeps a path-less issuer URL without a trailing slash
    return AuthSettings.model_validate(
        {
            "issuer_url": settings.KILN_PUBLIC_URL,  # tokens come from Kiln itself (login, agent tokens)
            "resource_server_url": f"{settings.KILN_PUBLIC_URL}/mcp",
            "validate_token_resource": False,  # Kiln's tokens are opaque and not audience-bound
            "required_scopes": [],
        }
    )


def transport_security() -> TransportSecuritySettings:
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=list(settings.KILN_MCP_ALLOWED_HOSTS),
        allowed_origins=list(settings.KILN_MCP_ALLOWED_ORIGINS),
    )


def mcp_app(server: Server[Any] | None = None) -> tuple[Server[Any], Starlette]:
    """The SDK's Streamable HTTP app for `server`; its session manager must run in the host's lifespan."""
    server = server or build_server()
    app = server.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=True,
        transport_security=transport_security(),
        auth=auth_settings(),
        token_verifier=KilnTokenVerifier(),
        max_request_body_size=settings.DATA_UPLOAD_MAX_MEMORY_SIZE,  # KILN_MAX_REQUEST_BYTES
    )
    return server, app
