"""The zip and tar.gz writers: valid for the standard tools, deterministic, ZIP64 fallback, failures end the job."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import struct
import subprocess
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from apps.projects.models import ProjectFile
from apps.projects.selectors import generated_project_name
from apps.projects.services.export_providers import archives
from apps.projects.services.exports import repository_export_execute, repository_export_start
from apps.projects.services.generation import generated_project_execute, generated_project_start
from tests.trees import materialised, stored_archive

pytestmark = pytest.mark.django_db

# Enough files for several compression batches and windows, names ASCII and not, modes, sizes 0 .. 300 KB.
FILES: dict[str, str | bytes | tuple[str, int]] = {
    **{f"pkg/m{i:03d}.py": f"# {{{{ name }}}} module {i}\n" + "x = 1\n" * (i % 40) for i in range(300)},
    "empty.txt": "",
    "big.bin": bytes(range(256)) * 1200,
    "docs/café/naïve résumé.md": "# unicode {{ name }}\n",
    "bin/run.sh": ("#!/bin/sh\necho {{ name }}\n", 0o755),
}


@pytest.fixture
def generated(cast, make_template):
    template = make_template(
        FILES, parameters={"type": "object", "properties": {"name": {"type": "string", "default": "demo"}}}
    )
    row = generated_project_start(
        project=cast.project, template_slug=template.slug, parameters={}, actor=cast.alice, enqueue=False
    )
    generated = generated_project_execute(generated_id=row.pk, owner="t:1:x").generated
    assert generated.status == "completed", generated.error
    return generated


def export(cast, generated, provider):
    row = repository_export_start(generated=generated, data={"provider": provider}, actor=cast.alice, enqueue=False)
    return repository_export_execute(export_id=row.pk, owner=f"t:1:{row.pk}")[0]


def recorded(generated):
    """Archive member name → (sha256, mode): every file under the one top folder named after the project."""
    top = generated_project_name(generated)
    return {f"{top}/{f.path}": (f.sha256, f.mode) for f in ProjectFile.objects.filter(generated=generated)}


def stamp_of(generated) -> int:
    return int(generated.finished_at.timestamp())


def test_zip_is_valid_for_unzip_and_zipfile_and_matches_the_recorded_files(cast, generated, tmp_path):
    done = export(cast, generated, "zip")
    assert done.status == "completed", done.error
    path = stored_archive(done)
    data = path.read_bytes()
    assert done.archive_sha256 == hashlib.sha256(data).hexdigest() and done.archive_size == len(data)
    if shutil.which("unzip"):
        tested = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True)
        assert tested.returncode == 0 and "No errors detected" in tested.stdout, tested.stdout + tested.stderr
        out = tmp_path / "unzipped"
        subprocess.run(["unzip", "-q", str(path), "-d", str(out)], check=True)
        top = out / generated_project_name(generated)
        assert os.access(top / "bin/run.sh", os.X_OK)
        assert (top / "docs/café/naïve résumé.md").read_text() == "# unicode demo\n"
    expected = recorded(generated)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        infos = archive.infolist()
        assert [i.filename for i in infos] == sorted(expected)
        local_time = time.gmtime(stamp_of(generated))[:5]
        for info in infos:
            content = archive.read(info)
            assert (hashlib.sha256(content).hexdigest(), (info.external_attr >> 16) & 0o777) == expected[info.filename]
            assert info.compress_type == zipfile.ZIP_DEFLATED and info.create_system == 3
            assert info.date_time[:5] == local_time
            assert (info.external_attr >> 16) & 0o170000 == 0o100000  # regular files only
            assert bool(info.flag_bits & 0x800) == (not info.filename.isascii())


def test_zip_and_tar_gz_are_byte_identical_when_exported_again(cast, generated):
    for provider in ("zip", "tar.gz"):
        first, second = export(cast, generated, provider), export(cast, generated, provider)
        assert first.archive_sha256 == second.archive_sha256 != ""


def test_tar_gz_is_valid_for_gzip_and_tar_with_a_fixed_header(cast, generated, tmp_path):
    done = export(cast, generated, "tar.gz")
    assert done.status == "completed", done.error
    path = stored_archive(done)
    data = path.read_bytes()
    assert done.archive_sha256 == hashlib.sha256(data).hexdigest()
    assert data[:4] == b"\x1f\x8b\x08\x00"
    assert struct.unpack("<I", data[4:8])[0] == stamp_of(generated)  # gzip mtime: the generation's finish time
    assert data[9] == 255
    if shutil.which("gzip"):
        assert subprocess.run(["gzip", "-t", str(path)], capture_output=True).returncode == 0
    if shutil.which("tar"):
        out = tmp_path / "untarred"
        out.mkdir()
        subprocess.run(["tar", "xzf", str(path), "-C", str(out)], check=True)
        assert (out / generated_project_name(generated) / "big.bin").read_bytes() == bytes(range(256)) * 1200
    raw = gzip.decompress(data)
    assert struct.unpack("<I", data[-4:])[0] == len(raw) % 2**32
    expected = recorded(generated)
    with tarfile.open(fileobj=io.BytesIO(raw)) as archive:
        members = archive.getmembers()
        assert [m.name for m in members] == sorted(expected)
        for member in members:
            content = archive.extractfile(member).read()
            assert (hashlib.sha256(content).hexdigest(), member.mode) == expected[member.name]
            assert member.mtime == stamp_of(generated) and member.uid == member.gid == 0


def test_archives_past_plain_zip_limits_go_through_zipfile_zip64(cast, generated, monkeypatch):
    monkeypatch.setattr(archives, "ZIP64_FILES", 10)  # as if the generation had 65,535 files
    done = export(cast, generated, "zip")
    assert done.status == "completed", done.error
    with zipfile.ZipFile(stored_archive(done)) as archive:
        assert archive.testzip() is None
        assert sorted(archive.namelist()) == sorted(recorded(generated))
        assert (archive.getinfo(f"{generated_project_name(generated)}/bin/run.sh").external_attr >> 16) & 0o777 == 0o755


@pytest.mark.django_db(transaction=True)  # the damaged blob is dropped from the index by a reader thread
@pytest.mark.parametrize("provider", ["zip", "tar.gz"])
def test_a_file_damaged_in_the_storage_fails_the_export_cleanly(cast, generated, provider):
    from apps.storage.blobs import blob_key, blob_store
    from apps.storage.models import Blob

    row = ProjectFile.objects.get(generated=generated, path="pkg/m150.py")
    Path(blob_store().backend.path(blob_key(row.sha256))).write_text("changed behind Kiln's back\n" * 3)
    archives_before = Blob.objects.count()
    done = export(cast, generated, provider)
    assert done.status == "failed"
    assert done.error["code"] == "blob_corrupt"
    assert done.archive_sha256 == "" and done.archive_path == ""
    assert Blob.objects.count() == archives_before - 1  # the damaged blob left the index; no archive stored


def test_a_failing_compressor_thread_fails_the_export_instead_of_hanging(cast, generated, monkeypatch):
    original = archives._HashingFile.write
    calls = {"n": 0}

    def failing(self, data):
        calls["n"] += 1
        if calls["n"] == 3:  # the gzip header, then the first deflated chunk, then this
            raise OSError(28, "No space left on device")
        return original(self, data)

    monkeypatch.setattr(archives, "_CHUNK", 4096)
    monkeypatch.setattr(archives._HashingFile, "write", failing)
    started = time.monotonic()
    done = export(cast, generated, "tar.gz")
    assert time.monotonic() - started < 30
    assert done.status == "failed"
    assert done.error["code"] == "storage_error"
    assert "No space left on device" in done.error["message"]


@pytest.mark.parametrize(
    "path",
    ["a.txt", "x" * 100, "y" * 101, "dir/" + "z" * 150, "docs/café.md", "deep/" * 30 + "f", "sp ace/t\tab.txt"],
)
@pytest.mark.parametrize(("size", "mode"), [(0, 0o644), (1, 0o755), (513, 0o644), (10 * 1024 * 1024, 0o755)])
def test_tar_headers_are_byte_identical_to_tarfiles(path, size, mode):
    info = tarfile.TarInfo(path)
    info.size, info.mtime, info.mode, info.type = size, 1_764_000_000, mode, tarfile.REGTYPE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    assert archives._tar_header(path, size, mode, 1_764_000_000) == info.tobuf(
        tarfile.PAX_FORMAT, "utf-8", "surrogateescape"
    )


def test_the_whole_tar_stream_is_what_tarfile_writes(cast, generated):
    done = export(cast, generated, "tar.gz")
    ours = gzip.decompress(stored_archive(done).read_bytes())
    root = materialised(generated)
    expected = io.BytesIO()
    with tarfile.open(fileobj=expected, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path, (_, mode) in sorted(recorded(generated).items()):
            data = (root / path.split("/", 1)[1]).read_bytes()
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(data), stamp_of(generated), mode
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(data))
    assert ours == expected.getvalue()
