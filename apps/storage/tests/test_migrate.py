"""`manage.py storage_migrate --to s3`: a filesystem store copied into a bucket, every blob verified."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from apps.projects.models import ProjectFile
from apps.storage.blobs import ZLIB_MARKER, blob_key, blob_store
from tests.s3.fixtures import use_s3
from tests.s3.server import MotoServer

pytestmark = pytest.mark.django_db


def migrate(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("storage_migrate", "--to", "s3", "--json", *args, stdout=out)
    return dict(json.loads(out.getvalue()))


@pytest.fixture
def filesystem_project(cast: Any, make_template: Any, api: Any, run_jobs: Any) -> dict[str, Any]:
    """A generation and its zip on the filesystem store, as an existing deployment has them."""
    template = make_template(
        {
            "README.md": "# {{ name }}\n",
            "bin/run.sh": ("#!/bin/sh\necho hi\n", 0o755),
            "logo.bin": b"\x00\x01\x02",
            "src/settings.py": "DEBUG = False\n" * 40,  # stored compressed
        },
        parameters={"type": "object", "properties": {"name": {"type": "string", "default": "moved"}}},
    )
    base = f"/api/v1/projects/{cast.project.pk}/generated/"
    client = api(cast.alice)
    with run_jobs():
        generated = client.post(base, {"template": template.slug}, format="json").json()
    with run_jobs():
        export = client.post(f"{base}{generated['id']}/exports/", {"provider": "zip"}, format="json").json()
    files = client.get(f"{base}{generated['id']}/files/").json()["results"]
    contents = {f["path"]: b"".join(client.get(f"{base}{generated['id']}/files/{f['id']}/content/")) for f in files}
    archive = b"".join(client.get(f"{base}{generated['id']}/exports/{export['id']}/download/"))
    return {
        "base": base,
        "generated": generated["id"],
        "export": export["id"],
        "contents": contents,
        "archive": archive,
    }


def _configure_target(settings: Any, server: MotoServer, bucket: str) -> None:
    """The operator's first step: the bucket's settings, while KILN_STORAGE_BACKEND is still filesystem."""
    for name, value in server.settings(bucket).items():
        if name != "KILN_STORAGE_BACKEND":
            setattr(settings, name, value)


def test_migrate_copies_and_verifies_and_kiln_serves_the_same_bytes_from_s3(
    settings: Any, s3_server: MotoServer, s3_bucket: str, filesystem_project: dict[str, Any], cast: Any, api: Any
) -> None:
    _configure_target(settings, s3_server, s3_bucket)
    stored = {sha for sha in ProjectFile.objects.values_list("sha256", flat=True)}
    report = migrate()
    assert report["failed"] == []
    assert report["blobs"] == len(stored) + 1  # the files and the archive
    assert report["copied"] == report["verified"] == report["blobs"]
    keys = {o["Key"] for o in s3_server.client().list_objects_v2(Bucket=s3_bucket).get("Contents", [])}
    assert {blob_key(sha) for sha in stored} <= keys
    # copied as stored: a compressed blob stays compressed, byte for byte
    compressed = ProjectFile.objects.get(path="src/settings.py").sha256
    on_disk = Path(blob_store().backend.path(blob_key(compressed))).read_bytes()  # type: ignore[attr-defined]
    in_bucket = s3_server.client().get_object(Bucket=s3_bucket, Key=blob_key(compressed))["Body"].read()
    assert in_bucket == on_disk and on_disk.startswith(ZLIB_MARKER)

    # switched over: the same API answers with the same bytes, from the bucket
    use_s3(settings, s3_server, s3_bucket)
    client = api(cast.alice)
    base, generated = filesystem_project["base"], filesystem_project["generated"]
    for item in client.get(f"{base}{generated}/files/").json()["results"]:
        body = b"".join(client.get(f"{base}{generated}/files/{item['id']}/content/"))
        assert body == filesystem_project["contents"][item["path"]]
    archive = client.get(f"{base}{generated}/exports/{filesystem_project['export']}/download/")
    assert b"".join(archive) == filesystem_project["archive"]

    # a second run copies nothing; a blob damaged in the bucket is found and copied again
    settings.KILN_STORAGE_BACKEND = "filesystem"
    settings.STORAGES = {**settings.STORAGES, "blobs": {"BACKEND": settings.KILN_STORAGE_BACKENDS["filesystem"]}}
    again = migrate()
    assert (again["copied"], again["already_there"]) == (0, report["blobs"])
    damaged = next(iter(stored))
    s3_server.client().put_object(Bucket=s3_bucket, Key=blob_key(damaged), Body=b"bit rot")
    repaired = migrate()
    assert (repaired["copied"], repaired["failed"]) == (1, [])


def test_migrate_fails_loudly_on_a_blob_damaged_in_the_source(
    settings: Any, s3_server: MotoServer, s3_bucket: str, filesystem_project: dict[str, Any]
) -> None:
    _configure_target(settings, s3_server, s3_bucket)
    sha = ProjectFile.objects.get(path="README.md").sha256
    Path(blob_store().backend.path(blob_key(sha))).write_bytes(b"# damaged on disk\n")  # type: ignore[attr-defined]
    with pytest.raises(CommandError, match="could not be copied"):
        call_command("storage_migrate", "--to", "s3", stdout=StringIO())
    keys = {o["Key"] for o in s3_server.client().list_objects_v2(Bucket=s3_bucket).get("Contents", [])}
    assert blob_key(sha) not in keys  # never a wrong file in the target


def test_migrate_refuses_an_unusable_target(settings: Any) -> None:
    settings.AWS_STORAGE_BUCKET_NAME = "kiln-unreachable"
    settings.AWS_S3_ENDPOINT_URL = "http://127.0.0.1:9"
    with pytest.raises(CommandError, match="not usable"):
        call_command("storage_migrate", "--to", "s3", stdout=StringIO())
