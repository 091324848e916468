"""Cookiecutter and Copier templates through the catalog and the API: upload, format, versions,
parameters as JSON Schema, untrusted code refused, trust (staff, audited), generation."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.formats.harness import CORPUS

pytestmark = pytest.mark.django_db


def _zip(folder: Path, top: str = "") -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo((f"{top}/" if top else "") + path.relative_to(folder).as_posix())
                info.external_attr = (path.stat().st_mode & 0o777 | 0o100000) << 16
                archive.writestr(info, path.read_bytes())
    buffer.seek(0)
    buffer.name = "template.zip"
    return buffer


def _upload(client: Any, folder: Path, **fields: str) -> Any:
    return client.post("/api/v1/templates/", {"archive": _zip(folder, top="t"), **fields}, format="multipart")


def test_uploads_register_generate_and_trust(cast: Any, api: Any, run_jobs: Any) -> None:
    from django.contrib.auth import get_user_model

    from apps.projects.models import AuditEvent, GeneratedProject

    alice = api(cast.alice)
    # no names: a Cookiecutter template does not name itself
    refused = _upload(alice, CORPUS / "cookiecutter" / "choices")
    assert refused.status_code == 400, refused.content
    assert set(refused.json()["extra"]["fields"]) == {"slug", "version"}

    created = _upload(alice, CORPUS / "cookiecutter" / "choices", slug="cc-choices", version="1.0.0")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["format"] == "cookiecutter"
    assert set(body["parameters"]["properties"]) == {"author", "slug", "license", "python", "level"}
    assert body["parameters"]["x-order"] == ["author", "slug", "license", "python", "level"]  # jsonb lost the order
    assert body["parameters"]["properties"]["license"]["default"] == "MIT"

    copier = _upload(alice, CORPUS / "copier" / "questions", slug="copier-questions", version="2.0.0")
    assert copier.status_code == 201, copier.content
    assert copier.json()["format"] == "copier"
    assert copier.json()["parameters"]["properties"]["db_name"]["x-when"] == "{{ use_db }}"

    hooks = _upload(alice, CORPUS / "cookiecutter" / "hooks", slug="cc-hooks", version="0.1.0")
    assert hooks.status_code == 201, hooks.content
    listed = alice.get("/api/v1/templates/cc-hooks/versions/").json()["results"]
    assert [(v["version"], v["format"], v["uses_code"], v["is_trusted"]) for v in listed] == [
        ("0.1.0", "cookiecutter", ["hooks/pre_gen_project.py", "hooks/post_gen_project.py"], False)
    ]

    # generation through the API: the tool's rules for answers, field errors
    url = f"/api/v1/projects/{cast.project.pk}/generated/"
    bad = alice.post(url, {"template": "cc-choices", "parameters": {"license": "GPL"}}, format="json")
    assert bad.status_code == 400 and "parameters.license" in bad.json()["extra"]["fields"]
    with run_jobs():
        started = alice.post(url, {"template": "cc-choices", "parameters": {"python": "3.10"}}, format="json")
    assert started.status_code == 202, started.content
    done = GeneratedProject.objects.get(pk=started.json()["id"])
    assert done.status == "completed", done.error
    assert done.template_version == "1.0.0" and done.file_count > 0

    # code: refused until a staff user trusts the version; the trust is audited
    untrusted = alice.post(url, {"template": "cc-hooks", "parameters": {}}, format="json")
    assert untrusted.status_code == 400
    assert untrusted.json()["code"] == "template_untrusted"
    assert untrusted.json()["extra"]["uses_code"] == ["hooks/pre_gen_project.py", "hooks/post_gen_project.py"]
    assert alice.post("/api/v1/templates/cc-hooks/versions/0.1.0/trust/").status_code == 403
    staff = get_user_model().objects.create_user("staffer", is_staff=True)
    trusted = api(staff).post("/api/v1/templates/cc-hooks/versions/0.1.0/trust/")
    assert trusted.status_code == 200, trusted.content
    assert trusted.json()["is_trusted"] is True
    event = AuditEvent.objects.get(action="template_version.trusted")
    assert event.detail["uses_code"] == ["hooks/pre_gen_project.py", "hooks/post_gen_project.py"]
    assert api(staff).post("/api/v1/templates/cc-hooks/versions/9.9.9/trust/").status_code == 404
    from apps.templates.services import isolation

    if isolation.available().ok:  # the trusted hooks run, isolated (CI has bubblewrap)
        dry = alice.post(url, {"template": "cc-hooks", "parameters": {}, "dry_run": True}, format="json")
        assert dry.status_code == 200, dry.content
        assert {"MANIFEST.txt", "scripts/setup.sh"} <= {entry["path"] for entry in dry.json()["files"]}  # hook-made
