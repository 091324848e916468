"""The approvals pages (apps/web): a maintainer sees the pending approval with its exact plan,
approves it with the plan's hash (a stale hash runs nothing), rejects another; others get 404."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from apps.approvals.models import Approval
from apps.approvals.tests.test_run_approvals import FILES, PARAMETERS, gated_steps, start_run
from apps.workflows.models import WorkflowRun

pytestmark = pytest.mark.django_db


def login(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_maintainer_approves_the_plan_shown_and_rejects_another(
    api: Any, cast: Any, make_template: Any, run_jobs: Any
) -> None:
    make_template(FILES, slug="gate-tpl", parameters=PARAMETERS)
    first = start_run(
        api, cast.alice, gated_steps(cast.project.pk), run_jobs, project=cast.project.pk, inputs={"name": "api"}
    )
    approval = Approval.objects.get(run_id=first["id"])
    page = f"/approvals/{approval.pk}/"
    mia = login(cast.mia)
    listing = mia.get("/approvals/").content.decode()
    assert f'<a href="{page}">Approval #{approval.pk}</a>: Run #{first["id"]}, step generate in Alpha' in listing
    detail = mia.get(page).content.decode()
    assert f"<code data-plan-sha256>{approval.plan_sha256}</code>" in detail
    assert re.search(r'<span class="nt">"template"</span>', detail), "the plan is highlighted"
    assert f'name="plan_sha256" value="{approval.plan_sha256}"' in detail
    for outsider in (cast.dave, cast.victor, cast.charlie):  # not maintainers: nothing to see or decide
        client = login(outsider)
        assert f"Approval #{approval.pk}" not in client.get("/approvals/").content.decode()
        assert client.get(page).status_code == 404
        assert client.post(f"{page}approve/", {"plan_sha256": approval.plan_sha256}).status_code == 404

    # the template changes while the page is open: approving what was shown runs nothing
    shown = approval.plan_sha256
    make_template({"README.md": "# {{ name }} v2\n"}, slug="gate-tpl", parameters=PARAMETERS, version="2.0.0")
    with run_jobs():
        stale = mia.post(f"{page}approve/", {"plan_sha256": shown}, follow=True).content.decode()
    approval.refresh_from_db()
    assert "The plan changed since it was shown" in stale and approval.status == "pending"
    assert approval.plan_sha256 != shown and f"<code data-plan-sha256>{approval.plan_sha256}</code>" in stale
    assert WorkflowRun.objects.get(pk=first["id"]).status == "awaiting_approval"
    with run_jobs():
        done = mia.post(f"{page}approve/", {"plan_sha256": approval.plan_sha256}, follow=True).content.decode()
    approval.refresh_from_db()
    assert approval.status == "approved" and approval.decided_by == cast.mia and "Approved: Run #" in done
    assert WorkflowRun.objects.get(pk=first["id"]).status == "completed"
    assert "No pending approvals for you." in mia.get("/approvals/").content.decode()
    assert f"Approval #{approval.pk}</a>" in mia.get("/approvals/?status=approved").content.decode()

    second = start_run(
        api, cast.alice, gated_steps(cast.project.pk), run_jobs, project=cast.project.pk, inputs={"name": "api"}
    )
    other = Approval.objects.get(run_id=second["id"])
    rejected = login(cast.alice).post(f"/approvals/{other.pk}/reject/", {"comment": "not now"}, follow=True)
    other.refresh_from_db()
    assert (other.status, other.comment, other.decided_by) == ("rejected", "not now", cast.alice)
    assert "Rejected: Run #" in rejected.content.decode()
    assert WorkflowRun.objects.get(pk=second["id"]).status == "cancelled"
    again = mia.post(f"/approvals/{other.pk}/approve/", {"plan_sha256": other.plan_sha256}, follow=True)
    assert "This approval is already rejected." in again.content.decode()
