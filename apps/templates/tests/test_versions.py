"""Template versions: their order, recording (idempotent, immutable), the latest, and their files."""

from __future__ import annotations

import io
import random
import shutil
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from packaging.version import Version

from apps.templates.models import ProjectTemplate, TemplateVersion
from apps.templates.services import catalog, versions
from apps.templates.versioning import version_sort_key
from core.exceptions import ApplicationError

pytestmark = pytest.mark.django_db

LABELS = [
    "0.9",
    "1.0.dev1",
    "1.0a1.dev2",
    "1.0a1",
    "1.0a1.post1",
    "1.0a2",
    "1.0b1",
    "1.0rc1",
    "1.0rc10",
    "1.0",
    "1.0+build.1",
    "1.0+build.2",
    "1.0+build.10",
    "1.0+7",
    "1.0.post1.dev1",
    "1.0.post1",
    "1.0.1",
    "v1.1",
    "1.2.3",
    "1.10.0",
    "2!0.1",
]


def test_the_sort_key_orders_labels_as_packaging_does_and_non_versions_by_time():
    at = datetime(2026, 1, 1, tzinfo=UTC)
    shuffled = LABELS[:]
    random.Random(14).shuffle(shuffled)
    by_key = sorted(shuffled, key=lambda label: version_sort_key(label, at))
    assert by_key == sorted(shuffled, key=Version) == LABELS
    assert version_sort_key("1.0", at) == version_sort_key("1.0.0", at)  # PEP 440: equal versions
    # labels that are not versions (a short commit) rank below versions, the later one above
    early, late = version_sort_key("abc1234", at), version_sort_key("def5678", at + timedelta(seconds=1))
    assert early < late < version_sort_key("0.0.1", at)
    # a commit that reads as a number is ordered by time when told so
    assert version_sort_key("1234567", at, orderable=False) < version_sort_key("0.0.1", at)


def _tar(files: dict[str, str], *, dot_entries: bool = False) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        if dot_entries:
            top = tarfile.TarInfo("./")
            top.type = tarfile.DIRTYPE
            top.mode = 0o755
            archive.addfile(top)
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"./{name}" if dot_entries else name)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _archive(version: str, body: str, *, slug: str = "svc", dot_entries: bool = False) -> bytes:
    manifest = {
        "slug": slug,
        "name": f"Svc {version}",
        "version": version,
        "parameters": {
            "type": "object",
            "properties": {"name": {"type": "string", "default": "demo", "description": "The name."}},
        },
    }
    return _tar({"template.yaml": yaml.safe_dump(manifest), "README.md": body}, dot_entries=dot_entries)


def _upload(user, payload: bytes) -> ProjectTemplate:
    return catalog.template_upload(archive=io.BytesIO(payload), size=len(payload), user=user)


def test_uploads_record_immutable_versions_and_the_template_shows_the_latest(cast, settings):
    first = _upload(cast.alice, _archive("1.0.0", "# {{ name }} one\n", dot_entries=True))
    assert (first.version, first.name, first.format) == ("1.0.0", "Svc 1.0.0", "native")
    _upload(cast.alice, _archive("2.0.0", "# {{ name }} two\n"))
    again = _upload(cast.alice, _archive("2.0.0", "# {{ name }} two\n"))  # same label, same content: nothing new
    older = _upload(cast.alice, _archive("1.5.0", "# {{ name }} one and a half\n"))
    # 1.5.0 was recorded last, 2.0.0 stays the latest: the template's columns are 2.0.0's
    assert (again.version, older.version, older.name) == ("2.0.0", "2.0.0", "Svc 2.0.0")
    rows = list(versions.versions_of(older))
    assert [v.version for v in rows] == ["2.0.0", "1.5.0", "1.0.0"]
    assert all(v.created_by_id == cast.alice.pk and v.file_count == 1 for v in rows)
    assert older.checksum == rows[0].checksum and versions.version_latest(older).pk == rows[0].pk
    with pytest.raises(ApplicationError) as caught:
        _upload(cast.alice, _archive("1.0.0", "# other content\n"))
    assert (caught.value.status_code, caught.value.code) == (400, "template_version_exists")
    assert TemplateVersion.objects.filter(template=older).count() == 3

    # each version's files, also on a machine without the uploaded folders (from the blob store)
    v1 = versions.version_get(older, "1.0.0")
    shutil.rmtree(Path(settings.KILN_TEMPLATES_DIR))
    folder = catalog.template_folder(v1)
    assert Path(settings.KILN_TEMPLATE_CACHE_DIR) in folder.parents
    assert (folder / "README.md").read_text() == "# {{ name }} one\n"
    assert (catalog.template_folder(older) / "README.md").read_text() == "# {{ name }} two\n"

    with pytest.raises(ApplicationError) as caught:
        versions.version_get(older, "9.9.9")
    assert (caught.value.status_code, caught.value.code) == (404, "version_not_found")
    assert caught.value.extra["available"] == ["2.0.0", "1.5.0", "1.0.0"]
    with pytest.raises(ApplicationError) as caught:
        versions.version_for_generation(older, "9.9.9")
    assert (caught.value.status_code, caught.value.code) == (400, "version_not_found")
    assert versions.version_for_generation(older, None).version == "2.0.0"

    # a version removed: the template's columns follow the newest remaining one
    versions.version_get(older, "2.0.0").delete()
    versions.latest_refresh(older)
    assert (older.version, older.checksum) == ("1.5.0", versions.version_get(older, "1.5.0").checksum)


