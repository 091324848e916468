"""POST /blueprints/preview/ and POST /templates/ {"blueprint": ...}: shapes, errors, versions."""

from __future__ import annotations

from pathlib import Path

import pytest

SEEDS = Path(__file__).parent / "seeds"
PREVIEW = "/api/v1/blueprints/preview/"


def seed(prefix: str) -> str:
    return next(SEEDS.glob(f"{prefix}_*.txt")).read_text(encoding="utf-8")


def assert_error(response, code):
    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"message", "code", "extra"}
    assert body["code"] == code
    return body


@pytest.mark.django_db
def test_preview_shape_and_nothing_stored(cast, api):
    from apps.templates.models import ProjectTemplate

    before = ProjectTemplate.objects.count()
    response = api(cast.alice).post(PREVIEW, {"document": seed("003")}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert {"entries", "stack", "warnings", "files"} <= set(body)
    entry = next(e for e in body["entries"] if e["path"] == "app/db/database.py")
    assert entry == {**entry, "kind": "file", "description": "SQLAlchemy async engine & session", "role": "database"}
    assert body["stack"]["framework"] == "fastapi" and body["stack"]["orm_async"] is True
    assert body["stack"]["evidence"]["fastapi"]
    assert {"Procfile", "requirements.txt", "app/main.py", "alembic/versions/0001_initial.py"} <= set(body["files"])
    assert ProjectTemplate.objects.count() == before


@pytest.mark.django_db
def test_preview_needs_authentication(api):
    assert api(None).post(PREVIEW, {"document": seed("000")}, format="json").status_code in {401, 403}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("document", "code", "line"),
    [
        ("# Notes\n\nJust prose, no structure.\n", "blueprint_invalid", None),
        ("```\nx/\n├── a.py\n├── ../../etc/cron.d/job\n```\n", "blueprint_invalid", 4),
        ("```\nx/\n├── a.py\n└── /root/.ssh/authorized_keys\n```\n", "blueprint_invalid", 4),
        ("```\nx/\n├── a.py\n└── .git/hooks/post-checkout\n```\n", "blueprint_invalid", 4),
        ("```\nx/\n" + "".join(f"├── f{i}.py\n" for i in range(500)) + "```\n", "blueprint_too_large", 403),
    ],
)
def test_bad_documents_are_400s_naming_the_line(cast, api, document, code, line):
    body = assert_error(api(cast.alice).post(PREVIEW, {"document": document}, format="json"), code)
    if line is None:
        assert "hint" in body["extra"]
    else:
        assert body["extra"]["line"] == line
        assert f"Line {line}" in body["message"]


def generated(client, cast, suffix=""):
    return client.get(f"/api/v1/projects/{cast.project.pk}/generated/{suffix}").json()


def generate(client, cast, run_jobs, **body):
    with run_jobs():
        started = client.post(
            f"/api/v1/projects/{cast.project.pk}/generated/", {"template": "kumo", **body}, format="json"
        )
    assert started.status_code == 202, started.content
    detail = generated(client, cast, f"{started.json()['id']}/")
    assert detail["status"] == "completed", detail["error"]
    return detail


def file_text(client, cast, detail, path):
    rows = generated(client, cast, f"{detail['id']}/files/?page_size=500")["results"]
    row = next(row for row in rows if row["path"] == path)
    answer = client.get(f"/api/v1/projects/{cast.project.pk}/generated/{detail['id']}/files/{row['id']}/content/")
    return b"".join(answer.streaming_content).decode()


