"""GitHub exports against the forge played by the letter of GitHub's REST docs.

An emulator written from the docs judges Kiln's exports, so these tests switch the local
forge to what the docs promise and no more (`forge.github_knobs`: no `GET
/repositories/{id}`, the documented `already_exists` code, API links that do not lead back)
and answer with the documented rate-limit and authentication errors (`github_api.inject_*`).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.projects.models import RepositoryExport
from apps.projects.services import exports
from apps.projects.services.export_providers import github as github_module
from apps.projects.tests.test_exports_forge import connect, expected_tree, export, pushed_tree
from tests.forge import github_api
from tests.forge.fixtures import ALICE_TOKEN, BOB_TOKEN

pytestmark = pytest.mark.django_db

CREATE = r"/api/v3/(user|orgs/[^/]+)/repos$"


def creates(forge):
    return forge.find_requests("POST", CREATE)


def receive_packs(forge):
    return [r for r in forge.git_requests if r[1] == "POST" and r[2].endswith("/git-receive-pack")]


def by_id_requests(forge):
    return forge.find_requests(None, r"^/api/v3/repositories/")


def body(conn, **repository):
    return {"provider": "github", "connection": conn, "repository": repository}


class WorkerKilled(BaseException):
    pass


def created_then_killed(cast, generated, conn, monkeypatch, repository):
    """An export whose worker died after creating (and recording) the repository, before the push."""

    def die(*args, **kwargs):
        raise WorkerKilled()

    row = exports.repository_export_start(
        generated=generated, data=body(conn, **repository), actor=cast.alice, enqueue=False
    )
    with monkeypatch.context() as patch:
        patch.setattr(github_module, "build_and_push", die)
        with pytest.raises(WorkerKilled):
            exports.repository_export_execute(export_id=row.pk, owner="host-a:1:first")
    row.refresh_from_db()
    assert row.status == "running" and row.remote_repo_id and row.remote_full_name
    RepositoryExport.objects.filter(pk=row.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    return row


# ----------------------------------------------------------------------------- finding 2: adopting by name


def test_the_forge_does_not_serve_repositories_by_id_by_default(github_forge):
    assert github_forge.github_knobs.repositories_by_id is False


def test_a_redelivered_export_adopts_its_repository_by_full_name(api, cast, generated, github_forge, monkeypatch):
    conn = connect(api, cast.alice, github_forge, "github")
    row = created_then_killed(cast, generated, conn, monkeypatch, {"name": "killed"})

    final, _ = exports.repository_export_execute(export_id=row.pk, owner="host-b:2:second")

    assert final.status == "completed", final.error
    assert final.remote_repo_id == str(github_forge.repos["alice/killed"].id)
    assert len(creates(github_forge)) == 1
    assert by_id_requests(github_forge) == []
    assert [r.status for r in github_forge.find_requests("GET", r"^/api/v3/repos/alice/killed$")] == [200]
    assert github_forge.refs("alice/killed") == {"refs/heads/main": final.commit_sha}
    assert pushed_tree(github_forge, "alice/killed", None) == expected_tree(generated)


def test_retrying_a_failed_export_adopts_its_repository(api, cast, generated, run_jobs, github_forge):
    github_forge.inject("POST", r"/git-receive-pack$", 403, "forbidden", times=None)
    conn = connect(api, cast.alice, github_forge, "github")
    failed = export(api, cast.alice, cast, generated, body(conn, name="again"), run_jobs)
    assert failed["status"] == "failed", failed
    github_forge.clear_faults()

    url = f"/api/v1/projects/{cast.project.pk}/generated/{generated.pk}/exports/{failed['id']}/"
    with run_jobs():
        assert api(cast.alice).post(f"{url}retry/").status_code == 202
    detail = api(cast.alice).get(url).json()

    assert detail["status"] == "completed", detail
    assert len(creates(github_forge)) == 1
    assert by_id_requests(github_forge) == []
    assert github_forge.refs("alice/again") == {"refs/heads/main": detail["commit_sha"]}


def test_a_renamed_repository_is_looked_up_by_id_only_as_a_last_resort(
    api,
    cast,
    generated,
    github_forge,
    monkeypatch,
):
    github_forge.github_knobs.repositories_by_id = True
    conn = connect(api, cast.alice, github_forge, "github")
    row = created_then_killed(cast, generated, conn, monkeypatch, {"name": "before"})
    repo = github_forge.repos["alice/before"]
    github_forge.rename_repo(repo, "after", "after")

    final, _ = exports.repository_export_execute(export_id=row.pk, owner="host-b:2:second")

    assert final.status == "completed", final.error
    assert final.remote_full_name == "alice/after"
    lookups = [(r.path, r.status) for r in github_forge.requests if r.method == "GET" and "/repos" in r.path]
    assert lookups[-2:] == [("/api/v3/repos/alice/before", 404), (f"/api/v3/repositories/{repo.id}", 200)]
    assert github_forge.refs("alice/after") == {"refs/heads/main": final.commit_sha}
    assert len(creates(github_forge)) == 1


def test_a_renamed_repository_without_the_undocumented_lookup_fails_without_pushing(
    api,
    cast,
    generated,
    github_forge,
    monkeypatch,
):
    conn = connect(api, cast.alice, github_forge, "github")
    row = created_then_killed(cast, generated, conn, monkeypatch, {"name": "before"})
    github_forge.rename_repo(github_forge.repos["alice/before"], "after", "after")

    final, _ = exports.repository_export_execute(export_id=row.pk, owner="host-b:2:second")

    assert final.status == "failed"
    assert final.error["code"] == "not_found"
    assert len(creates(github_forge)) == 1
    assert receive_packs(github_forge) == []
    assert github_forge.refs("alice/after") == {}


def test_a_name_reused_by_another_repository_is_not_adopted(api, cast, generated, github_forge, monkeypatch):
    conn = connect(api, cast.alice, github_forge, "github")
    row = created_then_killed(cast, generated, conn, monkeypatch, {"name": "reused"})
    github_forge.rename_repo(github_forge.repos["alice/reused"], "moved", "moved")
    github_forge.create_repo_directly("alice/reused", "alice", seed=True)
    before = github_forge.refs("alice/reused")

    final, _ = exports.repository_export_execute(export_id=row.pk, owner="host-b:2:second")

    assert final.status == "failed"
    assert final.error["code"] == "not_found"
    assert github_forge.refs("alice/reused") == before
    assert receive_packs(github_forge) == []


# ----------------------------------------------------------------------------- findings 4 and 8: name clashes


@pytest.mark.parametrize("style", github_api.NAME_EXISTS_STYLES)
def test_a_foreign_repository_is_name_taken_in_either_documented_shape(
    api,
    cast,
    generated,
    run_jobs,
    github_forge,
    style,
):
    github_forge.github_knobs.name_exists = style
    github_forge.create_repo_directly("alice/taken", "alice", seed=True)
    before = github_forge.refs("alice/taken")
    conn = connect(api, cast.alice, github_forge, "github")

    detail = export(api, cast.alice, cast, generated, body(conn, name="taken"), run_jobs)

    assert detail["status"] == "failed", detail
    assert detail["error"]["code"] == "name_taken"
    [create] = creates(github_forge)
    assert create.status == 422
    if style == "already_exists":
        assert create.response["errors"] == [{"resource": "Repository", "code": "already_exists", "field": "name"}]
    assert github_forge.refs("alice/taken") == before
    assert receive_packs(github_forge) == []


@pytest.mark.parametrize("style", github_api.NAME_EXISTS_STYLES)
def test_exporting_twice_adopts_with_either_clash_shape(api, cast, generated, run_jobs, github_forge, style):
    github_forge.github_knobs.name_exists = style
    conn = connect(api, cast.alice, github_forge, "github")
    first = export(api, cast.alice, cast, generated, body(conn, name="twice"), run_jobs)
    second = export(api, cast.alice, cast, generated, body(conn, name="twice"), run_jobs)

    assert first["status"] == second["status"] == "completed", (first, second)
    assert first["pushed"] is True and second["pushed"] is False
    assert [r.status for r in creates(github_forge)] == [201, 422]
    assert list(github_forge.repos) == ["alice/twice"]
    assert len(receive_packs(github_forge)) == 1


@pytest.mark.parametrize("style", github_api.NAME_EXISTS_STYLES)
def test_a_clash_with_a_repository_the_token_cannot_see_is_name_taken(
    api,
    cast,
    generated,
    run_jobs,
    github_forge,
    style,
):
    """GitHub answers 404 for a private repository the token cannot read (org base permission none)."""
    github_forge.github_knobs.name_exists = style
    github_forge.create_repo_directly("acme/hidden", "alice", private=True, seed=True)
    before = github_forge.refs("acme/hidden")
    github_forge.inject("GET", r"^/api/v3/repos/acme/hidden$", 404, {"message": "Not Found"}, times=None)
    conn = connect(api, cast.alice, github_forge, "github")

    detail = export(api, cast.alice, cast, generated, body(conn, owner="acme", name="hidden"), run_jobs)

    assert detail["status"] == "failed", detail
    assert detail["error"]["code"] == "name_taken"
    assert detail["error"]["extra"]["repository"] == "acme/hidden"
    assert [r.status for r in creates(github_forge)] == [422]
    assert receive_packs(github_forge) == []
    assert github_forge.refs("acme/hidden") == before


def test_a_422_that_is_not_a_clash_is_not_name_taken(api, cast, generated, run_jobs, github_forge):
    github_forge.inject(
        "POST",
        r"/user/repos$",
        422,
        {"message": "Validation Failed", "errors": [{"resource": "Repository", "code": "invalid", "field": "name"}]},
    )
    conn = connect(api, cast.alice, github_forge, "github")

    detail = export(api, cast.alice, cast, generated, body(conn, name="fine"), run_jobs)

    assert detail["status"] == "failed", detail
    assert detail["error"]["code"] == "provider_error"
    assert len(creates(github_forge)) == 1
    assert github_forge.repos == {}


def test_a_422_without_details_is_decided_by_looking_the_repository_up(
    api,
    cast,
    generated,
    run_jobs,
    github_forge,
):
    github_forge.create_repo_directly("alice/bare", "alice", seed=True)
    github_forge.inject("POST", r"/user/repos$", 422, {"message": "Validation Failed"})
    conn = connect(api, cast.alice, github_forge, "github")

    detail = export(api, cast.alice, cast, generated, body(conn, name="bare"), run_jobs)

    assert detail["status"] == "failed", detail
    assert detail["error"]["code"] == "name_taken"
    assert github_forge.find_requests("GET", r"^/api/v3/repos/alice/bare$")
    assert receive_packs(github_forge) == []


# ----------------------------------------------------------------------------- finding 5: rate limits


def test_a_primary_rate_limit_is_recognised_by_its_headers_whatever_the_message(
    api,
    cast,
    generated,
    run_jobs,
    github_forge,
):
    github_api.inject_primary_rate_limit(
        github_forge, "POST", r"/user/repos$", message="Something went sideways.", reset_in=0
    )
    conn = connect(api, cast.alice, github_forge, "github")

    detail = export(api, cast.alice, cast, generated, body(conn, name="limited"), run_jobs)

    assert detail["status"] == "completed", detail
    assert [r.status for r in creates(github_forge)] == [403, 201]
    assert github_forge.refs("alice/limited") == {"refs/heads/main": detail["commit_sha"]}


@pytest.mark.parametrize("status", [403, 429])
def test_a_primary_rate_limit_resetting_in_an_hour_fails_as_rate_limited(
    api,
    cast,
    generated,
    run_jobs,
    github_forge,
    status,
):
    github_api.inject_primary_rate_limit(
        github_forge, "POST", r"/user/repos$", status=status, message="Nope.", reset_in=3600, times=None
    )
    conn = connect(api, cast.alice, github_forge, "github")

    detail = export(api, cast.alice, cast, generated, body(conn, name="later"), run_jobs)

    assert detail["status"] == "failed", detail
    assert detail["error"]["code"] == "rate_limited"
    assert 3000 <= detail["error"]["extra"]["retry_after"] <= 3600
    assert len(creates(github_forge)) == 1
    assert github_forge.repos == {}


@pytest.mark.parametrize("status", [403, 429])
def test_a_secondary_rate_limit_honours_retry_after_whatever_the_message(
    api,
    cast,
    generated,
    run_jobs,
    github_forge,
    status,
):
    github_api.inject_secondary_rate_limit(
        github_forge, "POST", r"/user/repos$", status=status, retry_after=0, message="Slow down, please."
    )
    conn = connect(api, cast.alice, github_forge, "github")

    detail = export(api, cast.alice, cast, generated, body(conn, name="slower"), run_jobs)

    assert detail["status"] == "completed", detail
    assert [r.status for r in creates(github_forge)] == [status, 201]


def test_a_secondary_rate_limit_without_retry_after_waits_a_minute(api, cast, generated, run_jobs, github_forge):
    github_api.inject_secondary_rate_limit(github_forge, "POST", r"/user/repos$", retry_after=None, times=None)
    conn = connect(api, cast.alice, github_forge, "github")

    detail = export(api, cast.alice, cast, generated, body(conn, name="minute"), run_jobs)

    assert detail["status"] == "failed", detail
    assert detail["error"]["code"] == "rate_limited"
    assert detail["error"]["extra"]["retry_after"] == 60
    assert len(creates(github_forge)) == 1


def test_a_plain_403_is_permission_denied_and_not_retried(api, cast, generated, run_jobs, github_forge):
    conn = connect(api, cast.alice, github_forge, "github", token=BOB_TOKEN)

    detail = export(api, cast.alice, cast, generated, body(conn, owner="acme", name="nope"), run_jobs)

    assert detail["status"] == "failed", detail
    assert detail["error"]["code"] == "permission_denied"
    assert [r.status for r in creates(github_forge)] == [403]
    assert github_forge.repos == {}


# ----------------------------------------------------------------------------- finding 6: every 401


def test_requires_authentication_is_invalid_token_and_not_retried(api, cast, generated, run_jobs, github_forge):
    github_api.inject_requires_authentication(github_forge, "POST", r"/user/repos$", times=None)
    conn = connect(api, cast.alice, github_forge, "github")

    detail = export(api, cast.alice, cast, generated, body(conn, name="x"), run_jobs)

    assert detail["status"] == "failed", detail
    assert detail["error"]["code"] == "invalid_token"
    assert "Requires authentication" in detail["error"]["message"]
    assert len(creates(github_forge)) == 1
    assert github_forge.repos == {}


def test_verify_maps_requires_authentication_to_invalid_token(api, cast, github_forge):
    github_api.inject_requires_authentication(github_forge, "GET", r"^/api/v3/user$")
    conn = connect(api, cast.alice, github_forge, "github")

    response = api(cast.alice).post(f"/api/v1/connections/{conn}/verify/")

    assert response.status_code == 401, response.content
    assert response.json()["code"] == "invalid_token"
    assert len(github_forge.find_requests("GET", r"^/api/v3/user$")) == 1


# ----------------------------------------------------------------------------- finding 12: owner is the token's login


def test_an_owner_equal_to_the_own_login_creates_a_user_repository(api, cast, generated, run_jobs, github_forge):
    conn = connect(api, cast.alice, github_forge, "github")

    detail = export(api, cast.alice, cast, generated, body(conn, owner="Alice", name="mine"), run_jobs)

    assert detail["status"] == "completed", detail
    assert [r.path for r in creates(github_forge)] == ["/api/v3/user/repos"]
    assert github_forge.find_requests(None, r"^/api/v3/orgs/") == []
    assert RepositoryExport.objects.get(pk=detail["id"]).remote_full_name == "alice/mine"
    assert pushed_tree(github_forge, "alice/mine", None) == expected_tree(generated)


def test_own_login_as_owner_and_no_owner_name_the_same_repository(api, cast, generated, run_jobs, github_forge):
    conn = connect(api, cast.alice, github_forge, "github")
    first = export(api, cast.alice, cast, generated, body(conn, name="same"), run_jobs)
    second = export(api, cast.alice, cast, generated, body(conn, owner="alice", name="same"), run_jobs)

    assert first["status"] == second["status"] == "completed", (first, second)
    rows = RepositoryExport.objects.filter(pk__in=[first["id"], second["id"]])
    assert {row.remote_repo_id for row in rows} == {str(github_forge.repos["alice/same"].id)}
    assert second["pushed"] is False
    assert list(github_forge.repos) == ["alice/same"]


def test_internal_for_the_own_login_fails_before_creating(api, cast, generated, run_jobs, github_forge):
    conn = connect(api, cast.alice, github_forge, "github")

    detail = export(
        api, cast.alice, cast, generated, body(conn, owner="alice", name="inside", visibility="internal"), run_jobs
    )

    assert detail["status"] == "failed", detail
    assert detail["error"]["code"] == "validation_error"
    assert "repository.visibility" in detail["error"]["extra"]["fields"]
    assert creates(github_forge) == []


# ----------------------------------------------------------------------------- finding 13: internal needs an org


def test_internal_without_an_owner_is_a_400_naming_the_field(api, cast, generated, github_forge):
    conn = connect(api, cast.alice, github_forge, "github")
    url = f"/api/v1/projects/{cast.project.pk}/generated/{generated.pk}/exports/"

    response = api(cast.alice).post(url, body(conn, name="inside", visibility="internal"), format="json")

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "validation_error"
    assert list(response.json()["extra"]["fields"]) == ["repository.visibility"]
    assert github_forge.requests == []
    assert not RepositoryExport.objects.exists()


def test_internal_in_an_organisation_is_created_internal(api, cast, generated, run_jobs, github_forge):
    conn = connect(api, cast.alice, github_forge, "github")

    detail = export(
        api, cast.alice, cast, generated, body(conn, owner="acme", name="inside", visibility="internal"), run_jobs
    )

    assert detail["status"] == "completed", detail
    [create] = creates(github_forge)
    assert create.path == "/api/v3/orgs/acme/repos"
    assert create.json == {"name": "inside", "visibility": "internal", "auto_init": False}
    assert github_forge.repos["acme/inside"].visibility == "internal"


# ----------------------------------------------------------------------------- findings 14 and 15: headers, paths


def test_every_request_sends_a_bearer_token(api, cast, generated, run_jobs, github_forge):
    conn = connect(api, cast.alice, github_forge, "github")
    assert api(cast.alice).post(f"/api/v1/connections/{conn}/verify/").status_code == 200

    detail = export(api, cast.alice, cast, generated, body(conn, name="bearer", topics=["kiln"]), run_jobs)

    assert detail["status"] == "completed", detail
    assert len(github_forge.requests) >= 4
    assert {r.headers.get("authorization") for r in github_forge.requests} == {f"Bearer {ALICE_TOKEN}"}
    assert {r.headers.get("accept") for r in github_forge.requests} == {"application/vnd.github+json"}


def test_paths_are_built_from_names_not_from_links_in_responses(api, cast, generated, run_jobs, github_forge):
    github_forge.github_knobs.api_links = "https://api.github.com"
    conn = connect(api, cast.alice, github_forge, "github")

    detail = export(
        api,
        cast.alice,
        cast,
        generated,
        body(conn, owner="acme", name="svc", topics=["kiln", "demo"], default_branch="trunk"),
        run_jobs,
    )

    assert detail["status"] == "completed", detail
    assert all(r.path.startswith("/api/v3/") and r.status < 400 for r in github_forge.requests), [
        (r.method, r.path, r.status) for r in github_forge.requests
    ]
    assert [(r.method, r.path) for r in github_forge.requests] == [
        ("GET", "/api/v3/user"),
        ("GET", "/api/v3/orgs/acme"),
        ("POST", "/api/v3/orgs/acme/repos"),
        ("PUT", "/api/v3/repos/acme/svc/topics"),
        ("PATCH", "/api/v3/repos/acme/svc"),
    ]
    assert github_forge.repos["acme/svc"].topics == ["kiln", "demo"]
    assert github_forge.repos["acme/svc"].default_branch == "trunk"
    assert github_forge.refs("acme/svc") == {"refs/heads/trunk": detail["commit_sha"]}
