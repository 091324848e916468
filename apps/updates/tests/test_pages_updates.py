"""The update pages (apps/web): start a preview from a generation's page, read its files and diff."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from apps.updates.models import TemplateUpdate

pytestmark = pytest.mark.django_db


def login(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_developer_previews_an_update_from_the_pages(cast: Any, exported_git: Any, run_jobs: Any) -> None:
    target = exported_git()
    page = f"/projects/{target.project.pk}/generated/{target.generated.pk}/"
    client = login(cast.dave)
    html = client.get(page).content.decode()
    assert 'id="updates-title"' in html and "latest: 2.0.0" in html and 'name="mode"' in html
    with run_jobs():
        started = client.post(f"{page}updates/", {"mode": "preview"})
    update = TemplateUpdate.objects.get()
    assert started.status_code == 302 and started["Location"] == f"{page}updates/{update.pk}/"
    assert (update.mode, update.from_version, update.to_version) == ("preview", "1.0.0", "2.0.0")
    update.refresh_from_db()
    assert update.status == "completed", update.error
    detail = client.get(started["Location"]).content.decode()
    assert f"Update #{update.pk}: svc 1.0.0 → 2.0.0" in detail
    assert re.search(r'<span class="gi">\+', detail), "the diff is highlighted on the server"
    assert (
        f'href="/api/v1/projects/{target.project.pk}/generated/{target.generated.pk}/updates/{update.pk}/diff/"'
        in detail
    )
    assert f"Update #{update.pk}</a>: 1.0.0 → 2.0.0" in client.get(page).content.decode()

    assert login(cast.charlie).get(started["Location"]).status_code == 404
    refused = login(cast.victor).post(f"{page}updates/", {"mode": "preview"}, follow=True)  # a viewer reads only
    assert "cannot run preview updates" in refused.content.decode()
    assert TemplateUpdate.objects.count() == 1
