"""Uploads are checked at upload (issue 20): every parameter has a default and a description,
every file Kiln renders compiles. Each refusal is a 400 naming the file and line, and stores nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from apps.templates.models import ProjectTemplate, TemplateFile
from apps.templates.tests.test_api_templates import make_zip, upload

pytestmark = pytest.mark.django_db

GOOD_PARAMETERS = (
    "parameters:\n"
    "  type: object\n"
    "  properties:\n"
    "    name:\n"
    "      type: string\n"
    "      default: demo\n"
    "      description: The project's name.\n"
)


def manifest(parameters: str = GOOD_PARAMETERS, extra: str = "") -> bytes:
    return f"slug: checked\nname: Checked\nversion: '1.0.0'\n{extra}{parameters}".encode()


def archive(template_yaml: bytes, files: dict[str, bytes]) -> bytes:
    return make_zip([("template.yaml", template_yaml, 0o100644), *((k, v, 0o100644) for k, v in files.items())])


def refused(client, payload: bytes) -> dict:
    answer = upload(client, payload)
    assert answer.status_code == 400, answer.content
    return answer.json()


def test_an_upload_is_refused_at_upload_naming_the_file_and_line(api, cast):
    client = api(cast.alice)

    # parameters: one lacks a description (line 7), one a default and a description (line 10)
    parameters = (
        "parameters:\n"
        "  type: object\n"
        "  properties:\n"
        "    name: {type: string, default: demo, description: The name.}\n"
        "    port:\n"
        "      type: integer\n"
        "      default: 8000\n"
        "    debug: {type: boolean}\n"
        "    empty: {type: string, default: x, description: '  '}\n"
    )
    body = refused(client, archive(b"slug: checked\nname: Checked\nversion: '1.0.0'\n" + parameters.encode(), {}))
    assert body["code"] == "template_invalid"
    extra = body["extra"]
    assert (extra["reason"], extra["file"], extra["line"], extra["parameter"]) == (
        "parameter_incomplete",
        "template.yaml",
        8,
        "port",
    )
    assert extra["missing"] == ["description"]
    assert [(p["parameter"], p["line"], p["missing"]) for p in extra["parameters"]] == [
        ("port", 8, ["description"]),
        ("debug", 11, ["default", "description"]),
        ("empty", 12, ["description"]),
    ]
    assert body["message"].startswith("template.yaml:8: parameter 'port' needs a description; template.yaml:11:")

    # a file's content that does not compile: the generator's error, at upload
    files = {"README.md": b"# {{ name }}\n", "src/app.py": b"A = 1\nB = {{ name }\nC = 3\n"}
    body = refused(client, archive(manifest(), files))
    assert body["code"] == "template_syntax_error"
    assert (body["extra"]["file"], body["extra"]["line"]) == ("src/app.py", 2)
    assert body["message"].startswith("Template syntax error in src/app.py:2:")

    # a templated path that does not compile
    body = refused(client, archive(manifest(), {"{% if name %}x.txt": b"x\n"}))
    assert body["code"] == "template_syntax_error" and body["extra"]["file"] == "{% if name %}x.txt"

    assert not ProjectTemplate.objects.filter(slug="checked").exists()
    assert not TemplateFile.objects.exists()
    assert not (Path(settings.KILN_TEMPLATES_DIR) / "checked").exists()

    # what Kiln does not render is not compiled: copy_without_render and binary files
    ok = upload(
        client,
        archive(
            manifest(extra="copy_without_render: ['raw/*']\n"),
            {"raw/macro.j2": b"{{ not closed\n", "logo.bin": b"\x00{{ x }\x00", "README.md": b"# {{ name }}\n"},
        ),
    )
    assert ok.status_code == 201, ok.content
    assert ProjectTemplate.objects.get(slug="checked").file_count == 3
