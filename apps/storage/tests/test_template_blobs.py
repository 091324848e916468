"""Uploaded templates are kept in the blob store: a machine without KILN_TEMPLATES_DIR still renders them."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.storage.sweep import blobs_sweep
from apps.templates.models import TemplateFile

pytestmark = pytest.mark.django_db


def _archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("template.yaml", yaml.safe_dump({"slug": "kept", "name": "Kept", "version": "1.0.0"}))
        archive.writestr("README.md", "# {{ 'kept' | upper }}\n")
        info = zipfile.ZipInfo("bin/run.sh")
        info.external_attr = (0o100755) << 16
        archive.writestr(info, "#!/bin/sh\necho kept\n")
    return buffer.getvalue()


def test_an_uploaded_template_renders_on_a_machine_without_its_folder(
    any_storage: str, api: Any, cast: Any, run_jobs: Any, settings: Any
) -> None:
    client = api(cast.alice)
    answer = client.post("/api/v1/templates/", {"archive": SimpleUploadedFile("t.zip", _archive())}, format="multipart")
    assert answer.status_code == 201, answer.content
    assert sorted(TemplateFile.objects.values_list("path", flat=True)) == ["README.md", "bin/run.sh", "template.yaml"]
    assert blobs_sweep(dry_run=False).blobs_deleted == 0  # the template's blobs are referenced

    # another machine: neither the uploaded folder nor a cache
    shutil.rmtree(settings.KILN_TEMPLATES_DIR)
    from apps.projects.services.project_generator import clear_template_cache

    clear_template_cache()
    base = f"/api/v1/projects/{cast.project.pk}/generated/"
    with run_jobs():
        created = client.post(base, {"template": "kept"}, format="json").json()
    detail = client.get(f"{base}{created['id']}/").json()
    assert detail["status"] == "completed", detail["error"]
    files = {f["path"]: f for f in client.get(f"{base}{created['id']}/files/").json()["results"]}
    readme = client.get(f"{base}{created['id']}/files/{files['README.md']['id']}/content/")
    assert b"".join(readme.streaming_content) == b"# KEPT\n"
    assert files["bin/run.sh"]["mode"] == 0o755
    cached = Path(settings.KILN_TEMPLATE_CACHE_DIR) / "files"
    assert [p.name for p in cached.iterdir()] == [TemplateFile.objects.first().checksum]


def test_a_blueprint_template_renders_on_a_machine_without_its_folder(
    any_storage: str, api: Any, cast: Any, run_jobs: Any, settings: Any
) -> None:
    from apps.blueprints.tests.test_api import seed

    client = api(cast.alice)
    body = {"blueprint": {"slug": "kumo", "name": "Kumo", "document": seed("000")}}
    registered = client.post("/api/v1/templates/", body, format="json")
    assert registered.status_code == 201, registered.content
    assert TemplateFile.objects.filter(checksum=registered.json()["checksum"]).count() > 1  # kept as blobs

    shutil.rmtree(settings.KILN_TEMPLATES_DIR)  # a worker on another machine
    from apps.projects.services.project_generator import clear_template_cache

    clear_template_cache()
    base = f"/api/v1/projects/{cast.project.pk}/generated/"
    with run_jobs():
        created = client.post(base, {"template": "kumo"}, format="json").json()
    detail = client.get(f"{base}{created['id']}/").json()
    assert detail["status"] == "completed", detail["error"]
    assert detail["file_count"] > 5
