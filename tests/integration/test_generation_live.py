"""Generation end to end: HTTP → PostgreSQL → Redis → a real Celery worker → files on disk."""

from __future__ import annotations

import hashlib
import time

import httpx
import pytest

from apps.storage.blobs import blob_store
from tests.integration.harness import poll

pytestmark = [pytest.mark.integration]

BUILTINS = ["python-package", "django-rest-service", "fastapi-service"]


@pytest.fixture
def http(live_stack):
    from apps.projects.tests.factories import UserFactory

    UserFactory(username="alice")
    with httpx.Client(base_url=live_stack.url, timeout=30) as client:
        token = client.post("/api/v1/auth/token/", json={"username": "alice", "password": "pw-for-tests"}).json()[
            "token"
        ]
        client.headers["Authorization"] = f"Token {token}"
        yield client


def test_generate_each_builtin_through_http_and_a_real_worker(http, settings):
    project = http.post("/api/v1/projects/", json={"name": "Live"}).json()
    base = f"/api/v1/projects/{project['id']}/generated/"
    timings = {}
    for slug in BUILTINS:
        started = time.monotonic()
        created = http.post(base, json={"template": slug, "parameters": {}})
        assert created.status_code == 202, created.text
        assert created.json()["status"] == "pending"
        generated_id = created.json()["id"]
        detail = poll(
            lambda generated_id=generated_id: http.get(f"{base}{generated_id}/").json(),
            lambda d: d["status"] in {"completed", "failed", "cancelled"},
        )
        timings[slug] = time.monotonic() - started
        assert detail["status"] == "completed", detail
        assert detail["progress"]["done"] == detail["progress"]["total"] == detail["file_count"]

        files = []
        url = f"{base}{generated_id}/files/?page_size=100"
        while url:
            page = http.get(url).json()
            files.extend(page["results"])
            url = page["next"]
        assert len(files) == detail["file_count"]
        for f in files:  # what the worker stored, as the web serves it back
            data = blob_store().read(f["sha256"], size=f["size"])
            assert hashlib.sha256(data).hexdigest() == f["sha256"] and len(data) == f["size"]
        sample = files[0]
        raw = http.get(f"{base}{generated_id}/files/{sample['id']}/content/")
        assert raw.status_code == 200
        assert raw.content == blob_store().read(sample["sha256"])
    print("integration generation timings (s):", {k: round(v, 2) for k, v in timings.items()})


def test_same_inputs_give_the_same_hash_and_outsiders_get_404(http, live_stack):
    project = http.post("/api/v1/projects/", json={"name": "Twice"}).json()
    base = f"/api/v1/projects/{project['id']}/generated/"
    hashes = []
    for _ in range(2):
        created = http.post(
            base, json={"template": "python-package", "parameters": {"project_name": "same-name"}}
        ).json()
        detail = poll(lambda pk=created["id"]: http.get(f"{base}{pk}/").json(), lambda d: d["status"] == "completed")
        hashes.append(detail["content_sha256"])
    assert hashes[0] == hashes[1]

    from apps.projects.tests.factories import UserFactory

    UserFactory(username="charlie")
    with httpx.Client(base_url=live_stack.url, timeout=30) as other:
        token = other.post("/api/v1/auth/token/", json={"username": "charlie", "password": "pw-for-tests"}).json()[
            "token"
        ]
        response = other.get(f"{base}{created['id']}/", headers={"Authorization": f"Token {token}"})
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