def test_only_the_owner_or_staff_add_versions(cast):
    _upload(cast.alice, _archive("1.0.0", "one\n"))
    with pytest.raises(ApplicationError) as caught:
        _upload(cast.dave, _archive("1.1.0", "other\n"))
    assert (caught.value.code, caught.value.extra) == ("template_exists", {"slug": "svc"})
    cast.charlie.is_staff = True
    cast.charlie.save()
    template = _upload(cast.charlie, _archive("1.1.0", "staff\n"))
    assert template.version == "1.1.0" and template.uploaded_by_id == cast.alice.pk  # the owner stays
    assert versions.version_get(template, "1.1.0").created_by_id == cast.charlie.pk


def test_a_builtin_template_edited_without_a_version_bump_becomes_a_local_version(settings, tmp_path):
    root = tmp_path / "builtin"
    folder = root / "demo"
    folder.mkdir(parents=True)
    (folder / "template.yaml").write_text("slug: demo\nname: Demo\nversion: '1.0.0'\n")
    (folder / "a.txt").write_text("one\n")
    settings.KILN_BUILTIN_TEMPLATES_DIR = root
    [template] = catalog.template_sync_builtin()
    catalog.template_sync_builtin()  # unchanged: nothing new
    (folder / "a.txt").write_text("two\n")
    [template] = catalog.template_sync_builtin()
    first, edited = versions.versions_of(template).order_by("created_at")
    assert first.version == "1.0.0" and edited.version == f"1.0.0+{edited.checksum[:8]}"
    assert template.version == edited.version and template.source == "builtin"
    assert edited.source_path == "demo" and first.source_path == ""  # the folder holds the new files only
    catalog.template_sync_builtin()
    assert TemplateVersion.objects.filter(template=template).count() == 2


@pytest.mark.django_db(transaction=True)
def test_two_first_uploads_of_one_slug_at_once_give_one_owner(settings, monkeypatch, tmp_path):
    """Two people upload a new slug at the same moment: one template, its uploader's; the other
    caller gets template_exists (the owner is checked again under the row lock), never a 500."""
    import threading

    from django.contrib.auth import get_user_model
    from django.db import connection

    users = [get_user_model().objects.create(username=f"racer{i}") for i in range(2)]
    barrier = threading.Barrier(2, timeout=10)
    real_store = versions._store_blobs

    def store_then_wait(folder, checksum):
        real_store(folder, checksum)
        barrier.wait()  # both enter the recording transaction together

    monkeypatch.setattr(versions, "_store_blobs", store_then_wait)
    outcomes: dict[int, object] = {}

    def race(index: int) -> None:
        try:
            outcomes[index] = _upload(users[index], _archive("1.0.0", f"racer {index}\n"))
        except ApplicationError as exc:
            outcomes[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=race, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    won = [o for o in outcomes.values() if isinstance(o, ProjectTemplate)]
    lost = [o for o in outcomes.values() if isinstance(o, ApplicationError)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    assert lost[0].code == "template_exists"
    template = ProjectTemplate.objects.get(slug="svc")
    assert template.uploaded_by_id == won[0].uploaded_by_id
    assert list(template.versions.values_list("version", "created_by_id")) == [("1.0.0", won[0].uploaded_by_id)]
