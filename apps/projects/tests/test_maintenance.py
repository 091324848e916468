"""Beat jobs: retention cleanup and the reaper."""

from __future__ import annotations

import os
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from apps.projects.models import GeneratedProject, ProjectFile, RepositoryExport
from apps.projects.services.cleanup import generated_projects_cleanup
from apps.projects.services.exports import repository_export_execute, repository_export_start
from apps.projects.services.generation import generated_project_execute, generated_project_start
from apps.storage.blobs import blob_store
from core.jobs import reap_jobs

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


@pytest.fixture
def make_generated(cast, make_template):
    template = make_template(
        {"a.txt": "{{ n }}aaa", "b/c.txt": "cc"},
        parameters={"type": "object", "properties": {"n": {"type": "string", "default": "1"}}},
    )

    def make(age: timedelta | None, n: str = "1"):
        row = generated_project_start(
            project=cast.project, template_slug=template.slug, parameters={"n": n}, actor=cast.alice, enqueue=False
        )
        generated = generated_project_execute(generated_id=row.pk, owner=f"t:1:{row.pk}").generated
        if age is not None:
            GeneratedProject.objects.filter(pk=generated.pk).update(finished_at=timezone.now() - age)
        generated.refresh_from_db()
        return generated

    return make


def _shas(generated) -> dict[str, str]:
    return dict(ProjectFile.objects.filter(generated=generated).values_list("path", "sha256"))


def test_retention_boundary_and_report(make_generated, settings):
    settings.GENERATED_PROJECTS_RETENTION_DAYS = 30
    old = make_generated(30 * DAY + timedelta(minutes=5), n="1")
    young = make_generated(30 * DAY - timedelta(minutes=5), n="2")
    old_files, young_files = _shas(old), _shas(young)
    assert old_files["b/c.txt"] == young_files["b/c.txt"]  # stored once, used by both
    dry = generated_projects_cleanup(dry_run=True)
    assert dry["generated_deleted"] == 1
    assert dry["files_deleted"] == 2
    assert (dry["blobs_deleted"], dry["bytes_freed"]) == (1, 4)  # old's a.txt; c.txt is still young's
    assert GeneratedProject.objects.filter(pk=old.pk).exists()
    assert blob_store().exists(old_files["a.txt"])
    report = generated_projects_cleanup(dry_run=False)
    assert report["generated_deleted"] == 1
    assert (report["blobs_deleted"], report["bytes_freed"]) == (1, 4)
    assert not GeneratedProject.objects.filter(pk=old.pk).exists()
    assert not ProjectFile.objects.filter(generated_id=old.pk).exists()
    assert not blob_store().exists(old_files["a.txt"])
    assert GeneratedProject.objects.filter(pk=young.pk).exists()
    for path, sha in young_files.items():
        assert blob_store().read(sha), path


def test_cleanup_spares_running_work_and_active_exports(make_generated, cast):
    busy = make_generated(40 * DAY)
    export = repository_export_start(generated=busy, data={"provider": "zip"}, actor=cast.alice, enqueue=False)
    running = make_generated(40 * DAY)
    GeneratedProject.objects.filter(pk=running.pk).update(status="running")
    report = generated_projects_cleanup(dry_run=False)
    assert report["skipped_active_export"] == 1
    assert GeneratedProject.objects.filter(pk=busy.pk).exists()
    assert GeneratedProject.objects.filter(pk=running.pk).exists()
    repository_export_execute(export_id=export.pk, owner="t:1:e")
    archive = RepositoryExport.objects.get(pk=export.pk).archive_sha256
    assert blob_store().exists(archive)
    report = generated_projects_cleanup(dry_run=False)
    assert report["generated_deleted"] == 1
    assert report["archives_deleted"] == 1
    assert not GeneratedProject.objects.filter(pk=busy.pk).exists()
    assert not blob_store().exists(archive)


def test_cleanup_removes_a_folder_from_before_the_blob_store_without_following_links(
    make_generated, tmp_path, sentinel, settings
):
    old = make_generated(40 * DAY)
    folder = Path(settings.GENERATED_PROJECTS_DIR) / str(old.project_id) / str(old.pk)
    folder.mkdir(parents=True)
    (folder / "README.md").write_text("written by an older Kiln")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep me")
    os.symlink(outside, folder / "link-to-outside")
    os.symlink(sentinel, folder / "link-to-sentinel")
    generated_projects_cleanup(dry_run=False)
    assert not folder.exists()
    assert (outside / "keep.txt").read_text() == "keep me"


