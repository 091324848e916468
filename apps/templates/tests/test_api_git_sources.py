"""Git templates through the API (issue 14 § git): a bare repository served over smart HTTP by the
tests' forge (`git http-backend`) and over file://, registered, its versions listed and generated,
a new tag synced (by request and by the beat task), a private repository read through a connection,
hostile input refused before git runs, an over-size repository refused, the token left nowhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.db import connection as db

from apps.projects.services import gitops
from apps.projects.services.connections import connection_create
from apps.templates.models import ProjectTemplate
from apps.templates.services.sources import git as git_source
from apps.templates.tasks import sync_git_templates
from tests.forge.fixtures import ALICE_TOKEN

pytestmark = pytest.mark.django_db

MANIFEST = (
    "slug: greeter\nname: Greeter\ndescription: Says hello.\nversion: '{version}'\nparameters:\n  type: object\n"
    "  properties:\n    who: {{type: string, default: world, description: Whom to greet.}}\n"
)


def files(version: str, prefix: str = "tpl/") -> dict[str, str]:
    return {
        f"{prefix}template.yaml": MANIFEST.format(version=version),
        f"{prefix}hello.txt": f"Hello {{{{ who }}}} from {version}\n",
    }


def generate(client, cast, run_jobs, slug: str, version: str | None, who: str = "kiln") -> str:  # type: ignore[no-untyped-def]
    """Generate `version` of `slug` (None: the default) in alice's project; the text of hello.txt."""
    body = {"template": slug, "parameters": {"who": who}}
    if version is not None:
        body["version"] = version
    base = f"/api/v1/projects/{cast.project.pk}/generated/"
    with run_jobs():
        created = client.post(base, body, format="json")
    assert created.status_code == 202, created.content
    detail = client.get(f"{base}{created.json()['id']}/").json()
    assert detail["status"] == "completed", detail["error"]
    listing = client.get(f"{base}{detail['id']}/files/").json()["results"]
    [hello] = [f for f in listing if f["path"] == "hello.txt"]
    content = client.get(f"{base}{detail['id']}/files/{hello['id']}/content/")
    return b"".join(content.streaming_content).decode()


def test_register_list_generate_sync_generate_over_http(cast, api, run_jobs, github_forge):
    github_forge.create_repo_directly("acme/templates", "alice")
    url = github_forge.clone_url("acme/templates")
    first = github_forge.seed_commit("acme/templates", files={"README.md": "not the template\n", **files("1.0.0")})
    github_forge.tag("acme/templates", "v1.0.0", first, message="v1.0.0")
    github_forge.tag("acme/templates", "release-candidate", first)
    second = github_forge.seed_commit("acme/templates", files=files("1.1.0"))
    github_forge.tag("acme/templates", "1.1.0", second)
    client = api(cast.alice)

    response = client.post("/api/v1/templates/", {"git": {"url": url, "subdirectory": "tpl"}}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["slug"], body["source"]) == ("greeter", "git")  # template.yaml's slug (of the newest version)
    assert body["git"]["url"] == url and body["git"]["subdirectory"] == "tpl" and body["git"]["last_synced_at"]
    versions = client.get("/api/v1/templates/greeter/versions/").json()["results"]
    assert [(v["version"], v["commit"]) for v in versions] == [("1.1.0", second), ("v1.0.0", first)]

    assert generate(client, cast, run_jobs, "greeter", "v1.0.0") == "Hello kiln from 1.0.0\n"
    assert generate(client, cast, run_jobs, "greeter", None) == "Hello kiln from 1.1.0\n"  # the latest

    third = github_forge.seed_commit("acme/templates", files=files("1.2.0"))
    github_forge.tag("acme/templates", "v1.2.0", third)
    synced = client.post("/api/v1/templates/greeter/sync/")
    assert synced.status_code == 200, synced.content
    assert synced.json() == {"added": ["v1.2.0"], "skipped": []}
    assert client.post("/api/v1/templates/greeter/sync/").json() == {"added": [], "skipped": []}
    assert generate(client, cast, run_jobs, "greeter", "v1.2.0") == "Hello kiln from 1.2.0\n"
    assert client.get("/api/v1/templates/greeter/").json()["latest_version"] == "v1.2.0"

    # beat's task records what the repository gained since
    fourth = github_forge.seed_commit("acme/templates", files=files("2.0.0"))
    github_forge.tag("acme/templates", "2.0.0", fourth)
    broken = github_forge.seed_commit("acme/templates", files={"tpl/template.yaml": "name: [broken\n"})
    github_forge.tag("acme/templates", "3.0.0", broken)  # not a template: skipped and reported, the rest recorded
    assert git_source.sync_all(budget=-1) == {"greeter": {"deferred": True}}  # past its time: left for the next run
    assert sync_git_templates() == {"greeter": {"added": ["2.0.0"], "skipped": ["3.0.0"]}}
    assert generate(client, cast, run_jobs, "greeter", "2.0.0", who="beat") == "Hello beat from 2.0.0\n"
    again = client.post("/api/v1/templates/greeter/sync/").json()
    assert again["added"] == [] and [(s["version"], s["code"]) for s in again["skipped"]] == [
        ("3.0.0", "template_invalid")
    ]
    assert "template.yaml" in again["skipped"][0]["message"]

    # only the owner (or staff) syncs; other sources have nothing to sync from
    denied = api(cast.dave).post("/api/v1/templates/greeter/sync/")
    assert (denied.status_code, denied.json()["code"]) == (403, "template_not_owner")
    unsupported = client.post("/api/v1/templates/python-package/sync/")
    assert (unsupported.status_code, unsupported.json()["code"]) == (400, "sync_unsupported")
    body = {"git": {"url": url, "subdirectory": "tpl"}, "slug": "greeter"}
    taken = client.post("/api/v1/templates/", body, format="json")
    assert (taken.status_code, taken.json()["code"]) == (400, "template_exists")
    # all or nothing: the newest tag (3.0.0) is no template, so registering the repository again fails naming it
    broken = client.post(
        "/api/v1/templates/", {"git": {"url": url, "subdirectory": "tpl"}, "slug": "again"}, format="json"
    )
    assert (broken.status_code, broken.json()["code"], broken.json()["extra"]["version"]) == (
        400,
        "template_invalid",
        "3.0.0",
    )
    assert "template.yaml" in broken.json()["message"] and not ProjectTemplate.objects.filter(slug="again").exists()


