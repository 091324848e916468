from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest


@pytest.fixture
def http_for(live_server) -> Iterator[Callable[..., httpx.Client]]:
    """`http_for(user)` → an httpx client on the live server, authenticated with the user's API token."""
    clients: list[httpx.Client] = []

    def make(user=None) -> httpx.Client:
        client = httpx.Client(base_url=live_server.url, timeout=30)
        if user is not None:
            token = client.post(
                "/api/v1/auth/token/", json={"username": user.username, "password": "pw-for-tests"}
            ).json()["token"]
            client.headers["Authorization"] = f"Token {token}"
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
