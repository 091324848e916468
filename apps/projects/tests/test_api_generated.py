"""The generated-projects API through DRF's client: the contract of API.md § Generated projects."""

from __future__ import annotations

import pytest

from apps.projects.models import GeneratedProject

pytestmark = pytest.mark.django_db

PARAMS = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z]+$", "default": "demo"},
        "count": {"type": "integer", "default": 1},
    },
}


def url(cast, suffix=""):
    return f"/api/v1/projects/{cast.project.pk}/generated/{suffix}"


@pytest.fixture
def template(make_template):
    return make_template(
        {"README.md": "# {{ name }}\n", "src/{{ name }}.py": "COUNT = {{ count }}\n", "bin/x": ("#!/bin/sh\n", 0o755)},
        slug="tiny",
        parameters=PARAMS,
    )


def assert_error_shape(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"message", "code", "extra"}
    assert body["code"] == code
    assert body["message"]
    assert "Traceback" not in response.content.decode()


def test_generate_returns_202_then_completes(cast, api, template, run_jobs):
    client = api(cast.dave)
    with run_jobs():
        response = client.post(
            url(cast), {"template": "tiny", "parameters": {"name": "kiln", "count": 3}}, format="json"
        )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "pending"
    assert {
        "id",
        "project",
        "template",
        "template_version",
        "parameters",
        "status",
        "progress",
        "file_count",
        "total_bytes",
        "content_sha256",
        "error",
        "created_at",
        "started_at",
        "finished_at",
    } <= set(body)
    detail = client.get(url(cast, f"{body['id']}/")).json()
    assert detail["status"] == "completed"
    assert detail["progress"] == {"done": 3, "total": 3}
    assert detail["file_count"] == 3 and len(detail["content_sha256"]) == 64
    assert detail["parameters"] == {"name": "kiln", "count": 3}
    assert detail["template"] == "tiny" and detail["template_version"] == "1.0.0"

    files = client.get(url(cast, f"{body['id']}/files/")).json()
    assert files["count"] == 3
    by_path = {f["path"]: f for f in files["results"]}
    assert set(by_path) == {"README.md", "src/kiln.py", "bin/x"}
    assert by_path["bin/x"]["mode"] == 0o755
    content = client.get(url(cast, f"{body['id']}/files/{by_path['src/kiln.py']['id']}/content/"))
    assert content.status_code == 200
    assert b"".join(content.streaming_content) == b"COUNT = 3\n"

    listing = client.get(url(cast)).json()
    assert listing["count"] == 1 and listing["results"][0]["id"] == body["id"]


def test_dry_run_returns_manifest_and_stores_nothing(cast, api, template):
    response = api(cast.dave).post(
        url(cast), {"template": "tiny", "parameters": {"name": "abc"}, "dry_run": True}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["file_count"] == 3
    assert {f["path"] for f in body["files"]} == {"README.md", "src/abc.py", "bin/x"}
    assert all(set(f) >= {"path", "size", "sha256", "is_binary"} for f in body["files"])
    assert GeneratedProject.objects.count() == 0


def test_dry_run_render_failure_is_422(cast, api, make_template):
    make_template({"a.txt": "{{ nope }}"}, slug="broken")
    response = api(cast.dave).post(url(cast), {"template": "broken", "dry_run": True}, format="json")
    assert_error_shape(response, 422, "template_variable_missing")


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        ({"name": 1}, "parameters.name"),
        ({"name": "UPPER"}, "parameters.name"),
        ({"name": "ok", "extra": 1}, "parameters.extra"),
        ({"name": "ok", "count": "three"}, "parameters.count"),
    ],
)
def test_bad_parameters_are_400_with_field_errors(cast, api, template, parameters, field):
    response = api(cast.dave).post(url(cast), {"template": "tiny", "parameters": parameters}, format="json")
    assert_error_shape(response, 400, "validation_error")
    assert field in response.json()["extra"]["fields"]
    assert GeneratedProject.objects.count() == 0


def test_unknown_template_is_404(cast, api):
    response = api(cast.dave).post(url(cast), {"template": "nope"}, format="json")
    assert_error_shape(response, 404, "template_not_found")


def test_unknown_fields_are_rejected(cast, api, template):
    response = api(cast.dave).post(url(cast), {"template": "tiny", "status": "completed", "project": 99}, format="json")
    assert_error_shape(response, 400, "validation_error")
    assert set(response.json()["extra"]["fields"]) == {"status", "project"}


def test_failed_generation_is_visible_with_code(cast, api, make_template, run_jobs):
    make_template({"{{ '.git' }}/hooks/pre-commit": "#!/bin/sh\n"}, slug="hooky")
    client = api(cast.dave)
    with run_jobs():
        created = client.post(url(cast), {"template": "hooky"}, format="json").json()
    detail = client.get(url(cast, f"{created['id']}/")).json()
    assert detail["status"] == "failed"
    assert detail["error"]["code"] == "unsafe_path"
    assert ".git" in detail["error"]["message"]


