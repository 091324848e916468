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
    assert (
        '<option value="">the latest (2.0.0)</option><option value="2.0.0">2.0.0</option><option value="1.0.0">' in html
    )
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


def test_the_fleet_page_shows_drift_and_starts_a_rollout_followed_on_its_page(
    cast: Any, exported_git: Any, run_jobs: Any
) -> None:
    from apps.updates.models import Rollout

    target = exported_git()
    alice = login(cast.alice)
    fleet = alice.get("/templates/svc/fleet/").content.decode()
    assert "1 repository in your projects, 1 behind" in fleet
    assert '1.0.0 <span class="status s-pending">behind 2.0.0</span>' in fleet
    assert f'href="/projects/{target.project.pk}/generated/{target.generated.pk}/"' in fleet
    assert "No rollouts yet." in fleet and 'name="mode"' in fleet
    assert 'name="to_version"><option value="">the latest (2.0.0)</option><option value="2.0.0">' in fleet
    assert "No repository exported" in login(cast.charlie).get("/templates/svc/fleet/").content.decode()
    assert 'href="/templates/svc/fleet/"' in alice.get("/templates/svc/").content.decode()

    with run_jobs():
        started = alice.post("/templates/svc/rollouts/", {"mode": "preview", "to_version": "2.0.0"})
    rollout = Rollout.objects.get()
    assert started.status_code == 302 and started["Location"] == f"/rollouts/{rollout.pk}/"
    rollout.refresh_from_db()
    assert rollout.status == "completed", rollout.error
    update = TemplateUpdate.objects.get()
    page = alice.get(started["Location"]).content.decode()
    assert f"Rollout #{rollout.pk}: svc to 2.0.0" in page and "Repositories (1)" in page
    update_url = f"/projects/{target.project.pk}/generated/{target.generated.pk}/updates/{update.pk}/"
    assert f'<a href="{update_url}">Update #{update.pk}</a> · previewed' in page
    assert "data-events" not in page  # finished: nothing to follow
    assert f"Rollout #{rollout.pk}</a>: to 2.0.0" in alice.get("/templates/svc/fleet/").content.decode()
    assert login(cast.charlie).get(started["Location"]).status_code == 404

    # the rollout's live events (the page follows them while it runs), as the API serves them
    stream = alice.get(f"/api/v1/rollouts/{rollout.pk}/events/", HTTP_ACCEPT="text/event-stream")
    body = b"".join(stream.streaming_content).decode()
    assert stream["Content-Type"].startswith("text/event-stream") and '"status":"completed"' in body
    assert login(cast.charlie).get(f"/api/v1/rollouts/{rollout.pk}/events/").status_code == 404

    # a viewer's pull-request rollout touches nothing and says why
    with run_jobs():
        viewers = login(cast.victor).post("/templates/svc/rollouts/", {"mode": "pull_request"}, follow=True)
    html = viewers.content.decode()
    assert "Repositories (0)" in html and "your role is viewer; maintainer or above is needed" in html
    assert TemplateUpdate.objects.count() == 1
    refused = alice.post("/templates/svc/rollouts/", {"mode": "sideways"}, follow=True).content.decode()
    assert "mode is required: one of preview, branch, pull_request." in refused
