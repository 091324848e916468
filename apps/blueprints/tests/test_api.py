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


@pytest.mark.django_db
def test_register_blueprint_and_new_version_on_edit(cast, api):
    client = api(cast.alice)
    body = {"blueprint": {"slug": "kumo", "name": "Kumo", "document": seed("000")}}
    response = client.post("/api/v1/templates/", body, format="json")
    assert response.status_code == 201, response.content
    template = response.json()
    assert template["slug"] == "kumo" and template["version"] == "1.0.0"
    assert set(template["parameters"]["properties"]) == {"project_name", "database_url"}
    assert template["parameters"]["properties"]["project_name"]["default"] == "kumo"
    again = client.post("/api/v1/templates/", body, format="json").json()
    assert again["version"] == "1.0.0" and again["checksum"] == template["checksum"]
    body["blueprint"]["document"] = seed("000").replace("# Logging system", "# Logs, searchable")
    edited = client.post("/api/v1/templates/", body, format="json").json()
    assert edited["version"] == "1.0.1" and edited["checksum"] != template["checksum"]
    other = api(cast.charlie).post("/api/v1/templates/", body, format="json")
    assert_error(other, "template_exists")
    bad = client.post(
        "/api/v1/templates/", {"blueprint": {"slug": "x", "name": "X", "document": "no tree"}}, format="json"
    )
    assert_error(bad, "blueprint_invalid")
