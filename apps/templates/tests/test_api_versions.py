"""Template versions through the API: upload v1, generate, upload v2, generate, read both back,
render v1 again byte for byte; the versions list and detail; who may add a version."""

from __future__ import annotations

import io
import tarfile
import zipfile

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.projects.models import GeneratedProject

pytestmark = pytest.mark.django_db

SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "default": "demo", "description": "The name."}}}


def _manifest(version: str, **extra) -> bytes:
    body = {"slug": "svc", "name": "Service", "version": version, "parameters": SCHEMA, **extra}
    return yaml.safe_dump(body).encode()


def tar_dot(version: str, files: dict[str, str]) -> bytes:
    """What `tar czf t.tar.gz -C folder .` makes: a ./ entry, then ./name entries."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        top = tarfile.TarInfo(".")
        top.type, top.mode = tarfile.DIRTYPE, 0o755
        archive.addfile(top)
        for name, data in {"template.yaml": _manifest(version), **{k: v.encode() for k, v in files.items()}}.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def zip_top(version: str, files: dict[str, str]) -> bytes:
    """A zip with one top folder (what zipping a folder makes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("svc-src/template.yaml", _manifest(version))
        for name, text in files.items():
            archive.writestr(f"svc-src/{name}", text)
    return buffer.getvalue()


def upload(client, payload: bytes, name: str):
    return client.post("/api/v1/templates/", {"archive": SimpleUploadedFile(name, payload)}, format="multipart")


def generated_url(cast, suffix=""):
    return f"/api/v1/projects/{cast.project.pk}/generated/{suffix}"


def test_upload_generate_upload_generate_and_render_the_old_version_again(cast, api, run_jobs):
    alice, dave = api(cast.alice), api(cast.dave)
    first = upload(alice, tar_dot("1.0.0", {"README.md": "# {{ name }} v1\n"}), "t.tar.gz")
    assert first.status_code == 201, first.content
    body = first.json()
    assert (body["format"], body["source"], body["latest_version"], body["versions_count"]) == (
        "native",
        "upload",
        "1.0.0",
        1,
    )
    with run_jobs():
        one = dave.post(generated_url(cast), {"template": "svc", "parameters": {"name": "kiln"}}, format="json")
    assert one.status_code == 202, one.content

    second = upload(alice, zip_top("2.0.0", {"README.md": "# {{ name }} v2\n", "NEW.md": "new\n"}), "t.zip")
    assert second.status_code == 201, second.content
    assert (second.json()["latest_version"], second.json()["versions_count"], second.json()["file_count"]) == (
        "2.0.0",
        2,
        2,
    )
    with run_jobs():
        two = dave.post(generated_url(cast), {"template": "svc", "parameters": {"name": "kiln"}}, format="json")
    assert two.status_code == 202, two.content

    # both generations read back, each with its version and files
    read_one = dave.get(generated_url(cast, f"{one.json()['id']}/")).json()
    read_two = dave.get(generated_url(cast, f"{two.json()['id']}/")).json()
    assert (read_one["status"], read_one["template_version"], read_one["file_count"]) == ("completed", "1.0.0", 1)
    assert (read_two["status"], read_two["template_version"], read_two["file_count"]) == ("completed", "2.0.0", 2)
    assert read_one["content_sha256"] != read_two["content_sha256"]
    files = dave.get(generated_url(cast, f"{one.json()['id']}/files/")).json()["results"]
    content = dave.get(generated_url(cast, f"{one.json()['id']}/files/{files[0]['id']}/content/"))
    assert b"".join(content.streaming_content) == b"# kiln v1\n"

    # v1 again, with the same parameters: the same bytes; a dry run of it agrees
    with run_jobs():
        again = dave.post(
            generated_url(cast), {"template": "svc", "version": "1.0.0", "parameters": {"name": "kiln"}}, format="json"
        )
    assert again.status_code == 202, again.content
    read_again = dave.get(generated_url(cast, f"{again.json()['id']}/")).json()
    assert (read_again["template_version"], read_again["content_sha256"]) == ("1.0.0", read_one["content_sha256"])
    preview = dave.post(
        generated_url(cast),
        {"template": "svc", "version": "1.0.0", "parameters": {"name": "kiln"}, "dry_run": True},
        format="json",
    )
    assert preview.status_code == 200 and preview.json()["content_sha256"] == read_one["content_sha256"]

    # a retried old generation renders its own version, not the latest
    GeneratedProject.objects.filter(pk=one.json()["id"]).update(status="failed", content_sha256="")
    with run_jobs():
        assert dave.post(generated_url(cast, f"{one.json()['id']}/retry/")).status_code == 202
    retried = dave.get(generated_url(cast, f"{one.json()['id']}/")).json()
    assert (retried["status"], retried["content_sha256"]) == ("completed", read_one["content_sha256"])

    # an unknown version is the body's error, naming the versions there are
    wrong = dave.post(generated_url(cast), {"template": "svc", "version": "9.9.9"}, format="json")
    assert wrong.status_code == 400
    assert wrong.json()["code"] == "version_not_found"
    assert wrong.json()["extra"]["available"] == ["2.0.0", "1.0.0"]


def test_versions_list_and_detail(cast, api):
    alice = api(cast.alice)
    assert upload(alice, tar_dot("1.0.0", {"a.txt": "a\n"}), "a.tar.gz").status_code == 201
    assert upload(alice, tar_dot("1.10.0", {"a.txt": "c\n"}), "c.tar.gz").status_code == 201
    assert upload(alice, tar_dot("1.9.0", {"a.txt": "b\n"}), "b.tar.gz").status_code == 201
    reader = api(cast.charlie)  # any signed-in user reads the catalog
    listed = reader.get("/api/v1/templates/svc/versions/")
    assert listed.status_code == 200, listed.content
    rows = listed.json()["results"]
    assert [row["version"] for row in rows] == ["1.10.0", "1.9.0", "1.0.0"]  # newest first, as versions
    assert set(rows[0]) == {
        "version",
        "format",
        "commit",
        "checksum",
        "parameters",
        "file_count",
        "total_bytes",
        "uses_code",
        "is_trusted",
        "created_at",
    }
    detail = reader.get("/api/v1/templates/svc/versions/1.9.0/").json()
    assert (detail["version"], detail["format"], detail["commit"], detail["uses_code"]) == ("1.9.0", "native", "", [])
    assert detail["parameters"] == SCHEMA and len(detail["checksum"]) == 64
    assert reader.get("/api/v1/templates/svc/").json()["latest_version"] == "1.10.0"
    missing = reader.get("/api/v1/templates/svc/versions/3.0.0/")
    assert missing.status_code == 404 and missing.json()["code"] == "version_not_found"
    assert reader.get("/api/v1/templates/nope/versions/").status_code == 404
    assert reader.get("/api/v1/templates/svc/versions/?bogus=1").json()["code"] == "unknown_query_parameter"
    assert api(None).get("/api/v1/templates/svc/versions/").status_code == 401


def test_only_the_owner_or_staff_add_a_version_and_a_label_keeps_its_content(cast, api):
    alice = api(cast.alice)
    assert upload(alice, tar_dot("1.0.0", {"a.txt": "a\n"}), "a.tar.gz").status_code == 201
    again = upload(alice, tar_dot("1.0.0", {"a.txt": "a\n"}), "a.tar.gz")  # the same content: nothing new
    assert again.status_code == 201 and again.json()["versions_count"] == 1
    changed = upload(alice, tar_dot("1.0.0", {"a.txt": "changed\n"}), "a.tar.gz")
    assert changed.status_code == 400 and changed.json()["code"] == "template_version_exists"
    other = upload(api(cast.dave), tar_dot("1.1.0", {"a.txt": "mine\n"}), "a.tar.gz")
    assert other.status_code == 400 and other.json()["code"] == "template_exists"
    cast.charlie.is_staff = True
    cast.charlie.save()
    staff = upload(api(cast.charlie), tar_dot("1.1.0", {"a.txt": "staff\n"}), "a.tar.gz")
    assert staff.status_code == 201 and staff.json()["latest_version"] == "1.1.0"


def test_agents_and_workflows_pick_a_version_too(cast, api, run_jobs):
    from apps.agents.services.tools import tools
    from apps.agents.services.tools.registry import call_tool
    from apps.workflows.services.step_executors.file_generation_step import plan

    alice = api(cast.alice)
    assert upload(alice, tar_dot("1.0.0", {"a.txt": "{{ name }} one\n"}), "a.tar.gz").status_code == 201
    assert upload(alice, tar_dot("2.0.0", {"a.txt": "{{ name }} two\n"}), "b.tar.gz").status_code == 201
    arguments = {"project": cast.project.pk, "template": "svc", "parameters": {"name": "x"}}
    old = call_tool(tools()["preview_generation"], actor=cast.dave, arguments={**arguments, "version": "1.0.0"})
    new = call_tool(tools()["preview_generation"], actor=cast.dave, arguments=arguments)
    assert not old.is_error and not new.is_error
    assert old.structured["content_sha256"] != new.structured["content_sha256"]
    with run_jobs():
        started = call_tool(tools()["generate_project"], actor=cast.dave, arguments={**arguments, "version": "1.0.0"})
    assert started.structured["template_version"] == "1.0.0"
    done = GeneratedProject.objects.get(pk=started.structured["id"])
    assert done.content_sha256 == old.structured["content_sha256"]
    missing = call_tool(tools()["preview_generation"], actor=cast.dave, arguments={**arguments, "version": "0.1"})
    assert missing.is_error and missing.structured["code"] == "version_not_found"
    # a workflow step's approval plan names the version it will render
    step = plan({"project": cast.project.pk, "template": "svc", "version": "1.0.0"})
    assert step["template"]["version"] == "1.0.0"
    assert step["template"]["checksum"] == done.template_checksum
