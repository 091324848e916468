"""The pages at /: login, gallery, the schema-built form, generation, files, exports, members.

Django's test client against the real views and services (tasks run eagerly here; the
browser tests in tests/browser/test_pages.py run the same flow with a real worker).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client

from apps.projects.models import GeneratedProject, ProjectMembership, RepositoryExport
from apps.web.highlight import stylesheet
from apps.web.middleware import POLICY

pytestmark = pytest.mark.django_db

SCHEMA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {
            "type": "string",
            "pattern": "^[a-z][a-z0-9-]*$",
            "default": "demo",
            "description": "Lowercase letters, digits and dashes, starting with a letter.",
        },
        "license": {"type": "string", "enum": ["MIT", "Apache-2.0"], "default": "MIT"},
        "docker": {"type": "boolean", "default": True},
        "port": {"type": "integer", "minimum": 1024, "maximum": 65535, "default": 8000},
        "features": {"type": "array", "items": {"type": "string", "enum": ["api", "cli", "web"]}, "default": ["api"]},
        "authors": {"type": "array", "items": {"type": "string"}, "default": []},
    },
}
FILES = {
    "README.md": "# {{ name }} ({{ license }})\n",
    "src/{{ name }}/main.py": "PORT = {{ port }}\nFEATURES = {{ features | tojson }}\n",
    "{% if docker %}Dockerfile{% endif %}": "FROM python:3.11\n",
}


@pytest.fixture
def template(make_template):
    return make_template(
        FILES, slug="web-demo", name="Web Demo", description="A service for the page tests", parameters=SCHEMA
    )


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def generate_url(slug="web-demo"):
    return f"/templates/{slug}/generate/"


def post_form(client, cast, **values):
    data = {
        "project": cast.project.pk,
        "p.name": "demo",
        "p.license": "MIT",
        "p.docker": "true",
        "p.port": "8000",
        "p.features": ["api"],
        "p.authors": "",
        "action": "generate",
    }
    data.update(values)
    return client.post(generate_url(), {k: v for k, v in data.items() if v is not None})  # None: left unchecked


def test_pages_need_a_login_and_the_login_page_logs_in(cast, template):
    response = Client().get("/templates/")
    assert response.status_code == 302 and response["Location"] == "/login/?next=/templates/"
    client = Client()
    page = client.get("/login/")
    assert page.status_code == 200 and b'autocomplete="current-password"' in page.content
    done = client.post("/login/", {"username": "alice", "password": "pw-for-tests", "next": "/templates/"})
    assert done.status_code == 302 and done["Location"] == "/templates/"
    assert b"Web Demo" in client.get("/templates/").content
    wrong = Client().post("/login/", {"username": "alice", "password": "nope"})
    assert wrong.status_code == 200 and b'role="alert"' in wrong.content


def test_the_gallery_searches_name_and_description(cast, template, make_template):
    make_template({"a.txt": "a"}, slug="other-thing", name="Other", description="batch jobs")
    client = login(cast.dave)
    page = client.get("/templates/?q=page+tests").content.decode()
    assert 'data-slug="web-demo"' in page and 'data-slug="other-thing"' not in page
    page = client.get("/templates/?q=batch").content.decode()
    assert 'data-slug="other-thing"' in page and 'data-slug="web-demo"' not in page
    detail = client.get("/templates/web-demo/").content.decode()
    assert "<code>features</code>" in detail and "api, cli, web" in detail and "Lowercase letters" in detail


def test_the_generate_form_is_built_from_the_json_schema(cast, template):
    html = login(cast.dave).get(generate_url()).content.decode()
    name = re.search(r'<input type="text" id="param-name"[^>]*>', html).group(0)
    assert 'value="demo"' in name and 'pattern="^[a-z][a-z0-9-]*$"' in name and "required" in name
    assert 'title="Lowercase letters, digits and dashes, starting with a letter."' in name
    assert re.search(
        r'<select id="param-license" name="p.license"[^>]*>\s*<option value="">\(default\)</option>\s*<option value="MIT" selected>MIT</option>',
        html,
    )
    assert re.search(r'<input type="checkbox" id="param-docker" name="p.docker" value="true" checked', html)
    assert re.search(
        r'<input type="number" id="param-port" name="p.port" value="8000" step="1" min="1024" max="65535"', html
    )
    assert '<input type="checkbox" name="p.features" value="api" checked>' in html
    assert '<input type="checkbox" name="p.features" value="cli">' in html
    assert re.search(r'<textarea id="param-authors" name="p.authors"', html)
    assert f'<option value="{cast.project.pk}"' in html  # dave may generate in Alpha
    viewer = login(cast.victor).get(generate_url()).content.decode()
    assert f'<option value="{cast.project.pk}"' not in viewer and "You have no project to generate in" in viewer


def test_field_errors_from_the_service_show_beside_their_fields_then_preview_and_generate(cast, template, run_jobs):
    client = login(cast.dave)
    bad = post_form(client, cast, **{"p.name": "Not Valid", "p.port": "80"})
    assert bad.status_code == 400
    html = bad.content.decode()
    name_error = re.search(r'<p class="error" id="param-name-error">([^<]*)</p>', html)
    assert name_error.group(1) == "Lowercase letters, digits and dashes, starting with a letter."
    assert "80 is less than the minimum of 1024" in re.search(r'id="param-port-error">([^<]*)<', html).group(1)
    assert 'value="Not Valid"' in html  # what was typed stays
    assert not GeneratedProject.objects.exists()

    preview = post_form(client, cast, **{"p.name": "shop", "p.docker": None, "action": "preview"})
    assert preview.status_code == 200
    files = re.findall(r"<li><code>([^<]+)</code>", preview.content.decode())
    assert files == ["README.md", "src/shop/main.py"]  # docker unchecked: no Dockerfile
    assert not GeneratedProject.objects.exists()

    with run_jobs():
        done = post_form(client, cast, **{"p.name": "shop", "p.features": ["api", "web"], "p.authors": "ann\nbob"})
    generated = GeneratedProject.objects.get()
    assert done.status_code == 302 and done["Location"] == f"/projects/{cast.project.pk}/generated/{generated.pk}/"
    assert generated.parameters == {
        "name": "shop",
        "license": "MIT",
        "docker": True,
        "port": 8000,
        "features": ["api", "web"],
        "authors": ["ann", "bob"],
    }
    assert generated.status == "completed"


@pytest.fixture
def generated(cast, template, run_jobs):
    client = login(cast.alice)
    with run_jobs():
        post_form(client, cast, **{"p.name": "shop"})
    return GeneratedProject.objects.get()


def test_the_generation_page_shows_status_logs_files_and_a_highlighted_file(cast, generated):
    client = login(cast.victor)
    url = f"/projects/{cast.project.pk}/generated/{generated.pk}/"
    html = client.get(url).content.decode()
    assert 'data-status aria-live="polite">completed<' in html
    assert "INFO wrote 3 files" in html
    assert '<span class="folder">src/</span>' in html and '<span class="folder">shop/</span>' in html
    assert "data-events" not in html  # finished: nothing to follow
    assert "Download zip" not in html  # a viewer does not export
    main_py = generated.files.get(path="src/shop/main.py")
    page = client.get(f"{url}files/{main_py.pk}/").content.decode()
    assert '<div class="code">' in page and '<span class="n">PORT</span>' in page
    assert f'href="/api/v1/projects/{cast.project.pk}/generated/{generated.pk}/files/{main_py.pk}/content/"' in page


def test_a_running_generation_page_follows_the_event_stream(cast, template):
    from apps.projects.services.generation import generated_project_start

    pending = generated_project_start(
        project=cast.project, template_slug="web-demo", parameters={}, actor=cast.alice, enqueue=False
    )
    html = login(cast.alice).get(f"/projects/{cast.project.pk}/generated/{pending.pk}/").content.decode()
    assert (
        f'data-events="/api/v1/projects/{cast.project.pk}/generated/{pending.pk}/events/" data-reload-on-finish' in html
    )


def test_zip_download_and_git_export_from_the_page(cast, generated, run_jobs, tmp_path):
    import subprocess

    client = login(cast.alice)
    url = f"/projects/{cast.project.pk}/generated/{generated.pk}/"
    with run_jobs():
        assert client.post(f"{url}exports/", {"provider": "zip"})["Location"] == f"{url}#exports"
    export = RepositoryExport.objects.get()
    html = client.get(url).content.decode()
    download = f"/api/v1/projects/{cast.project.pk}/generated/{generated.pk}/exports/{export.pk}/download/"
    assert f'href="{download}" download data-download="zip"' in html and export.archive_sha256 in html

    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    with run_jobs():
        client.post(f"{url}exports/", {"provider": "git", "remote_url": f"file://{remote}", "branch": "main"})
    git_export = RepositoryExport.objects.get(provider="git")
    assert git_export.status == "completed", git_export.error
    assert f'<a href="file://{remote}" data-repository>' in client.get(url).content.decode()

    refused = client.post(f"{url}exports/", {"provider": "github", "name": "x"}, follow=True)
    assert "A connection is required for github exports." in refused.content.decode()


def test_outsiders_get_404_and_viewers_cannot_change_anything(cast, generated):
    outsider = login(cast.charlie)
    base = f"/projects/{cast.project.pk}/"
    file_id = generated.files.first().pk
    for path in ("", f"generated/{generated.pk}/", f"generated/{generated.pk}/files/{file_id}/"):
        assert outsider.get(base + path).status_code == 404, path
    assert outsider.post(f"{base}generated/{generated.pk}/exports/", {"provider": "zip"}).status_code == 404
    viewer = login(cast.victor)
    refused = viewer.post(f"{base}generated/{generated.pk}/exports/", {"provider": "zip"}, follow=True)
    assert "cannot export repositories" in refused.content.decode()
    assert not RepositoryExport.objects.exists()
    viewer.post(f"{base}members/", {"username": "charlie", "role": "owner"})
    assert not ProjectMembership.objects.filter(user=cast.charlie).exists()


def test_owners_manage_members_on_the_project_page(cast):
    client = login(cast.alice)
    page = client.get(f"/projects/{cast.project.pk}/").content.decode()
    assert 'id="member-username"' in page and "Remove victor" in page
    client.post(f"/projects/{cast.project.pk}/members/", {"username": "charlie", "role": "viewer"})
    membership = ProjectMembership.objects.get(user=cast.charlie)
    assert membership.role == "viewer"
    client.post(f"/projects/{cast.project.pk}/members/{membership.pk}/remove/")
    assert not ProjectMembership.objects.filter(user=cast.charlie).exists()
    assert 'id="member-username"' not in login(cast.mia).get(f"/projects/{cast.project.pk}/").content.decode()


def test_create_a_project_and_delete_a_generation(cast, generated, run_jobs):
    client = login(cast.dave)
    created = client.post("/projects/", {"name": "From the page"})
    assert created.status_code == 302
    maintainer = login(cast.mia)
    with run_jobs():
        gone = maintainer.post(f"/projects/{cast.project.pk}/generated/{generated.pk}/delete/")
    assert gone["Location"] == f"/projects/{cast.project.pk}/"
    assert GeneratedProject.objects.get(pk=generated.pk).deleted_at is not None


INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)


def test_every_page_sends_a_strict_csp_and_has_no_inline_script_or_style(cast, generated):
    client = login(cast.alice)
    file_id = generated.files.first().pk
    paths = [
        "/templates/",
        "/templates/web-demo/",
        generate_url(),
        "/projects/",
        f"/projects/{cast.project.pk}/",
        f"/projects/{cast.project.pk}/generated/{generated.pk}/",
        f"/projects/{cast.project.pk}/generated/{generated.pk}/files/{file_id}/",
    ]
    for path in [*paths, "/login/"]:
        response = (client if path != "/login/" else Client()).get(path)
        assert response.status_code == 200, path
        assert response["Content-Security-Policy"] == POLICY
        assert "'unsafe-inline'" not in POLICY
        html = response.content.decode()
        scripts = re.findall(r"<script\b[^>]*>", html)
        assert scripts and all("src=" in tag for tag in scripts), (path, scripts)
        assert not INLINE_HANDLER.search(html), path
        assert " style=" not in html and "<style" not in html, path
    assert "Content-Security-Policy" not in client.get("/api/v1/").headers  # only the pages


def test_the_pygments_stylesheet_is_current():
    shipped = (Path(__file__).resolve().parents[1] / "static" / "web" / "pygments.css").read_text()
    assert stylesheet() in shipped


def test_the_template_page_lists_versions_and_the_form_follows_the_chosen_one(make_template, cast, run_jobs):
    """Version history on the template page; the generate form is built from the chosen version's
    schema and the generation pins that version."""
    old = {"type": "object", "properties": {"name": {"type": "string", "default": "old", "description": "Name."}}}
    new = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "default": "new", "description": "Name."},
            "port": {"type": "integer", "default": 8000, "description": "Port."},
        },
    }
    make_template({"a.txt": "{{ name }}\n"}, slug="multi", parameters=old, version="1.0.0")
    make_template({"a.txt": "{{ name }}:{{ port }}\n", "b.txt": "b\n"}, slug="multi", parameters=new, version="2.0.0")
    client = login(cast.alice)
    page = client.get("/templates/multi/").content.decode()
    rows = re.findall(r'<tr data-version="([^"]+)"><td>[^<]*(?:<span class="meta">\(latest\)</span>)?', page)
    assert rows == ["2.0.0", "1.0.0"], rows
    assert "(latest)" in page.split('data-version="2.0.0"')[1].split("</tr>")[0]
    assert re.search(r'data-version="1\.0\.0">.*?<td>1 <span class="meta">', page, re.S)  # file count
    assert 'href="/templates/multi/generate/?version=1.0.0"' in page
    assert "(2 versions)" in client.get("/templates/").content.decode()

    latest = client.get("/templates/multi/generate/").content.decode()
    assert 'name="p.port"' in latest and 'name="version" value="2.0.0"' in latest
    form = client.get("/templates/multi/generate/?version=1.0.0").content.decode()
    assert 'name="p.port"' not in form and 'value="old"' in form and "(latest: 2.0.0)" in form
    assert client.get("/templates/multi/generate/?version=9.9.9").status_code == 404
    with run_jobs():
        done = client.post(
            "/templates/multi/generate/",
            {"project": cast.project.pk, "version": "1.0.0", "p.name": "legacy", "action": "generate"},
        )
    assert done.status_code == 302, done.content.decode()[:2000]
    generated = GeneratedProject.objects.get(template__slug="multi")
    assert generated.template_version == "1.0.0" and generated.parameters == {"name": "legacy"}
