from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.main import create_app


@pytest.fixture
def client() -> Iterator[TestClient]:
    """A client for a fresh app, so every test starts with an empty store."""
    with TestClient(create_app()) as test_client:
        yield test_client
