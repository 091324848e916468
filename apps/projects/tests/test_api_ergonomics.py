"""The API's rough edges a newcomer hit (issue 20 § 3), one test each."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.test import Client

from apps.projects.models import GeneratedProject, ProjectFile, RepositoryExport
from apps.projects.services.exports import repository_export_execute, repository_export_start
from apps.storage.blobs import blob_store

pytestmark = pytest.mark.django_db


def test_api_root_lists_the_resources_as_json_and_in_the_browsable_api(api):
    body = api().get("/api/v1/").json()  # no login needed to find one's way
    assert body["projects"] == "http://testserver/api/v1/projects/"
    assert body["templates"] == "http://testserver/api/v1/templates/"
    assert body["auth_token"].endswith("/api/v1/auth/token/") and body["docs"].endswith("/api/docs/")
    page = api().get("/api/v1/", HTTP_ACCEPT="text/html")
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    assert b"Kiln API" in page.content and b"/api/v1/projects/" in page.content


def test_a_missing_trailing_slash_is_a_json_308_and_the_post_survives_it(cast):
    client = Client()
    client.force_login(cast.alice)
    response = client.post("/api/v1/projects", {"name": "Slashless"}, content_type="application/json")
    assert response.status_code == 308  # not 301: a client following it keeps POST and the body
    assert response["Location"] == "/api/v1/projects/"
    assert response.json() == {
        "message": "This URL ends with a slash: /api/v1/projects/",
        "code": "trailing_slash",
        "extra": {"location": "/api/v1/projects/"},
    }
    followed = client.post(response["Location"], {"name": "Slashless"}, content_type="application/json")
    assert followed.status_code == 201
    assert client.get("/api/v1/projects?search=Slash")["Location"] == "/api/v1/projects/?search=Slash"


def test_archives_hold_one_folder_named_after_the_project_and_download_as_name_version(cast, api, make_template):
    make_template(
        {"README.md": "# {{ project_name }}\n", "src/app.py": "X = 1\n"},
        slug="named",
        parameters={"type": "object", "properties": {"project_name": {"type": "string", "default": "My Service"}}},
    )
    from apps.projects.services.generation import generated_project_execute, generated_project_start

    row = generated_project_start(
        project=cast.project, template_slug="named", parameters={}, actor=cast.alice, enqueue=False
    )
    generated = generated_project_execute(generated_id=row.pk, owner="t:1:n").generated
    export = repository_export_start(generated=generated, data={"provider": "zip"}, actor=cast.alice, enqueue=False)
    repository_export_execute(export_id=export.pk, owner="t:1:z")
    url = f"/api/v1/projects/{cast.project.pk}/generated/{generated.pk}/exports/{export.pk}/download/"
    download = api(cast.victor).get(url)
    assert download["Content-Disposition"] == 'attachment; filename="my-service-1.0.0.zip"'
    with zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content))) as archive:
        assert archive.namelist() == ["my-service/README.md", "my-service/src/app.py"]


def test_delete_a_generation_removes_files_and_archives_and_keeps_the_exports(cast, api, generated, run_jobs):
    export = repository_export_start(generated=generated, data={"provider": "zip"}, actor=cast.alice, enqueue=False)
    export, _ = repository_export_execute(export_id=export.pk, owner="t:1:z")
    store = blob_store()
    file_blobs = set(ProjectFile.objects.filter(generated=generated).values_list("sha256", flat=True))
    blobs = {*file_blobs, export.archive_sha256}
    assert all(store.exists(sha) for sha in blobs)
    url = f"/api/v1/projects/{cast.project.pk}/generated/{generated.pk}/"

    refused = api(cast.dave).delete(url)  # a developer generates but does not delete
    assert refused.status_code == 403 and refused.json()["extra"]["required_role"] == "maintainer"
    assert api(cast.charlie).delete(url).status_code == 404

    with run_jobs():  # the blobs go after commit
        assert api(cast.mia).delete(url).status_code == 204
    assert not any(store.exists(sha) for sha in blobs)
    assert api(cast.alice).get(url).status_code == 404
    assert generated.pk not in [
        g["id"] for g in api(cast.alice).get(f"/api/v1/projects/{cast.project.pk}/generated/").json()["results"]
    ]
    assert not ProjectFile.objects.filter(generated_id=generated.pk).exists()
    kept = RepositoryExport.objects.get(pk=export.pk)  # history: what was published, where, with which hash
    assert kept.status == "completed" and kept.archive_size == export.archive_size and kept.archive_path == ""
    assert GeneratedProject.objects.get(pk=generated.pk).deleted_at is not None
    audit = api(cast.alice).get(f"/api/v1/projects/{cast.project.pk}/audit/?action=generation.deleted").json()
    assert audit["count"] == 1 and audit["results"][0]["actor_label"] == "mia"
    assert audit["results"][0]["detail"]["archives"] == {str(export.pk): export.archive_sha256}  # the hash, kept


def test_delete_refuses_a_generation_that_is_still_running(cast, api, generated):
    GeneratedProject.objects.filter(pk=generated.pk).update(status="running")
    response = api(cast.alice).delete(f"/api/v1/projects/{cast.project.pk}/generated/{generated.pk}/")
    assert response.status_code == 409 and response.json()["code"] == "generation_busy"
    assert ProjectFile.objects.filter(generated=generated).exists()


def test_projects_search_and_ordering(cast, api):
    from apps.projects.services.projects import project_create

    project_create(owner=cast.alice, name="Zeta service", description="payments backend")
    project_create(owner=cast.alice, name="Beta tools", description="internal")
    client = api(cast.alice)
    found = client.get("/api/v1/projects/?search=payments").json()
    assert [p["name"] for p in found["results"]] == ["Zeta service"]
    ordered = client.get("/api/v1/projects/?ordering=name").json()
    assert [p["name"] for p in ordered["results"]] == ["Alpha", "Beta tools", "Zeta service"]
    newest_name_first = client.get("/api/v1/projects/?ordering=-name").json()["results"]
    assert newest_name_first[0]["name"] == "Zeta service"
    wrong = client.get("/api/v1/projects/?ordering=owner")
    assert wrong.status_code == 400 and "created_at, name, updated_at" in wrong.json()["message"]


def test_an_unknown_query_parameter_on_a_list_is_a_400_naming_the_accepted_ones(cast, api):
    response = api(cast.alice).get(f"/api/v1/projects/{cast.project.pk}/generated/?statu=failed")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "unknown_query_parameter"
    assert body["extra"] == {"unknown": ["statu"], "accepted": ["format", "page", "page_size", "status"]}
    assert "statu" in body["message"] and "status" in body["message"]
    assert api(cast.alice).get("/api/v1/projects/?name=Alpha").status_code == 400
    assert api(cast.alice).get("/api/v1/projects/?page_size=5&format=json").status_code == 200


@pytest.mark.parametrize(
    ("url", "allow", "setting"),
    [
        ("file:///srv/git/demo.git", "KILN_ALLOW_FILE_REMOTES", "KILN_ALLOW_FILE_REMOTES=1"),
        ("http://git.example.test/demo.git", "KILN_ALLOW_PRIVATE_NETWORKS", "KILN_ALLOW_PRIVATE_NETWORKS=1"),
    ],
)
def test_a_refused_remote_url_names_the_setting_that_allows_it(cast, api, generated, settings, url, allow, setting):
    setattr(settings, allow, False)
    response = api(cast.mia).post(
        f"/api/v1/projects/{cast.project.pk}/generated/{generated.pk}/exports/",
        {"provider": "git", "remote_url": url},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["code"] == "remote_url_not_allowed"
    assert setting in response.json()["message"]


def test_an_upload_under_another_field_name_is_told_to_use_archive(cast, api):
    response = api(cast.alice).post("/api/v1/templates/", {"file": io.BytesIO(b"PK")}, format="multipart")
    assert response.status_code == 400
    body = response.json()
    assert "multipart field 'archive'" in body["message"] and "Got file instead" in body["message"]
    assert body["extra"]["fields"]["file"] == ["This field is not accepted here; did you mean 'archive'?"]


def test_the_schema_url_opened_in_a_browser_is_the_docs_page(api):
    page = api().get("/api/schema/", HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    assert b"swagger-ui" in page.content
    schema = api().get("/api/schema/", HTTP_ACCEPT="*/*")
    assert schema.status_code == 200 and schema["Content-Type"].startswith("application/vnd.oai.openapi")


def test_two_first_schema_generations_at_once_both_answer(monkeypatch):
    """drf-spectacular loads its extensions' target classes lazily and not thread-safely: the docs
    page and a client asking for the schema at once made one of them a 500 (AttributeError on a
    target another thread had just reset). An optional extension whose import is slow and fails
    makes the overlap certain; both answers must be 200."""
    import threading
    import time

    from django.test import RequestFactory
    from drf_spectacular import plumbing
    from drf_spectacular.extensions import OpenApiSerializerFieldExtension

    from core.api_root import SchemaView

    class SlowMissing(OpenApiSerializerFieldExtension):
        target_class = "kiln_missing_module_for_the_race.Field"
        optional = True

        def map_serializer_field(self, auto_schema, direction):  # pragma: no cover - never matches
            return {}

    real = plumbing.import_string

    def slow_import(path):
        if path == SlowMissing.target_class:
            time.sleep(0.3)
        return real(path)

    monkeypatch.setattr(plumbing, "import_string", slow_import)
    try:
        statuses: list[int] = []
        barrier = threading.Barrier(2)

        def fetch() -> None:
            # the schema view itself (no database: the test's rows are not visible to other threads)
            request = RequestFactory().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
            barrier.wait()
            response = SchemaView.as_view()(request)
            statuses.append(response.status_code)

        threads = [threading.Thread(target=fetch) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert statuses == [200, 200]
        assert SlowMissing.target_class is None  # resolved once: not installed
    finally:
        OpenApiSerializerFieldExtension._registry.remove(SlowMissing)
