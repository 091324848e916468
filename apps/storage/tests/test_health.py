"""`/healthz` checks the configured storage: the folder or the bucket."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.django_db


def test_healthz_reports_the_storage_ok_on_each_backend(client: Any, any_storage: str) -> None:
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json()["storage"] == "ok"


def test_healthz_names_an_unreachable_bucket(client: Any, settings: Any, s3_storage: Any) -> None:
    from tests.s3.server import SECRET_KEY, free_port

    settings.AWS_S3_ENDPOINT_URL = f"http://127.0.0.1:{free_port()}"
    answer = client.get("/healthz")
    assert answer.status_code == 503
    body = answer.json()
    assert body["storage"].startswith("down:") and body["code"] == "unhealthy"
    assert "storage" in body["message"] and SECRET_KEY not in answer.content.decode()


def test_healthz_names_a_missing_bucket(client: Any, settings: Any, s3_storage: Any) -> None:
    settings.AWS_STORAGE_BUCKET_NAME = "kiln-no-such-bucket"
    answer = client.get("/healthz")
    assert answer.status_code == 503 and answer.json()["storage"].startswith("down:")
