"""The template catalog API: listing built-ins and archive uploads checked before writing."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from apps.templates.models import ProjectTemplate

pytestmark = pytest.mark.django_db

MANIFEST = b"slug: uploaded\nname: Uploaded\nversion: '1.0.0'\nparameters:\n  type: object\n  properties:\n    who: {type: string, default: world, description: Who is greeted.}\n"


def make_zip(entries: list[tuple[str, bytes, int]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def make_tar(members: list[tarfile.TarInfo], payloads: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for info in members:
            data = (payloads or {}).get(info.name)
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def regular(name: str, data: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    return info


def upload(client, payload: bytes, name: str = "t.zip"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post("/api/v1/templates/", {"archive": SimpleUploadedFile(name, payload)}, format="multipart")


def test_builtin_templates_are_listed(api, cast):
    from apps.templates.services.catalog import template_sync_builtin

    template_sync_builtin()
    body = api(cast.victor).get("/api/v1/templates/").json()
    slugs = {t["slug"] for t in body["results"]}
    assert {"python-package", "django-rest-service", "fastapi-service"} <= slugs
    one = api(cast.victor).get("/api/v1/templates/python-package/").json()
    assert set(one) >= {"slug", "name", "description", "version", "parameters"}
    assert one["parameters"]["type"] == "object"


def test_upload_zip_creates_template(api, cast, settings):
    payload = make_zip(
        [
            ("tpl/", b"", stat.S_IFDIR | 0o755),
            ("tpl/template.yaml", MANIFEST, stat.S_IFREG | 0o644),
            ("tpl/hello-{{ who }}.txt", b"Hello {{ who }}\n", stat.S_IFREG | 0o644),
            ("tpl/run.sh", b"#!/bin/sh\n", stat.S_IFREG | 0o755),
        ]
    )
    response = upload(api(cast.alice), payload)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["slug"] == "uploaded" and body["file_count"] == 2 and body["source"] == "upload"
    folder = Path(settings.KILN_TEMPLATES_DIR) / ProjectTemplate.objects.get(slug="uploaded").source_path
    assert os.stat(folder / "run.sh").st_mode & 0o111
    generated = (
        api(cast.dave)
        .post(
            f"/api/v1/projects/{cast.project.pk}/generated/", {"template": "uploaded", "dry_run": True}, format="json"
        )
        .json()
    )
    assert [f["path"] for f in generated["files"]] == ["hello-world.txt", "run.sh"]


def _symlink_zip() -> bytes:
    return make_zip([("template.yaml", MANIFEST, stat.S_IFREG | 0o644), ("link", b"/etc/passwd", stat.S_IFLNK | 0o777)])


def _tar_with(kind: bytes, name: str = "evil", linkname: str = "/etc/passwd") -> bytes:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return make_tar([regular("template.yaml", MANIFEST), info], {"template.yaml": MANIFEST})


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (
            make_zip(
                [("template.yaml", MANIFEST, stat.S_IFREG | 0o644), ("../escape.txt", b"x", stat.S_IFREG | 0o644)]
            ),
            "archive_unsafe_entry",
        ),
        (
            make_zip([("template.yaml", MANIFEST, stat.S_IFREG | 0o644), ("/abs.txt", b"x", stat.S_IFREG | 0o644)]),
            "archive_unsafe_entry",
        ),
        (
            make_zip(
                [
                    ("template.yaml", MANIFEST, stat.S_IFREG | 0o644),
                    (".git/hooks/post-checkout", b"x", stat.S_IFREG | 0o755),
                ]
            ),
            "archive_unsafe_entry",
        ),
        (_symlink_zip(), "archive_unsafe_entry"),
        (_tar_with(tarfile.SYMTYPE), "archive_unsafe_entry"),
        (_tar_with(tarfile.LNKTYPE, linkname="template.yaml"), "archive_unsafe_entry"),
        (_tar_with(tarfile.CHRTYPE), "archive_unsafe_entry"),
        (_tar_with(tarfile.FIFOTYPE), "archive_unsafe_entry"),
        (
            make_tar(
                [regular("template.yaml", MANIFEST), regular("a/../../x", b"x")],
                {"template.yaml": MANIFEST, "a/../../x": b"x"},
            ),
            "archive_unsafe_entry",
        ),
        (make_zip([("readme.txt", b"no manifest", stat.S_IFREG | 0o644)]), "template_invalid"),
        (
            make_zip([("template.yaml", b"name: x\nversion: 1\n_tasks: ['rm -rf /']\n", stat.S_IFREG | 0o644)]),
            "template_invalid",
        ),
        (
            make_zip(
                [
                    (
                        "template.yaml",
                        b"name: x\nversion: '1'\nparameters: {type: object, properties: {a: {type: nonsense}}}\n",
                        stat.S_IFREG | 0o644,
                    )
                ]
            ),
            "template_invalid",
        ),
        (b"this is not an archive", "archive_invalid"),
    ],
)
def test_unsafe_or_invalid_archives_are_rejected_and_nothing_kept(api, cast, settings, payload, code, sentinel):
    response = upload(api(cast.alice), payload)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == code
    assert not ProjectTemplate.objects.filter(source="upload").exists()
    storage = Path(settings.KILN_TEMPLATES_DIR)
    assert not storage.exists() or not any(storage.rglob("*"))


def test_archive_count_and_size_budget(api, cast, settings):
    settings.KILN_TEMPLATE_UPLOAD_MAX_FILES = 3
    many = make_zip(
        [("template.yaml", MANIFEST, stat.S_IFREG | 0o644)] + [(f"f{i}", b"x", stat.S_IFREG | 0o644) for i in range(5)]
    )
    assert upload(api(cast.alice), many).json()["code"] == "archive_too_large"
    settings.KILN_TEMPLATE_UPLOAD_MAX_FILES = 100
    settings.KILN_TEMPLATE_UPLOAD_MAX_UNCOMPRESSED = 1000
    big = make_zip([("template.yaml", MANIFEST, stat.S_IFREG | 0o644), ("big", b"0" * 5000, stat.S_IFREG | 0o644)])
    assert upload(api(cast.alice), big).json()["code"] == "archive_too_large"


def test_slug_clash_with_builtin_is_rejected(api, cast):
    from apps.templates.services.catalog import template_sync_builtin

    template_sync_builtin()
    manifest = MANIFEST.replace(b"slug: uploaded", b"slug: python-package")
    response = upload(api(cast.alice), make_zip([("template.yaml", manifest, stat.S_IFREG | 0o644)]))
    assert response.status_code == 400 and response.json()["code"] == "template_exists"


def test_anonymous_cannot_upload(api):
    assert upload(api(None), b"x").status_code == 401