@pytest.mark.django_db
def test_blueprint_versions_register_edit_generate_both_and_render_v1_again(cast, api, run_jobs):
    alice, dave = api(cast.alice), api(cast.dave)
    body = {"blueprint": {"slug": "kumo", "name": "Kumo", "document": seed("000")}}
    response = alice.post("/api/v1/templates/", body, format="json")
    assert response.status_code == 201, response.content
    template = response.json()
    assert (template["format"], template["source"], template["latest_version"], template["versions_count"]) == (
        "blueprint",
        "upload",
        "1.0.0",
        1,
    )
    assert set(template["parameters"]["properties"]) == {"project_name", "database_url"}
    assert template["parameters"]["properties"]["project_name"]["default"] == "kumo"
    again = alice.post("/api/v1/templates/", body, format="json").json()  # the same document: nothing new
    assert (again["versions_count"], again["checksum"]) == (1, template["checksum"])
    one = generate(dave, cast, run_jobs, parameters={"project_name": "Kumo One"})

    body["blueprint"]["document"] = seed("000").replace("# Logging system", "# Logs, searchable")
    edited = alice.post("/api/v1/templates/", body, format="json").json()
    assert (edited["format"], edited["latest_version"], edited["versions_count"]) == ("blueprint", "1.0.1", 2)
    assert edited["checksum"] != template["checksum"]
    two = generate(dave, cast, run_jobs, parameters={"project_name": "Kumo One"})

    # both read back, each from its own document
    assert (one["template_version"], two["template_version"]) == ("1.0.0", "1.0.1")
    assert one["content_sha256"] != two["content_sha256"] and one["file_count"] == two["file_count"]
    assert "Logging system" in file_text(dave, cast, one, "log_service/__init__.py")
    assert "Logs, searchable" in file_text(dave, cast, two, "log_service/__init__.py")
    assert "Kumo One" in file_text(dave, cast, one, "README.md")
    # v1 again: the same bytes (and a dry run agrees)
    three = generate(dave, cast, run_jobs, version="1.0.0", parameters={"project_name": "Kumo One"})
    assert (three["template_version"], three["content_sha256"]) == ("1.0.0", one["content_sha256"])
    dry = dave.post(
        f"/api/v1/projects/{cast.project.pk}/generated/",
        {"template": "kumo", "version": "1.0.0", "parameters": {"project_name": "Kumo One"}, "dry_run": True},
        format="json",
    )
    assert dry.status_code == 200 and dry.json()["content_sha256"] == one["content_sha256"]

    # the versions API: both versions, format blueprint, the schema each was recorded with
    rows = dave.get("/api/v1/templates/kumo/versions/").json()["results"]
    assert [(row["version"], row["format"]) for row in rows] == [("1.0.1", "blueprint"), ("1.0.0", "blueprint")]
    detail = dave.get("/api/v1/templates/kumo/versions/1.0.0/").json()
    assert detail["checksum"] == template["checksum"] and detail["uses_code"] == []
    assert detail["file_count"] == one["file_count"]

    # an explicit label; that label with another document is refused; the next automatic one follows it
    body["blueprint"].update(document=seed("000").replace("# Logging system", "# Logs v2"), version="2.0")
    assert alice.post("/api/v1/templates/", body, format="json").json()["latest_version"] == "2.0"
    body["blueprint"]["document"] = seed("000").replace("# Logging system", "# Logs v3")
    assert_error(alice.post("/api/v1/templates/", body, format="json"), "template_version_exists")
    del body["blueprint"]["version"]
    assert alice.post("/api/v1/templates/", body, format="json").json()["latest_version"] == "2.0.1"
    bad_label = {"blueprint": {**body["blueprint"], "version": "../1"}}
    assert_error(alice.post("/api/v1/templates/", bad_label, format="json"), "validation_error")

    # only the owner (or staff) adds versions
    assert_error(api(cast.charlie).post("/api/v1/templates/", body, format="json"), "template_exists")
    cast.charlie.is_staff = True
    cast.charlie.save()
    body["blueprint"]["document"] = seed("000").replace("# Logging system", "# Logs by staff")
    assert api(cast.charlie).post("/api/v1/templates/", body, format="json").json()["latest_version"] == "2.0.2"
    bad = alice.post(
        "/api/v1/templates/", {"blueprint": {"slug": "x", "name": "X", "document": "no tree"}}, format="json"
    )
    assert_error(bad, "blueprint_invalid")
