"""The ASGI application the web process serves: Kiln's Django site and its MCP endpoint.

Starlette sits on top: `/mcp` (and its OAuth protected-resource metadata) go to the official
MCP SDK's Streamable HTTP app, everything else to Django's ASGI handler. Django refuses ASGI
lifespan events, so the lifespan lives here, where it runs the MCP session manager.

    uvicorn core.asgi:application            # the embedded default: SQLite, tasks in-process
    gunicorn core.asgi:application -k uvicorn_worker.UvicornWorker   # production (Procfile)

Under ASGI every request runs on its own thread, so persistent database connections would
outlive their threads; as Django's docs advise, the web process closes its connection after
each request unless DB_CONN_MAX_AGE says otherwise (workers keep their default).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings.local")
os.environ.setdefault("DB_CONN_MAX_AGE", "0")

from django.core.asgi import get_asgi_application

django_application = get_asgi_application()

from starlette.applications import Starlette  # noqa: E402 - Django is set up first
from starlette.routing import Mount, Route  # noqa: E402

from apps.agents.mcp_server import mcp_app  # noqa: E402

mcp_server, mcp_application = mcp_app()


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with mcp_server.session_manager.run():
        yield


application = Starlette(
    routes=[
        Route("/mcp", endpoint=mcp_application),
        Route("/.well-known/oauth-protected-resource/mcp", endpoint=mcp_application),
        Mount("/", app=django_application),  # type: ignore[arg-type]  # Django's handler is an ASGI app
    ],
    lifespan=lifespan,
)
