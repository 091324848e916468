"""DELETE /templates/{slug}/: the uploader or staff; built-ins refused; a template generations were
made from is refused (409 template_in_use) unless deactivated; busy templates wait (409)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from apps.projects.models import AuditEvent
from apps.projects.services.generation import generated_project_execute, generated_project_start
from apps.templates.models import ProjectTemplate, TemplateFile
from apps.templates.tests.test_api_templates import make_zip, upload

pytestmark = pytest.mark.django_db


def archive(slug: str, version: str = "1.0.0") -> bytes:
    manifest = (
        f"slug: {slug}\nname: {slug}\nversion: '{version}'\nparameters:\n  type: object\n  properties:\n"
        "    who: {type: string, default: world, description: Who is greeted.}\n"
    ).encode()
    hello = f"hello {{{{ who }}}} {slug} {version}\n".encode()
    return make_zip([("template.yaml", manifest, 0o100644), ("hello.txt", hello, 0o100644)])


def test_the_uploader_deletes_an_unused_template_and_only_deactivates_a_used_one(
    api, cast, django_user_model, run_jobs
):
    alice = api(cast.alice)
    assert upload(alice, archive("gone")).status_code == 201
    gone = ProjectTemplate.objects.get(slug="gone")
    folder = Path(settings.KILN_TEMPLATES_DIR) / "gone"
    assert folder.is_dir() and TemplateFile.objects.filter(checksum=gone.checksum).exists()

    assert api(None).delete("/api/v1/templates/gone/").status_code == 401
    denied = api(cast.mia).delete("/api/v1/templates/gone/")
    assert denied.status_code == 403 and denied.json()["code"] == "permission_denied"
    wrong = alice.delete("/api/v1/templates/gone/?deactivate=maybe")
    assert wrong.status_code == 400 and "deactivate" in wrong.json()["extra"]["fields"]

    with run_jobs():  # the folder and the blobs go after the commit
        deleted = alice.delete("/api/v1/templates/gone/")
    assert deleted.status_code == 204, deleted.content
    assert not ProjectTemplate.objects.filter(slug="gone").exists()
    assert not TemplateFile.objects.filter(checksum=gone.checksum).exists() and not folder.exists()
    assert AuditEvent.objects.get(action="template.deleted").detail["checksum"] == gone.checksum
    assert alice.get("/api/v1/templates/gone/").status_code == 404

    # a template a generation was made from stays, deactivated on request
    assert upload(alice, archive("used")).status_code == 201
    row = generated_project_start(
        project=cast.project, template_slug="used", parameters={}, actor=cast.alice, enqueue=False
    )
    busy = alice.delete("/api/v1/templates/used/?deactivate=true")
    assert busy.status_code == 409 and busy.json()["code"] == "template_busy"  # the generation is pending
    generated = generated_project_execute(generated_id=row.pk, owner="t:1:used").generated
    assert generated.status == "completed", generated.error
    refused = alice.delete("/api/v1/templates/used/")
    assert refused.status_code == 409
    body = refused.json()
    assert (
        body["code"] == "template_in_use" and body["extra"]["generations"] == 1 and "deactivate=true" in body["message"]
    )
    assert alice.delete("/api/v1/templates/used/?deactivate=true").status_code == 204
    assert alice.get("/api/v1/templates/used/").status_code == 404
    assert "used" not in {t["slug"] for t in alice.get("/api/v1/templates/").json()["results"]}
    started = alice.post(f"/api/v1/projects/{cast.project.pk}/generated/", {"template": "used"}, format="json")
    assert started.status_code in (400, 404) and started.json()["code"] == "template_not_found"
    kept = alice.get(f"/api/v1/projects/{cast.project.pk}/generated/{generated.pk}/")
    assert kept.status_code == 200 and kept.json()["status"] == "completed"
    assert AuditEvent.objects.filter(action="template.deactivated").count() == 1
    assert upload(alice, archive("used")).status_code == 201  # its uploader brings it back
    assert ProjectTemplate.objects.get(slug="used").is_active

    # built-ins ship with Kiln; staff delete anyone's upload
    from apps.templates.services.catalog import template_sync_builtin

    template_sync_builtin()
    staff = django_user_model.objects.create_user("ops", "ops@example.test", "x", is_staff=True)
    builtin = api(staff).delete("/api/v1/templates/python-package/")
    assert builtin.status_code == 400 and builtin.json()["code"] == "template_builtin"
    assert upload(alice, archive("spare")).status_code == 201
    assert api(staff).delete("/api/v1/templates/spare/").status_code == 204


def test_the_template_page_deletes_for_its_uploader(api, cast, run_jobs):
    from django.test import Client

    assert upload(api(cast.alice), archive("paged")).status_code == 201
    alice, mia = Client(), Client()
    alice.force_login(cast.alice)
    mia.force_login(cast.mia)
    assert 'action="/templates/paged/delete/"' in alice.get("/templates/paged/").content.decode()
    assert 'action="/templates/paged/delete/"' not in mia.get("/templates/paged/").content.decode()
    refused = mia.post("/templates/paged/delete/", follow=True).content.decode()
    assert "Only the person who uploaded the template, or staff, can delete it." in refused
    with run_jobs():
        done = alice.post("/templates/paged/delete/", follow=True)
    assert "Template paged deleted." in done.content.decode() and done.redirect_chain[-1][0] == "/templates/"
    assert not ProjectTemplate.objects.filter(slug="paged").exists()


def test_a_version_is_deleted_unless_generations_pin_it_or_it_is_the_last(api, cast, run_jobs):
    from apps.templates.models import TemplateVersion

    alice = api(cast.alice)
    for version in ("1.0.0", "2.0.0"):
        assert upload(alice, archive("vers", version)).status_code == 201
    row = generated_project_start(
        project=cast.project, template_slug="vers", parameters={}, actor=cast.alice, enqueue=False, version="1.0.0"
    )
    generated_project_execute(generated_id=row.pk, owner="t:1:vers")
    v2 = TemplateVersion.objects.get(template__slug="vers", version="2.0.0")
    assert ProjectTemplate.objects.get(slug="vers").version == "2.0.0"

    assert api(None).delete("/api/v1/templates/vers/versions/2.0.0/").status_code == 401
    assert api(cast.mia).delete("/api/v1/templates/vers/versions/2.0.0/").status_code == 403
    pinned = alice.delete("/api/v1/templates/vers/versions/1.0.0/")
    assert pinned.status_code == 409 and pinned.json()["code"] == "version_in_use"
    assert pinned.json()["extra"] == {"template": "vers", "version": "1.0.0", "generations": 1}
    assert alice.delete("/api/v1/templates/vers/versions/9.9.9/").status_code == 404
    with run_jobs():
        assert alice.delete("/api/v1/templates/vers/versions/2.0.0/").status_code == 204
    assert not TemplateVersion.objects.filter(pk=v2.pk).exists()
    assert not TemplateFile.objects.filter(checksum=v2.checksum).exists()
    assert not (Path(settings.KILN_TEMPLATES_DIR) / v2.source_path).exists()
    template = alice.get("/api/v1/templates/vers/").json()
    assert (template["version"], template["latest_version"]) == ("1.0.0", "1.0.0")
    assert [v["version"] for v in alice.get("/api/v1/templates/vers/versions/").json()["results"]] == ["1.0.0"]
    assert AuditEvent.objects.get(action="template.version_deleted").detail["version"] == "2.0.0"

    # the template page: its uploader deletes a version there (the service's refusals shown)
    from django.test import Client

    page = Client()
    page.force_login(cast.alice)
    assert upload(alice, archive("vers", "3.0.0")).status_code == 201
    html = page.get("/templates/vers/").content.decode()
    assert 'action="/templates/vers/versions/3.0.0/delete/"' in html
    refused = page.post("/templates/vers/versions/1.0.0/delete/", follow=True).content.decode()
    assert "has 1 generation(s) made from it" in refused
    with run_jobs():
        done = page.post("/templates/vers/versions/3.0.0/delete/", follow=True).content.decode()
    assert "Version 3.0.0 of vers deleted." in done and not TemplateVersion.objects.filter(version="3.0.0").exists()

    assert upload(alice, archive("solo")).status_code == 201
    last = alice.delete("/api/v1/templates/solo/versions/1.0.0/")
    assert last.status_code == 409 and last.json()["code"] == "version_last"
