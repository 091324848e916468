"""celery beat end to end: the static schedule drives the reaper, which recovers a lost job.

A generation whose message was lost (committed `pending`, never enqueued) is picked up by
nobody but the reaper. Here a real `celery -A core beat` ticks the reaper every second into
the test's Redis queue, a real worker runs it, and the lost generation completes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.integration.harness import ROOT, poll

pytestmark = [pytest.mark.integration]


def test_beat_runs_the_reaper_and_the_reaper_recovers_a_lost_generation(live_stack, celery_worker, tmp_path):
    from apps.projects.models import GeneratedProject
    from apps.projects.services.generation import generated_project_start
    from apps.projects.services.projects import project_create
    from apps.projects.tests.factories import UserFactory

    user = UserFactory(username="beat-owner")
    project = project_create(owner=user, name="Beat")
    lost = generated_project_start(
        project=project, template_slug="python-package", parameters={}, actor=user, enqueue=False
    )
    GeneratedProject.objects.filter(pk=lost.pk).update(enqueued_at=timezone.now() - timedelta(minutes=10))

    log = tmp_path / "beat.log"
    env = {**celery_worker.env(), "KILN_REAPER_INTERVAL_SECONDS": "1"}
    with open(log, "ab") as handle:
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "core", "beat", "-l", "INFO", "-s", str(tmp_path / "schedule")],
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        detail = poll(
            lambda: GeneratedProject.objects.values("status", "file_count", "delivery_count").get(pk=lost.pk),
            lambda row: row["status"] in {"completed", "failed", "cancelled"},
            timeout=90,
        )
    finally:
        os.killpg(beat.pid, signal.SIGTERM)
        beat.wait(timeout=30)
    text = log.read_text(errors="replace")
    assert detail["status"] == "completed", (detail, text[-3000:])
    assert detail["file_count"] > 0
    assert "Sending due task kiln-reap-jobs (projects.reap_jobs)" in text
