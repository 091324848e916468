import cProfile
import pstats

import pytest

pytestmark = pytest.mark.django_db


def test_time(cast):
    from rest_framework.test import APIClient
    c = APIClient(); c.force_authenticate(cast.alice)
    c.post("/api/v1/projects/", {"name": "X", "id": 5}, format="json")
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(20):
        c.post("/api/v1/projects/", {"name": "X", "id": 5}, format="json")
    pr.disable()
    pstats.Stats(pr).sort_stats("cumulative").print_stats(35)
