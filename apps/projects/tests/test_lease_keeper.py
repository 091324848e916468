"""Issue 21 item 3, in-process: the lease keeper renews a held lease while its job works.

The live test (tests/integration/test_render_bounds_live.py) shows it on a real worker;
these check the keeper's rules on the database: renewed while held, never after
`finish`/`release`, dropped when the task ends (`forget_leases`), given up when someone
else owns the job, and no thread or connection left behind once idle.
"""

from __future__ import annotations

import threading
import time

import pytest

from apps.projects.models import GeneratedProject
from apps.projects.services.generation import generated_project_start
from core.jobs import JobStatus, claim, forget_leases, lease_keeper, reap_jobs


def _keeper_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "kiln-lease-keeper"]


def _wait_idle(timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while _keeper_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _keeper_threads(), "the keeper thread outlived the last lease"


@pytest.mark.django_db(transaction=True)
def test_the_keeper_renews_held_leases_only(cast, make_template, settings):
    """One transactional test (their teardown is the slow part) for the keeper's four rules."""
    settings.KILN_JOB_LEASE_SECONDS = 1.5
    template = make_template({"a.txt": "x"})

    def pending():
        return generated_project_start(
            project=cast.project, template_slug=template.slug, parameters={}, actor=cast.alice, enqueue=False
        )

    # 1. held: the work does not come back to a heartbeat for more than two leases, and the
    #    reaper (run as beat would) finds nothing to recover
    busy = pending()
    result = claim(GeneratedProject, busy.pk, owner="test:1:busy")
    assert result.lease is not None and result.lease in lease_keeper.held()
    time.sleep(4.0)
    assert reap_jobs().as_dict() == {"requeued_pending": 0, "requeued_running": 0, "failed_expired": 0}
    assert GeneratedProject.objects.get(pk=busy.pk).lease_owner == "test:1:busy"
    result.lease.finish(JobStatus.CANCELLED)
    assert lease_keeper.held() == []
    _wait_idle()

    # 2. left behind by its task (what task_postrun does): no longer renewed, the reaper recovers it
    left = pending()
    result = claim(GeneratedProject, left.pk, owner="test:1:left")
    forget_leases()
    assert lease_keeper.held() == []
    time.sleep(2.0)
    assert reap_jobs().requeued_running == 1
    _wait_idle()

    # 3. taken over by another execution: given up, never renewed for the old owner
    taken = pending()
    result = claim(GeneratedProject, taken.pk, owner="test:1:old")
    GeneratedProject.objects.filter(pk=taken.pk).update(lease_owner="test:2:new")
    deadline = time.monotonic() + 3
    while lease_keeper.held() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert result.lease not in lease_keeper.held()
    _wait_idle()


@pytest.mark.django_db
def test_a_claim_inside_a_transaction_is_left_to_the_callers_heartbeats(cast, make_template):
    template = make_template({"a.txt": "x"})
    row = generated_project_start(
        project=cast.project, template_slug=template.slug, parameters={}, actor=cast.alice, enqueue=False
    )
    result = claim(GeneratedProject, row.pk, owner="test:1:atomic")  # inside the test's transaction
    assert result.lease is not None and result.lease not in lease_keeper.held()
    result.lease.finish(JobStatus.CANCELLED)