def test_file_url_where_allowed_and_a_repository_without_version_tags(
    cast, api, run_jobs, github_forge, settings, make_template, monkeypatch
):
    github_forge.create_repo_directly("acme/plain", "alice")
    head = github_forge.seed_commit("acme/plain", files=files("0.1.0", prefix=""))
    client = api(cast.alice)
    url = f"file://{github_forge.repo_path('acme/plain')}"
    response = client.post("/api/v1/templates/", {"git": {"url": url}, "slug": "plain"}, format="json")
    assert response.status_code == 201, response.content
    [version] = client.get("/api/v1/templates/plain/versions/").json()["results"]
    assert (version["version"], version["commit"]) == (head[:7], head)
    assert generate(client, cast, run_jobs, "plain", head[:7]) == "Hello kiln from 0.1.0\n"
    newer = github_forge.seed_commit("acme/plain", files=files("0.2.0", prefix=""))
    assert client.post("/api/v1/templates/plain/sync/").json()["added"] == [newer[:7]]

    assert git_source.registered(git_source.clean_location({"url": url})).slug == "plain"

    # a Copier template names nothing: the folder's name is the slug; formats detect the format
    copier = {
        "copier-tpl/copier.yml": "who:\n  type: str\n  default: world\n  help: Whom to greet.\n",
        "copier-tpl/hello.txt.jinja": "Hello {{ who }} from copier\n",
    }
    github_forge.tag("acme/plain", "v0.3.0", github_forge.seed_commit("acme/plain", files=copier))
    response = client.post("/api/v1/templates/", {"git": {"url": url, "subdirectory": "copier-tpl"}}, format="json")
    assert response.status_code == 201, response.content
    assert (response.json()["slug"], response.json()["format"]) == ("copier-tpl", "copier")
    assert generate(client, cast, run_jobs, "copier-tpl", "v0.3.0") == "Hello kiln from copier\n"
    assert git_source.registered(git_source.clean_location({"url": url, "subdirectory": "x"})) is None

    # a template of that slug made by someone else between the check and the recording is not added to
    real_listing = git_source.remote_versions

    def listing_then_someone_else_registers(*args, **kwargs):  # type: ignore[no-untyped-def]
        found = real_listing(*args, **kwargs)
        make_template({"a.txt": "a"}, slug="raced")
        return found

    monkeypatch.setattr(git_source, "remote_versions", listing_then_someone_else_registers)
    raced = client.post("/api/v1/templates/", {"git": {"url": url}, "slug": "raced"}, format="json")
    assert (raced.status_code, raced.json()["code"]) == (400, "template_exists")
    assert ProjectTemplate.objects.get(slug="raced").versions.count() == 1
    monkeypatch.undo()

    settings.KILN_ALLOW_FILE_REMOTES = False
    refused = client.post("/api/v1/templates/", {"git": {"url": url}, "slug": "plain-2"}, format="json")
    assert (refused.status_code, refused.json()["code"]) == (400, "remote_url_not_allowed")
    stale = client.post("/api/v1/templates/plain/sync/")  # the rule is checked again at every sync
    assert (stale.status_code, stale.json()["code"]) == (400, "remote_url_not_allowed")


