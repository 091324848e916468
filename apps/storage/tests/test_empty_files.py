"""Empty files (0 bytes, sha256 e3b0c442…) read back everywhere: file contents, zip, tar.gz, git,
a copy to a folder, and template updates, on both backends.

The empty blob's content is its name, so the store never asks the storage for it: a store whose
index lists it while the storage does not hold it (a bucket or folder reset, a switch of
backend, a lifecycle rule) used to make every generation with an `__init__.py` fail on read-back
with blob_missing.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.storage.blobs import EMPTY_SHA256, blob_key, blob_store, blob_writes
from apps.storage.models import Blob

pytestmark = pytest.mark.django_db

GIT_EMPTY_BLOB = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git hash-object /dev/null


def _archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("template.yaml", yaml.safe_dump({"slug": "hollow", "name": "Hollow", "version": "1.0.0"}))
        archive.writestr("pkg/__init__.py", "")
        archive.writestr("README.md", "# {{ 'hollow' | upper }}\n")
        archive.writestr("rendered-empty.txt", "{{ '' }}")
    return buffer.getvalue()


def git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()


def test_empty_files_read_back_everywhere(
    any_storage: str, api: Any, cast: Any, run_jobs: Any, settings: Any, tmp_path: Path
) -> None:
    assert hashlib.sha256(b"").hexdigest() == EMPTY_SHA256
    # the index says the empty blob is stored; the storage has never seen it (reset, another backend)
    Blob.objects.create(sha256=EMPTY_SHA256, size=0)
    assert not blob_store().backend.blob_size(blob_key(EMPTY_SHA256))
    settings.KILN_ALLOW_FILE_REMOTES = True
    client = api(cast.alice)
    answer = client.post("/api/v1/templates/", {"archive": SimpleUploadedFile("t.zip", _archive())}, format="multipart")
    assert answer.status_code == 201, answer.content
    # another machine renders it from the template's blobs (the empty __init__.py among them)
    shutil.rmtree(settings.KILN_TEMPLATES_DIR)
    from apps.projects.services.project_generator import clear_template_cache

    clear_template_cache()
    base = f"/api/v1/projects/{cast.project.pk}/generated/"
    with run_jobs():
        created = client.post(base, {"template": "hollow"}, format="json").json()
    gen = f"{base}{created['id']}/"
    detail = client.get(gen).json()
    assert detail["status"] == "completed", detail["error"]
    files = {f["path"]: f for f in client.get(f"{gen}files/").json()["results"]}
    empty = ("pkg/__init__.py", "rendered-empty.txt")
    for path in empty:
        assert (files[path]["size"], files[path]["sha256"]) == (0, EMPTY_SHA256)
        answer = client.get(f"{gen}files/{files[path]['id']}/content/")
        assert answer.status_code == 200, answer.content
        assert answer["Content-Length"] == "0" and b"".join(answer.streaming_content) == b""

    archives = {}
    for provider in ("zip", "tar.gz"):
        with run_jobs():
            export = client.post(f"{gen}exports/", {"provider": provider}, format="json").json()
        done = client.get(f"{gen}exports/{export['id']}/").json()
        assert done["status"] == "completed", done
        download = client.get(f"{gen}exports/{export['id']}/download/")
        archives[provider] = b"".join(download.streaming_content)
    with zipfile.ZipFile(io.BytesIO(archives["zip"])) as archive:
        members = {i.filename.split("/", 1)[1]: archive.read(i) for i in archive.infolist() if not i.is_dir()}
    assert {p: members[p] for p in empty} == {p: b"" for p in empty}
    with tarfile.open(fileobj=io.BytesIO(archives["tar.gz"])) as archive:
        sizes = {m.name.split("/", 1)[1]: m.size for m in archive.getmembers() if m.isfile()}
    assert {p: sizes[p] for p in empty} == {p: 0 for p in empty}

    remote = tmp_path / "r.git"
    git("init", "-q", "--bare", str(remote))
    with run_jobs():
        export = client.post(f"{gen}exports/", {"provider": "git", "remote_url": f"file://{remote}"}, format="json")
    done = client.get(f"{gen}exports/{export.json()['id']}/").json()
    assert done["status"] == "completed", done
    for path in empty:
        assert git("--git-dir", str(remote), "rev-parse", f"main:{path}") == GIT_EMPTY_BLOB

    from apps.projects.models import GeneratedProject
    from apps.projects.services.generation import generated_project_copy_to

    copied = tmp_path / "copy"
    assert generated_project_copy_to(generated=GeneratedProject.objects.get(pk=created["id"]), destination=copied) == 3
    assert [(copied / p).read_bytes() for p in empty] == [b"", b""]


def test_the_empty_blob_needs_no_storage(any_storage: str) -> None:
    store = blob_store()
    with blob_writes(), store.writer() as writer:
        ref = writer.add(b"")
    assert (ref.sha256, ref.size, writer.stored) == (EMPTY_SHA256, 0, 0)
    assert store.backend.blob_size(blob_key(EMPTY_SHA256)) is None  # nothing written
    assert store.read(EMPTY_SHA256, size=0) == b"" and store.exists(EMPTY_SHA256)
    assert store.download_url(EMPTY_SHA256, filename="x", content_type="text/plain", ttl=60) is None  # streamed
    from apps.storage.blobs import BlobCorrupt

    with pytest.raises(BlobCorrupt):  # a row that records another size for it is wrong, not empty
        store.read(EMPTY_SHA256, size=3)


def test_template_update_to_and_from_empty_files(cast: Any, settings: Any, tmp_path: Path) -> None:
    from apps.updates.services.updates import update_diff, update_execute, update_start
    from apps.updates.tests.conftest import export_to, generate, publish

    publish(settings, "upd", "1.0.0", {"a.py": "", "b.py": "B = 1\n", "keep.py": ""})
    generated = generate(cast.project, cast.alice, "upd")
    bare = tmp_path / "upd.git"
    git("init", "-q", "--bare", "-b", "main", str(bare))
    export_to(generated, cast.alice, {"provider": "git", "remote_url": f"file://{bare}"})
    publish(settings, "upd", "2.0.0", {"a.py": "A = 1\n", "b.py": "", "keep.py": "", "new.py": ""})
    update, _ = update_start(generated=generated, data={"mode": "branch"}, actor=cast.alice, enqueue=False)
    done = update_execute(update_id=update.pk, owner="test:1:update")
    assert done.status == "completed", done.error
    branch = "kiln/update/upd-2.0.0"
    assert git("--git-dir", str(bare), "show", f"{branch}:a.py") == "A = 1"
    for path in ("b.py", "keep.py", "new.py"):
        assert git("--git-dir", str(bare), "rev-parse", f"{branch}:{path}") == GIT_EMPTY_BLOB
    assert b"+A = 1" in update_diff(done)