def test_overlapping_cleanups_take_turns(make_generated, settings):
    from core.locks import named_lock

    make_generated(40 * DAY)
    with named_lock("kiln-cleanup") as held:
        assert held
        result: dict = {}
        thread = threading.Thread(target=lambda: result.update(generated_projects_cleanup(dry_run=False)))
        thread.start()
        thread.join()
    assert result == {"status": "already_running", "dry_run": False}
    assert GeneratedProject.objects.count() == 1


def test_reaper_requeues_lost_pending_jobs(cast, make_template, settings, monkeypatch):
    template = make_template({"a.txt": "a"})
    row = generated_project_start(
        project=cast.project, template_slug=template.slug, parameters={}, actor=cast.alice, enqueue=False
    )
    GeneratedProject.objects.filter(pk=row.pk).update(enqueued_at=timezone.now() - timedelta(minutes=10))
    report = reap_jobs()
    assert report.requeued_pending == 1
    row.refresh_from_db()
    assert row.status == "completed"  # the re-enqueued task ran (eager in tests)


def test_reaper_recovers_or_fails_expired_leases(cast, make_template, settings):
    settings.KILN_JOB_MAX_DELIVERIES = 3
    template = make_template({"a.txt": "a"})
    first = generated_project_start(
        project=cast.project, template_slug=template.slug, parameters={}, actor=cast.alice, enqueue=False
    )
    second = generated_project_start(
        project=cast.project, template_slug=template.slug, parameters={}, actor=cast.alice, enqueue=False
    )
    expired = timezone.now() - timedelta(seconds=5)
    GeneratedProject.objects.filter(pk=first.pk).update(
        status="running", lease_owner="gone:1:x", lease_expires_at=expired, delivery_count=1
    )
    GeneratedProject.objects.filter(pk=second.pk).update(
        status="running", lease_owner="gone:1:y", lease_expires_at=expired, delivery_count=3
    )
    report = reap_jobs()
    assert report.requeued_running == 1
    assert report.failed_expired == 1
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == "completed"
    assert second.status == "failed"
    assert second.error["code"] == "lease_expired"


def test_healthz_reports_and_names_a_dead_broker(client, settings):
    assert client.get("/healthz").json() == {"database": "ok", "broker": "ok", "storage": "ok"}
    from core.celery import app

    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        response = client.get("/healthz")
    finally:
        app.conf.task_always_eager = previous
    assert response.status_code == 503
    body = response.json()
    assert body["broker"].startswith("down")
    assert body["database"] == "ok"
    assert "broker" in body["message"]


# --- the beat schedule ---------------------------------------------------------------------------


def test_beat_schedules_both_jobs_from_the_settings():
    from celery.schedules import crontab

    from core.celery import app, beat_schedule

    app.loader.import_default_modules()  # what `celery worker` / `celery beat` do at start: autodiscovery
    schedule = app.conf.beat_schedule
    assert {entry["task"] for entry in schedule.values()} == {
        "projects.reap_jobs",
        "projects.cleanup_old_generated_projects",
        "templates.sync_git_templates",
    }
    assert schedule["kiln-sync-git-templates"]["schedule"] == 3600.0
    for entry in schedule.values():
        assert entry["task"] in app.tasks  # a registered task, not a typo that beat would send forever
    assert schedule["kiln-reap-jobs"]["schedule"] == 60.0
    assert schedule["kiln-cleanup-old-generated-projects"]["schedule"] == crontab(minute="17", hour="3")

    custom = beat_schedule(reaper_interval=15, cleanup_crontab="0 */6 * * 1-5")
    assert "kiln-sync-git-templates" not in custom  # KILN_GIT_SYNC_INTERVAL_SECONDS=0: off
    assert (
        beat_schedule(reaper_interval=15, cleanup_crontab="0 */6 * * 1-5", git_sync_interval=600)[
            "kiln-sync-git-templates"
        ]["schedule"]
        == 600.0
    )
    assert custom["kiln-reap-jobs"]["schedule"] == 15.0
    assert custom["kiln-cleanup-old-generated-projects"]["schedule"] == crontab(
        minute="0", hour="*/6", day_of_week="1-5"
    )


@pytest.mark.parametrize(
    ("interval", "spec", "message"),
    [
        (0, "17 3 * * *", "KILN_REAPER_INTERVAL_SECONDS must be at least 1"),
        (60, "17 3 * *", "must have five fields"),
        (60, "61 3 * * *", "is not a valid crontab"),
        (60, "17 banana * * *", "is not a valid crontab"),
    ],
)
def test_a_malformed_schedule_setting_is_a_configuration_error(interval, spec, message):
    from django.core.exceptions import ImproperlyConfigured

    from core.celery import beat_schedule

    with pytest.raises(ImproperlyConfigured, match=message):
        beat_schedule(reaper_interval=interval, cleanup_crontab=spec)