def _database_text() -> str:
    """Every row of every table, as text (PostgreSQL or SQLite)."""
    chunks = []
    with db.cursor() as cursor:
        for table in db.introspection.table_names():
            if db.vendor == "postgresql":
                cursor.execute(f'SELECT CAST(t AS text) FROM "{table}" t')  # noqa: S608 - introspected names
            else:
                cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - introspected names
            chunks.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(chunks)


def test_private_repository_through_a_connection_and_the_token_left_nowhere(
    cast, api, run_jobs, github_forge, settings, caplog
):
    github_forge.create_repo_directly("acme/private-tpl", "alice", private=True)
    commit = github_forge.seed_commit("acme/private-tpl", files=files("1.0.0", prefix=""))
    github_forge.tag("acme/private-tpl", "v1.0.0", commit)
    url = github_forge.clone_url("acme/private-tpl")
    client = api(cast.alice)

    anonymous = client.post("/api/v1/templates/", {"git": {"url": url}}, format="json")
    assert (anonymous.status_code, anonymous.json()["code"]) == (400, "invalid_token")
    assert anonymous.json()["extra"]["reason"] == "credentials_required"
    assert [r[0] for r in github_forge.git_requests] == [401]  # the forge asked for credentials
    assert not ProjectTemplate.objects.filter(source="git").exists()

    mine = connection_create(owner=cast.alice, provider="github", name="forge", token=ALICE_TOKEN)
    theirs = connection_create(owner=cast.dave, provider="github", name="forge", token="CANARY-dave-0000")
    other = client.post("/api/v1/templates/", {"git": {"url": url, "connection": theirs.pk}}, format="json")
    assert (other.status_code, other.json()["code"]) == (400, "connection_not_found")

    body = {"git": {"url": url, "connection": mine.pk}, "slug": "private-tpl"}
    response = client.post("/api/v1/templates/", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["git"]["connection"] == mine.pk
    assert generate(client, cast, run_jobs, "private-tpl", "v1.0.0") == "Hello kiln from 1.0.0\n"
    github_forge.tag("acme/private-tpl", "v1.0.1", commit)
    assert client.post("/api/v1/templates/private-tpl/sync/").json()["added"] == ["v1.0.1"]
    assert {user for *_, user in github_forge.git_requests} == {None, "x-access-token"}

    assert ALICE_TOKEN not in _database_text()
    assert all(ALICE_TOKEN not in record.getMessage() for record in caplog.records)
    for root in (settings.GENERATED_PROJECTS_DIR, settings.KILN_TEMPLATES_DIR, settings.KILN_TEMPLATE_CACHE_DIR):
        for path in Path(root).rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert ALICE_TOKEN.encode() not in path.read_bytes(), path
    scratch = Path(settings.GENERATED_PROJECTS_DIR) / ".scratch"
    assert not scratch.exists() or not any(scratch.iterdir())  # no scratch repository (nor its .git/config) left


HOSTILE = [
    {"url": "ext::sh -c touch% /tmp/kiln-pwned"},
    {"url": "--upload-pack=touch /tmp/kiln-pwned"},
    {"url": "-x"},
    {"url": "https://example.com/t.git", "ref": "--upload-pack=touch /tmp/kiln-pwned"},
    {"url": "https://example.com/t.git", "ref": "-x"},
    {"url": "https://example.com/t.git", "ref": "refs/../heads/main"},
    {"url": "https://example.com/t.git", "subdirectory": "../../etc"},
]


def test_hostile_input_is_refused_before_git_runs_and_over_budget_repositories_are_refused(
    cast, api, github_forge, settings, monkeypatch
):
    client = api(cast.alice)
    real_popen = gitops.subprocess.Popen

    def no_git(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError(f"git ran: {args}")

    monkeypatch.setattr(gitops.subprocess, "Popen", no_git)
    for location in HOSTILE:
        response = client.post("/api/v1/templates/", {"git": location}, format="json")
        assert response.status_code == 400, location
        assert response.json()["code"] in ("remote_url_not_allowed", "invalid_ref", "validation_error"), location
    assert not os.path.exists("/tmp/kiln-pwned")
    monkeypatch.setattr(gitops.subprocess, "Popen", real_popen)

    github_forge.create_repo_directly("acme/huge", "alice")
    commit = github_forge.seed_commit(
        "acme/huge", files={"template.yaml": MANIFEST.format(version="1"), "blob.bin": os.urandom(300_000)}
    )
    github_forge.tag("acme/huge", "v1", commit)
    settings.KILN_TEMPLATE_UPLOAD_MAX_UNCOMPRESSED = 100_000
    response = client.post("/api/v1/templates/", {"git": {"url": github_forge.clone_url("acme/huge")}}, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "template_too_large")
    assert not ProjectTemplate.objects.filter(source="git").exists()
