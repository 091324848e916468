"""Provider connections: write-only encrypted tokens, owner scoping, base URL checks."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from django.db import connection as db

from apps.projects.models import ProviderConnection

pytestmark = pytest.mark.django_db

CANARY = "CANARY-token-0123456789-abcdef"


def test_token_is_write_only_and_encrypted(api, cast, settings):
    response = api(cast.alice).post(
        "/api/v1/connections/", {"provider": "github", "name": "gh", "token": CANARY}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert CANARY not in json.dumps(body)
    assert body["token_hint"] == CANARY[-4:]
    assert set(body) == {"id", "provider", "name", "base_url", "token_hint", "account", "verified_at", "created_at"}
    listing = api(cast.alice).get("/api/v1/connections/")
    assert CANARY not in listing.content.decode()
    with db.cursor() as cursor:
        cursor.execute("SELECT token_encrypted FROM projects_providerconnection")
        stored = cursor.fetchone()[0]
    assert CANARY not in stored
    key_file = Path(settings.KILN_SECRET_KEY_FILE)
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    from apps.projects.services.secrets import decrypt_secret

    assert decrypt_secret(stored) == CANARY


def test_connections_are_private_to_their_owner(api, cast):
    created = (
        api(cast.alice)
        .post("/api/v1/connections/", {"provider": "gitlab", "name": "gl", "token": CANARY}, format="json")
        .json()
    )
    assert api(cast.dave).get("/api/v1/connections/").json()["count"] == 0
    assert api(cast.dave).get(f"/api/v1/connections/{created['id']}/").status_code == 404
    assert api(cast.dave).delete(f"/api/v1/connections/{created['id']}/").status_code == 404
    assert api(cast.alice).delete(f"/api/v1/connections/{created['id']}/").status_code == 204
    assert not ProviderConnection.objects.exists()


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8080/api/v3",
        "https://169.254.169.254/",
        "https://10.0.0.5/",
        "https://[::ffff:127.0.0.1]/",
        "https://0x7f000001/",
        "https://2130706433/",
        "https://127.1/",
        "https://100.64.0.1/",
        "https://localhost/",
        "file:///etc/passwd",
        "gopher://example.com/",
        "https://user:pw@example.com/",
    ],
)
def test_private_or_odd_base_urls_are_refused(api, cast, settings, base_url):
    settings.KILN_ALLOW_PRIVATE_NETWORKS = False
    response = api(cast.alice).post(
        "/api/v1/connections/",
        {"provider": "github", "name": "x", "token": CANARY, "base_url": base_url},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert response.json()["code"] in {"remote_host_not_allowed", "invalid_base_url"}
    assert CANARY not in response.content.decode()
    assert not ProviderConnection.objects.exists()


def test_duplicate_name_and_bad_input(api, cast):
    client = api(cast.alice)
    assert (
        client.post(
            "/api/v1/connections/", {"provider": "github", "name": "a", "token": CANARY}, format="json"
        ).status_code
        == 201
    )
    duplicate = client.post("/api/v1/connections/", {"provider": "github", "name": "a", "token": CANARY}, format="json")
    assert duplicate.status_code == 409
    assert CANARY not in duplicate.content.decode()
    assert (
        client.post(
            "/api/v1/connections/", {"provider": "bitbucket", "name": "b", "token": CANARY}, format="json"
        ).status_code
        == 400
    )
    assert (
        client.post(
            "/api/v1/connections/", {"provider": "github", "name": "c", "token": CANARY, "owner": 3}, format="json"
        ).status_code
        == 400
    )


def test_git_connection_verify_is_unsupported(api, cast):
    created = (
        api(cast.alice)
        .post("/api/v1/connections/", {"provider": "git", "name": "g", "token": CANARY}, format="json")
        .json()
    )
    response = api(cast.alice).post(f"/api/v1/connections/{created['id']}/verify/")
    assert response.status_code == 400
    assert response.json()["code"] == "verify_unsupported"
