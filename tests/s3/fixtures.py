"""Fixtures for the S3 backend: one moto server process per test session, a fresh bucket per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.s3.server import MotoServer


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(log=tmp_path_factory.mktemp("moto") / "moto.log").start()
    yield server
    server.stop()


def use_s3(settings: Any, server: MotoServer, bucket: str) -> None:
    """Switch Kiln's blob store to `bucket` on `server` (Django's settings fixture undoes it)."""
    for name, value in server.settings(bucket).items():
        setattr(settings, name, value)
    settings.STORAGES = {**settings.STORAGES, "blobs": {"BACKEND": settings.KILN_STORAGE_BACKENDS["s3"]}}


@pytest.fixture
def s3_bucket(s3_server: MotoServer) -> str:
    return s3_server.create_bucket(f"kiln-test-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def s3_storage(settings: Any, s3_server: MotoServer, s3_bucket: str) -> MotoServer:
    """The test runs with KILN_STORAGE_BACKEND=s3 on its own bucket."""
    use_s3(settings, s3_server, s3_bucket)
    return s3_server


@pytest.fixture(params=["filesystem", "s3"])
def any_storage(request: pytest.FixtureRequest, settings: Any) -> str:
    """Runs the test once on each backend."""
    if request.param == "s3":
        server = request.getfixturevalue("s3_server")
        use_s3(settings, server, request.getfixturevalue("s3_bucket"))
    return str(request.param)
