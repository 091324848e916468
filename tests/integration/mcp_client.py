"""The official `mcp` client, driven from synchronous tests.

`mcp_session(url, token)` connects `mcp.Client` over Streamable HTTP with a bearer token
(an `httpx2` client carries the header) inside an anyio blocking portal, so a test can call
tools and, between calls, use the ORM or plain HTTP as usual.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
from anyio.from_thread import BlockingPortal, start_blocking_portal
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


@dataclass
class SyncMcp:
    portal: BlockingPortal
    client: Client
    progress: list[tuple[float, float | None, str | None]] = field(default_factory=list)

    def tools(self) -> dict[str, Any]:
        return {tool.name: tool for tool in self.portal.call(self.client.list_tools).tools}

    def call(self, name: str, arguments: dict[str, Any] | None = None, *, with_progress: bool = False) -> Any:
        async def record(done: float, total: float | None, message: str | None) -> None:
            self.progress.append((done, total, message))

        async def run() -> Any:
            return await self.client.call_tool(
                name, arguments or {}, progress_callback=record if with_progress else None
            )

        return self.portal.call(run)

    def ok(self, name: str, arguments: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        """The structured result of a call that must succeed."""
        result = self.call(name, arguments, **kwargs)
        assert not result.is_error, f"{name} failed: {result.structured_content}"
        assert json.loads(result.content[0].text) == result.structured_content
        return dict(result.structured_content)

    def error(self, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        """The `{code, message, extra}` of a call that must fail as a tool error."""
        result = self.call(name, arguments)
        assert result.is_error, f"{name} succeeded: {result.structured_content}"
        return dict(result.structured_content)

    def read_resource(self, uri: str) -> Any:
        return self.portal.call(self.client.read_resource, uri)


@contextmanager
def mcp_session(url: str, token: str | None) -> Iterator[SyncMcp]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with start_blocking_portal() as portal:
        http = portal.call(_http_client, headers)
        try:
            with portal.wrap_async_context_manager(
                Client(streamable_http_client(f"{url}/mcp", http_client=http))
            ) as client:
                yield SyncMcp(portal, client)
        finally:
            portal.call(http.aclose)


async def _http_client(headers: dict[str, str]) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60.0))
