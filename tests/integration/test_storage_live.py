"""No shared folder: a web process and two Celery workers, each with its own empty
GENERATED_PROJECTS_DIR and KILN_DATA_DIR, on PostgreSQL + Redis + an S3 server (moto_server).

Two versions of a template are uploaded through the web, both generated on worker A (the default
queue) from the bucket's copies, the first exported to git and zip on worker B (`KILN_EXPORT_QUEUE`),
and files and the archive are downloaded through the web. Nothing reaches another process through a folder: only the database, the broker and
the bucket. The bytes are those the filesystem backend gives for the same template (rendered
in this test process first): every file, every archive member and the git tree.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.harness import ROOT, Worker, poll
from tests.s3.server import MotoServer, free_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

TERMINAL = {"completed", "failed", "cancelled"}
PASSWORD = "pw-for-tests"
PARAMETERS = {
    "type": "object",
    "properties": {"name": {"type": "string", "default": "shared-nothing", "description": "The project name."}},
}
FILES: dict[str, tuple[bytes, int]] = {
    "README.md": (b"# {{ name }}\n\nGenerated without a shared folder.\n", 0o644),
    "src/{{ name | replace('-', '_') }}/__init__.py": (b"NAME = {{ name | tojson }}\n", 0o644),
    "bin/run.sh": (b"#!/bin/sh\necho {{ name }}\n", 0o755),
    "assets/logo.bin": (bytes(range(256)) * 64, 0o644),
    "LICENSE": (b"Permission is hereby granted, free of charge...\n" * 20, 0o644),
}


# the second version: a changed file, a new one, an empty one, the others as in 1.0.0 (shared blobs)
FILES_V2: dict[str, tuple[bytes, int]] = {
    **FILES,
    "README.md": (b"# {{ name }}\n\nVersion 2, still without a shared folder.\n", 0o644),
    "CHANGES.md": (b"2.0.0: {{ name }} gained a changelog\n", 0o644),
    "src/{{ name | replace('-', '_') }}/py.typed": (b"", 0o644),
}
EXPECTED_V2 = {
    "README.md": b"# shared-nothing\n\nVersion 2, still without a shared folder.\n",
    "CHANGES.md": b"2.0.0: shared-nothing gained a changelog\n",
    "src/shared_nothing/py.typed": b"",
    "src/shared_nothing/__init__.py": b'NAME = "shared-nothing"\n',
    "assets/logo.bin": FILES["assets/logo.bin"][0],
}


def template_archive(slug: str, version: str = "1.0.0", files: dict[str, tuple[bytes, int]] = FILES) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        manifest = {"slug": slug, "name": slug, "version": version, "parameters": PARAMETERS}
        archive.writestr("template.yaml", yaml.safe_dump(manifest))
        for path, (data, mode) in files.items():
            info = zipfile.ZipInfo(path)
            info.external_attr = (0o100000 | mode) << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()


def zip_members(data: bytes) -> dict[str, tuple[bytes, int]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {i.filename: (archive.read(i), (i.external_attr >> 16) & 0o777) for i in archive.infolist()}


class WebProcess:
    """`manage.py runserver` in a process of its own (not the test's live-server thread)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        handle = open(log, "ab")  # noqa: SIM115 - the server writes to it for its whole life
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{self.port}"],
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"web process exited:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"web process not ready:\n{log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture
def reference(cast: Any, api: Any, run_jobs: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The filesystem backend's bytes for the template, rendered in this process (eager jobs).

    Its index rows are removed afterwards: the processes below share this database but store
    in the bucket, and must store every blob there themselves.
    """
    from django.core.files.uploadedfile import SimpleUploadedFile

    from apps.storage.models import Blob

    client = api(cast.alice)
    slug = f"fs-{uuid.uuid4().hex[:6]}"
    uploaded = client.post(
        "/api/v1/templates/", {"archive": SimpleUploadedFile("t.zip", template_archive(slug))}, format="multipart"
    )
    assert uploaded.status_code == 201, uploaded.content
    base = f"/api/v1/projects/{cast.project.pk}/generated/"
    with run_jobs():
        generated = client.post(base, {"template": slug}, format="json").json()
    files = client.get(f"{base}{generated['id']}/files/").json()["results"]
    contents = {f["path"]: b"".join(client.get(f"{base}{generated['id']}/files/{f['id']}/content/")) for f in files}
    with run_jobs():
        export = client.post(f"{base}{generated['id']}/exports/", {"provider": "zip"}, format="json").json()
    archive = b"".join(client.get(f"{base}{generated['id']}/exports/{export['id']}/download/"))
    remote = tmp_path / "fs-remote.git"
    git("init", "-q", "--bare", str(remote))
    with run_jobs():
        pushed = client.post(
            f"{base}{generated['id']}/exports/", {"provider": "git", "remote_url": f"file://{remote}"}, format="json"
        ).json()
    pushed = client.get(f"{base}{generated['id']}/exports/{pushed['id']}/").json()
    assert pushed["status"] == "completed", pushed
    yield {
        "contents": contents,
        "modes": {f["path"]: f["mode"] for f in files},
        "members": zip_members(archive),
        "tree": git("--git-dir", str(remote), "rev-parse", "main^{tree}"),
    }
    Blob.objects.all().delete()


@pytest.fixture
def shared_nothing(
    services: None, reference: dict[str, Any], s3_server: MotoServer, tmp_path: Path
) -> Iterator[dict[str, Any]]:
    from apps.storage.models import Blob

    Blob.objects.all().delete()  # the reference's index rows name blobs of this process's folder, not the bucket
    bucket = s3_server.create_bucket(f"kiln-live-{uuid.uuid4().hex[:10]}")
    generation_queue, export_queue = f"kiln-gen-{uuid.uuid4().hex[:6]}", f"kiln-exp-{uuid.uuid4().hex[:6]}"
    common = {
        **s3_server.environment(bucket),
        "KILN_EXPORT_QUEUE": export_queue,
        "KILN_ALLOW_FILE_REMOTES": "1",
    }
    roots = {name: tmp_path / name for name in ("web", "worker-a", "worker-b")}
    for root in roots.values():
        root.mkdir()
    workers = {
        # one pool process each: one generation on A, two exports one after the other on B
        "a": Worker(
            generation_queue,
            tmp_path / "worker-a.log",
            concurrency=1,
            extra_env={**common, "KILN_TEST_SCRATCH": str(roots["worker-a"])},
        ),
        "b": Worker(
            export_queue,
            tmp_path / "worker-b.log",
            concurrency=1,
            extra_env={**common, "KILN_TEST_SCRATCH": str(roots["worker-b"])},
        ),
    }
    web_env = {
        **Worker(generation_queue, tmp_path / "unused.log").env(),
        **common,
        "KILN_TEST_SCRATCH": str(roots["web"]),
        "KILN_CELERY_EAGER": "0",
        "KILN_CELERY_QUEUE": generation_queue,
    }
    # the three processes boot at once and stop at once (each takes seconds to start and to shut down)
    with ThreadPoolExecutor(max_workers=3) as pool:
        booting = [pool.submit(worker.start) for worker in workers.values()]
        booting.append(pool.submit(WebProcess, web_env, tmp_path / "web.log"))
        wait(booting)
    started = [future.result() for future in booting if future.exception() is None]
    try:
        for future in booting:
            future.result()  # a process that did not start fails the test here, after the others are stopped
        web = booting[-1].result()
        yield {"web": web, "workers": workers, "roots": roots, "bucket": bucket, "tmp": tmp_path}
    finally:
        with ThreadPoolExecutor(max_workers=3) as pool:
            list(pool.map(lambda process: process.stop(), started))


def test_no_shared_folder_upload_generate_export_download(
    shared_nothing: dict[str, Any], reference: dict[str, Any], cast: Any, s3_server: MotoServer
) -> None:
    web = shared_nothing["web"]
    with httpx.Client(base_url=web.url, timeout=30) as http:
        cast.alice.set_password(PASSWORD)
        cast.alice.save()
        token = http.post("/api/v1/auth/token/", json={"username": "alice", "password": PASSWORD}).json()["token"]
        http.headers["Authorization"] = f"Token {token}"
        # two versions uploaded before worker A renders either: each comes to it from the bucket
        for version, files_of_version in (("1.0.0", FILES), ("2.0.0", FILES_V2)):
            archive_bytes = template_archive("shared-nothing", version, files_of_version)
            uploaded = http.post("/api/v1/templates/", files={"archive": ("t.zip", archive_bytes)})
            assert uploaded.status_code == 201, uploaded.text
        assert uploaded.json()["latest_version"] == "2.0.0"
        base = f"/api/v1/projects/{cast.project.pk}/generated/"
        created = http.post(base, json={"template": "shared-nothing", "version": "1.0.0"}).json()
        latest = http.post(base, json={"template": "shared-nothing"}).json()
        generated, generated_v2 = (
            poll(lambda made=made: http.get(f"{base}{made['id']}/").json(), lambda d: d["status"] in TERMINAL, 90)
            for made in (created, latest)
        )
        assert generated["status"] == "completed" and generated["template_version"] == "1.0.0", generated
        assert generated_v2["status"] == "completed" and generated_v2["template_version"] == "2.0.0", generated_v2
        files_v2 = http.get(f"{base}{latest['id']}/files/").json()["results"]
        contents_v2 = {f["path"]: http.get(f"{base}{latest['id']}/files/{f['id']}/content/").content for f in files_v2}

        remote = shared_nothing["tmp"] / "remote.git"
        git("init", "-q", "--bare", str(remote))
        exports = {}
        for body in ({"provider": "zip"}, {"provider": "git", "remote_url": f"file://{remote}"}):
            made = http.post(f"{base}{created['id']}/exports/", json=body).json()
            exports[body["provider"]] = poll(
                lambda made=made: http.get(f"{base}{created['id']}/exports/{made['id']}/").json(),
                lambda d: d["status"] in TERMINAL,
                90,
            )
            assert exports[body["provider"]]["status"] == "completed", exports[body["provider"]]

        # downloads through the web process, which stores nothing and reads the bucket
        files = http.get(f"{base}{created['id']}/files/").json()["results"]
        contents = {f["path"]: http.get(f"{base}{created['id']}/files/{f['id']}/content/").content for f in files}
        archive = http.get(f"{base}{created['id']}/exports/{exports['zip']['id']}/download/")
        assert archive.status_code == 200 and archive.headers["content-type"] == "application/zip"

    # the filesystem backend's bytes, file by file, member by member, and the same git tree
    assert contents == reference["contents"]
    assert {f["path"]: f["mode"] for f in files} == reference["modes"]
    assert zip_members(archive.content) == reference["members"]
    assert git("--git-dir", str(remote), "rev-parse", "main^{tree}") == reference["tree"]
    # the second version, rendered on the same worker from its own blobs (the empty file included)
    assert {path: contents_v2[path] for path in EXPECTED_V2} == EXPECTED_V2
    assert set(contents_v2) == set(EXPECTED_V2) | {"bin/run.sh", "LICENSE"}

    # who did what: generation on worker A, both exports on worker B
    log_a = shared_nothing["workers"]["a"].log.read_text()
    log_b = shared_nothing["workers"]["b"].log.read_text()
    generate, export = "Task projects.start_project_generation[", "Task projects.execute_repository_export["

    def succeeded(log: str, task: str) -> int:
        return len(re.findall(re.escape(task) + r"[^\]]+\] succeeded", log))

    assert succeeded(log_a, generate) == 2 and export not in log_a
    assert succeeded(log_b, export) == 2 and generate not in log_b

    # worker A rendered both versions from the bucket's copies: its own folders never held an upload
    worker_a = shared_nothing["roots"]["worker-a"]
    assert len(list((worker_a / "template-cache" / "files").iterdir())) == 2, "one verified copy per version"
    assert not list((worker_a / "templates").rglob("template.yaml")) if (worker_a / "templates").exists() else True

    # no process kept a generated file, an archive or a template file in a folder of its own
    for name, root in shared_nothing["roots"].items():
        kept = [
            p.relative_to(root).as_posix()
            for p in root.rglob("*")
            if p.is_file() and "/blobs/" in f"/{p.relative_to(root).as_posix()}"
        ]
        assert kept == [], f"{name} stored blobs on its disk: {kept[:5]}"
        scratch = root / "generated-projects" / ".scratch"
        leftovers = (
            [p for p in scratch.iterdir() if p.name.startswith(("export-", "generate-"))] if scratch.exists() else []
        )
        assert leftovers == [], f"{name} left scratch folders: {leftovers}"
    objects = s3_server.client().list_objects_v2(Bucket=shared_nothing["bucket"]).get("Contents", [])
    keys = {o["Key"] for o in objects}
    stored = [f["sha256"] for f in files + files_v2 if f["size"] > 0]  # the empty file is never stored
    assert {f"blobs/{sha[:2]}/{sha}" for sha in stored} <= keys
    assert f"blobs/{exports['zip']['archive']['sha256'][:2]}/{exports['zip']['archive']['sha256']}" in keys
    assert os.environ.get("KILN_STORAGE_BACKEND", "filesystem") != "s3"  # this process stayed on the filesystem