def test_viewer_cannot_generate_and_outsider_sees_nothing(cast, api, template, run_jobs):
    with run_jobs():
        created = api(cast.dave).post(url(cast), {"template": "tiny"}, format="json").json()
    assert_error_shape(api(cast.victor).post(url(cast), {"template": "tiny"}, format="json"), 403, "permission_denied")
    assert api(cast.victor).get(url(cast, f"{created['id']}/")).status_code == 200
    outsider = api(cast.charlie)
    for path in ["", f"{created['id']}/", f"{created['id']}/files/"]:
        assert_error_shape(outsider.get(url(cast, path)), 404, "not_found")
    assert_error_shape(outsider.post(url(cast), {"template": "tiny"}, format="json"), 404, "not_found")
    assert_error_shape(api(None).get(url(cast)), 401, "not_authenticated")


def test_cancel_and_retry(cast, api, template, run_jobs):
    client = api(cast.dave)
    created = client.post(url(cast), {"template": "tiny"}, format="json").json()  # enqueue not executed
    cancelled = client.post(url(cast, f"{created['id']}/cancel/"))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert_error_shape(client.post(url(cast, f"{created['id']}/cancel/")), 409, "not_cancellable")
    with run_jobs():
        retried = client.post(url(cast, f"{created['id']}/retry/"))
    assert retried.status_code == 202 and retried.json()["status"] == "pending"
    detail = client.get(url(cast, f"{created['id']}/")).json()
    assert detail["status"] == "completed" and detail["attempts"] == 2
    assert_error_shape(client.post(url(cast, f"{created['id']}/retry/")), 409, "not_retryable")


def test_active_job_cap_answers_429(cast, api, template, settings):
    settings.KILN_MAX_ACTIVE_JOBS_PER_PROJECT = 2
    client = api(cast.dave)
    for _ in range(2):
        assert client.post(url(cast), {"template": "tiny"}, format="json").status_code == 202
    response = client.post(url(cast), {"template": "tiny"}, format="json")
    assert_error_shape(response, 429, "too_many_active_jobs")
    assert response["Retry-After"]


def test_content_of_a_file_missing_from_the_storage_is_410(cast, api, template, run_jobs, settings):
    import shutil

    client = api(cast.dave)
    with run_jobs():
        created = client.post(url(cast), {"template": "tiny"}, format="json").json()
    file_id = client.get(url(cast, f"{created['id']}/files/")).json()["results"][0]["id"]
    shutil.rmtree(settings.GENERATED_PROJECTS_DIR)  # the filesystem store's folder, lost
    assert_error_shape(client.get(url(cast, f"{created['id']}/files/{file_id}/content/")), 410, "blob_missing")


@pytest.mark.parametrize("bad_id", ["abc", "-1", "99999999999999999999", "0"])
def test_malformed_ids_are_404(cast, api, bad_id):
    response = api(cast.dave).get(url(cast, f"{bad_id}/"))
    assert response.status_code == 404


def test_parameter_errors_spell_values_in_json_and_show_a_patterns_description(cast, api, make_template):
    """What a person wrote in JSON/YAML/a form reads back in JSON (null, true), and a pattern
    mismatch reads as the description the schema's author wrote, not the regex."""
    make_template(
        {"README.md": "# {{ slug }}\n"},
        slug="worded",
        parameters={
            "type": "object",
            "required": ["owner"],
            "properties": {
                "slug": {"type": "string", "pattern": "^[a-z]+$", "description": "Lowercase letters only."},
                "tag": {"type": "string", "pattern": "^v[0-9]+$"},
                "mode": {"enum": ["fast", "safe", None]},
                "count": {"type": "integer"},
                "owner": {"type": "string"},
            },
        },
    )
    body = {"slug": "Not OK", "tag": "1", "mode": True, "count": None}
    response = api(cast.dave).post(url(cast), {"template": "worded", "parameters": body}, format="json")
    assert_error_shape(response, 400, "validation_error")
    fields = response.json()["extra"]["fields"]
    assert fields == {
        "parameters.count": ['null is not of type "integer"'],
        "parameters.mode": ['true is not one of ["fast", "safe", null]'],
        "parameters.owner": ['"owner" is a required property'],
        "parameters.slug": ['"Not OK" does not match the expected form: Lowercase letters only.'],
        "parameters.tag": ['"1" does not match the pattern "^v[0-9]+$"'],
    }
    assert "None" not in response.content.decode() and "True" not in response.content.decode()
