"""GitLab exports against the forge played the way GitLab's REST docs allow, not only as Kiln's forge did.

Each test turns one of the forge's GitLab knobs (`forge.gitlab_knobs`, see
`tests/forge/gitlab_api.Knobs`) to a documented variant and asserts what the export
did: its status and error code, how many create requests went out, the default branch
the project ends with and how long Kiln waited on a 429.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import gitlab
import pytest
from gitlab.exceptions import GitlabCreateError, GitlabError

from apps.projects.services import repository_exporter
from apps.projects.services.export_providers.gitlab import (
    is_clash,
    is_namespace_refusal,
)
from apps.projects.services.repository_exporter import retry_after_seconds as rate_limit_wait
from apps.projects.tests.test_exports_forge import connect
from apps.projects.tests.test_exports_forge import export as shared_export
from tests.forge.fixtures import ALICE_TOKEN

pytestmark = pytest.mark.django_db

CREATE = r"^/api/v4/projects$"
TAKEN = ["has already been taken"]


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """The waits `with_retries` asked for, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(repository_exporter, "time", SimpleNamespace(sleep=recorded.append, time=time.time))
    return recorded


def export(api, cast, generated, forge, repository: dict[str, Any], run_jobs) -> dict[str, Any]:
    conn = connect(api, cast.alice, forge, "gitlab")
    body = {"provider": "gitlab", "connection": conn, "repository": repository}
    return shared_export(api, cast.alice, cast, generated, body, run_jobs)


def creates(forge) -> list[Any]:
    return forge.find_requests("POST", CREATE)


def puts(forge) -> list[Any]:
    return forge.find_requests("PUT", r"^/api/v4/projects/[^/]+$")


def pushes(forge) -> list[Any]:
    return [r for r in forge.git_requests if r[1] == "POST" and "receive-pack" in r[2]]


def client(forge) -> gitlab.Gitlab:
    return gitlab.Gitlab(forge.api_url, private_token=ALICE_TOKEN, timeout=5, retry_transient_errors=False)


# ----------------------------------------------------------------------------- 429 (finding 1)


@pytest.mark.parametrize(
    ("retry_after", "reset_in", "low", "high"),
    [
        (7, 45, 7, 7),  # Retry-After wins over RateLimit-Reset
        (None, 30, 28, 31),  # only RateLimit-Reset (Unix time): wait until then
    ],
)
def test_gitlab_429_waits_as_the_headers_say(
    api, cast, generated, run_jobs, gitlab_forge, settings, sleeps, retry_after, reset_in, low, high
):
    settings.KILN_PROVIDER_MAX_WAIT = 60
    gitlab_forge.gitlab_knobs.rate_limit("POST", CREATE, retry_after=retry_after, reset_in=reset_in)
    detail = export(api, cast, generated, gitlab_forge, {"name": "limited"}, run_jobs)
    assert detail["status"] == "completed", detail
    assert [r.status for r in creates(gitlab_forge)] == [429, 201]
    assert len(sleeps) == 1
    assert low <= sleeps[0] <= high, sleeps
    assert gitlab_forge.refs("alice/limited")["refs/heads/main"] == detail["commit_sha"]


@pytest.mark.parametrize(("retry_after", "reset_in"), [(3600, None), (None, 3600)])
def test_gitlab_429_longer_than_the_cap_fails_rate_limited_without_sleeping(
    api, cast, generated, run_jobs, gitlab_forge, settings, sleeps, retry_after, reset_in
):
    settings.KILN_PROVIDER_MAX_WAIT = 60
    gitlab_forge.gitlab_knobs.rate_limit("POST", CREATE, times=None, retry_after=retry_after, reset_in=reset_in)
    detail = export(api, cast, generated, gitlab_forge, {"name": "later"}, run_jobs)
    assert detail["status"] == "failed"
    assert detail["error"]["code"] == "rate_limited"
    assert 3590 <= detail["error"]["extra"]["retry_after"] <= 3601
    assert len(creates(gitlab_forge)) == 1
    assert sleeps == []
    assert gitlab_forge.repos == {}


def test_gitlab_429_on_reading_the_user_is_retried_too(api, cast, generated, run_jobs, gitlab_forge, settings, sleeps):
    settings.KILN_PROVIDER_MAX_WAIT = 60
    gitlab_forge.gitlab_knobs.rate_limit("GET", r"^/api/v4/user$", retry_after=3)
    detail = export(api, cast, generated, gitlab_forge, {"name": "who"}, run_jobs)
    assert detail["status"] == "completed", detail
    assert sleeps == [3.0]
    assert [r.status for r in gitlab_forge.find_requests("GET", r"^/api/v4/user$")] == [429, 200]


def test_rate_limit_wait_reads_gitlab_headers():
    now = time.time()
    assert rate_limit_wait({"Retry-After": "12", "RateLimit-Reset": str(int(now) + 50)}) == 12
    assert 48 <= (rate_limit_wait({"RateLimit-Reset": str(int(now) + 50)}) or 0) <= 50
    assert rate_limit_wait({"RateLimit-Reset": str(int(now) - 10)}) == 0
    assert rate_limit_wait({"ratelimit-resettime": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + 90))})
    assert rate_limit_wait({"RateLimit-Limit": "2000"}) is None


# ----------------------------------------------------------------------------- clash (findings 3 and 8)


@pytest.mark.parametrize("clash_message", [None, "409 Conflict"])
def test_gitlab_409_on_a_foreign_project_is_name_taken(api, cast, generated, run_jobs, gitlab_forge, clash_message):
    gitlab_forge.gitlab_knobs.clash_status = 409
    gitlab_forge.gitlab_knobs.clash_message = clash_message
    gitlab_forge.create_repo_directly("alice/taken", "alice", seed=True)
    before = gitlab_forge.refs("alice/taken")
    detail = export(api, cast, generated, gitlab_forge, {"name": "taken"}, run_jobs)
    assert detail["status"] == "failed"
    assert detail["error"]["code"] == "name_taken"
    assert [r.status for r in creates(gitlab_forge)] == [409]
    assert gitlab_forge.refs("alice/taken") == before
    assert pushes(gitlab_forge) == []


def test_gitlab_409_after_an_ambiguous_create_adopts_the_project(api, cast, generated, run_jobs, gitlab_forge, sleeps):
    gitlab_forge.gitlab_knobs.clash_status = 409
    gitlab_forge.inject("POST", CREATE, 502, {"message": "502 Bad Gateway"}, times=1, run_handler=True)
    detail = export(api, cast, generated, gitlab_forge, {"name": "ghost"}, run_jobs)
    assert detail["status"] == "completed", detail
    assert [r.status for r in creates(gitlab_forge)] == [502, 409]
    assert len(sleeps) == 1  # one backoff after the 502
    assert list(gitlab_forge.repos) == ["alice/ghost"]
    assert gitlab_forge.refs("alice/ghost")["refs/heads/main"] == detail["commit_sha"]


@pytest.mark.parametrize("clash_status", [400, 409])
def test_gitlab_clash_with_a_subgroup_of_that_path_is_name_taken(
    api, cast, generated, run_jobs, gitlab_forge, clash_status
):
    gitlab_forge.gitlab_knobs.clash_status = clash_status
    gitlab_forge.add_group("acme/svc")
    detail = export(api, cast, generated, gitlab_forge, {"namespace": "acme", "name": "svc"}, run_jobs)
    assert detail["status"] == "failed"
    assert detail["error"]["code"] == "name_taken", detail["error"]
    assert [r.status for r in creates(gitlab_forge)] == [clash_status]
    assert gitlab_forge.find_requests("GET", r"^/api/v4/projects/acme%2Fsvc$")[0].status == 404
    assert gitlab_forge.repos == {}


def test_gitlab_clash_with_a_project_of_that_name_under_another_path_is_name_taken(
    api, cast, generated, run_jobs, gitlab_forge
):
    client(gitlab_forge).projects.create({"name": "svc", "path": "elsewhere"})
    detail = export(api, cast, generated, gitlab_forge, {"name": "svc"}, run_jobs)
    assert detail["status"] == "failed"
    assert detail["error"]["code"] == "name_taken"
    assert creates(gitlab_forge)[-1].response == {"message": {"name": TAKEN, "project_namespace.name": TAKEN}}
    assert list(gitlab_forge.repos) == ["alice/elsewhere"]


def _error(code: int, message: Any) -> GitlabError:
    return GitlabCreateError(error_message=message, response_code=code, response_body=b"")


@pytest.mark.parametrize(
    ("code", "message", "clash"),
    [
        (409, "409 Conflict", True),
        (409, {"name": TAKEN}, True),
        (400, {"name": TAKEN, "path": TAKEN, "project_namespace.name": TAKEN}, True),
        (400, {"path": TAKEN}, True),
        (400, {"project_namespace.name": TAKEN}, True),
        (400, {"name": ["can contain only letters"]}, False),
        (400, {"namespace": ["is not valid"]}, False),
        (400, {"limit_reached": ["Personal project creation is not allowed"]}, False),
        (422, {"name": TAKEN}, False),
    ],
)
def test_is_clash(code, message, clash):
    assert is_clash(_error(code, message)) is clash


@pytest.mark.parametrize(
    ("code", "message", "refused"),
    [
        (400, {"namespace": ["is not valid"]}, True),
        (403, "403 Forbidden", True),
        (400, {"path": TAKEN}, False),
        (404, "404 Namespace Not Found", False),
    ],
)
def test_is_namespace_refusal(code, message, refused):
    assert is_namespace_refusal(_error(code, message)) is refused


# ----------------------------------------------------------------------------- default branch (finding 7)


@pytest.mark.parametrize("initial", [None, "main"])
def test_default_branch_is_set_when_the_server_does_not_follow_the_push(
    api, cast, generated, run_jobs, gitlab_forge, initial
):
    knobs = gitlab_forge.gitlab_knobs
    knobs.first_push_sets_default = False
    knobs.initial_default_branch = initial
    detail = export(api, cast, generated, gitlab_forge, {"name": "trunked", "default_branch": "trunk"}, run_jobs)
    assert detail["status"] == "completed", detail
    assert gitlab_forge.refs("alice/trunked") == {"refs/heads/trunk": detail["commit_sha"]}
    assert [r.json for r in puts(gitlab_forge)] == [{"default_branch": "trunk"}]
    assert gitlab_forge.repos["alice/trunked"].default_branch == "trunk"
    assert client(gitlab_forge).projects.get("alice/trunked").default_branch == "trunk"


def test_no_update_when_the_default_branch_already_matches(api, cast, generated, run_jobs, gitlab_forge):
    gitlab_forge.gitlab_knobs.first_push_sets_default = False
    gitlab_forge.gitlab_knobs.initial_default_branch = "main"
    detail = export(api, cast, generated, gitlab_forge, {"name": "plain"}, run_jobs)
    assert detail["status"] == "completed", detail
    assert puts(gitlab_forge) == []
    assert gitlab_forge.repos["alice/plain"].default_branch == "main"


def test_gitlab_itself_makes_the_first_push_the_default_so_nothing_is_updated(
    api, cast, generated, run_jobs, gitlab_forge
):
    detail = export(api, cast, generated, gitlab_forge, {"name": "first", "default_branch": "trunk"}, run_jobs)
    assert detail["status"] == "completed", detail
    assert puts(gitlab_forge) == []
    assert gitlab_forge.repos["alice/first"].default_branch == "trunk"


def test_refused_default_branch_update_fails_the_export_clearly(api, cast, generated, run_jobs, gitlab_forge):
    gitlab_forge.gitlab_knobs.first_push_sets_default = False
    gitlab_forge.inject("PUT", r"^/api/v4/projects/\d+$", 403, {"message": "403 Forbidden"}, times=None)
    detail = export(api, cast, generated, gitlab_forge, {"name": "locked", "default_branch": "trunk"}, run_jobs)
    assert detail["status"] == "failed"
    assert detail["error"]["code"] == "permission_denied"
    assert "default branch" in detail["error"]["message"]
    assert len(puts(gitlab_forge)) == 1
    assert gitlab_forge.refs("alice/locked") == {"refs/heads/trunk": detail["commit_sha"]}


def test_a_400_right_after_the_push_is_retried_after_reading_the_project_again(
    api, cast, generated, run_jobs, gitlab_forge, settings, sleeps
):
    """GitLab's branch cache may not know the pushed branch for a moment: "Could not set the default branch"."""
    gitlab_forge.gitlab_knobs.first_push_sets_default = False
    gitlab_forge.inject("PUT", r"^/api/v4/projects/\d+$", 400, {"message": "Could not set the default branch"})
    detail = export(api, cast, generated, gitlab_forge, {"name": "later", "default_branch": "trunk"}, run_jobs)
    assert detail["status"] == "completed", detail
    assert [r.status for r in puts(gitlab_forge)] == [400, 200]
    assert len(sleeps) == 1
    assert gitlab_forge.repos["alice/later"].default_branch == "trunk"


# ----------------------------------------------------------------------------- project paths (finding 9)


@pytest.mark.parametrize(
    "name",
    [
        "_lead",
        "trail-",
        "trail_",
        "trail.",
        "a--b",
        "a._b",
        "a__b",
        "feed.atom",
        "Feed.ATOM",
        "repo.git",
        "badges",
        "Tree",
    ],
)
def test_paths_gitlab_rejects_are_400_at_request_time(api, cast, generated, gitlab_forge, name):
    conn = connect(api, cast.alice, gitlab_forge, "gitlab")
    url = f"/api/v1/projects/{cast.project.pk}/generated/{generated.pk}/exports/"
    response = api(cast.alice).post(
        url, {"provider": "gitlab", "connection": conn, "repository": {"name": name}}, format="json"
    )
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid_repo_name"
    assert list(body["extra"]["fields"]) == ["repository.name"]
    assert gitlab_forge.requests == []


@pytest.mark.parametrize("name", ["a", "A1", "my-svc", "my_svc.v2", "x.y-z_w"])
def test_paths_gitlab_accepts_export_with_name_and_path_equal(api, cast, generated, run_jobs, gitlab_forge, name):
    detail = export(api, cast, generated, gitlab_forge, {"name": name}, run_jobs)
    assert detail["status"] == "completed", detail
    sent = creates(gitlab_forge)[0].json
    assert (sent["name"], sent["path"]) == (name, name)


def test_the_forge_holds_paths_to_the_documented_rule(gitlab_forge):
    gl = client(gitlab_forge)
    for path in ("_lead", "trail-", "a--b", "a._b", "x.atom", "blob"):
        with pytest.raises(GitlabCreateError) as caught:
            gl.projects.create({"name": "ok", "path": path})
        assert caught.value.response_code == 400
        assert list(caught.value.error_message) == ["path"]
    gitlab_forge.gitlab_knobs.strict_paths = False
    assert gl.projects.create({"name": "ok", "path": "a--b"}).path == "a--b"


# ----------------------------------------------------------------------------- namespace refusal (finding 10)


@pytest.mark.parametrize(("namespace", "status"), [("acme", 400), ("acme", 403), (None, 400)])
def test_a_namespace_the_token_cannot_create_in_is_permission_denied(
    api, cast, generated, run_jobs, gitlab_forge, namespace, status
):
    knobs = gitlab_forge.gitlab_knobs
    knobs.no_create_in = {namespace or "alice"}
    knobs.no_create_status = status
    repository = {"name": "nope", **({"namespace": namespace} if namespace else {})}
    detail = export(api, cast, generated, gitlab_forge, repository, run_jobs)
    assert detail["status"] == "failed"
    assert detail["error"]["code"] == "permission_denied"
    assert "cannot create projects" in detail["error"]["message"]
    assert detail["error"]["extra"]["namespace"] == (namespace or "alice")
    assert [r.status for r in creates(gitlab_forge)] == [status]
    assert gitlab_forge.repos == {}


# ----------------------------------------------------------------------------- redirects


def test_a_redirect_to_another_origin_is_refused_and_the_token_stays_home(
    api, cast, generated, run_jobs, gitlab_forge, listener
):
    listener.body = b'{"id": 1, "username": "alice"}'
    gitlab_forge.inject("GET", r"^/api/v4/user$", 302, headers={"Location": listener.url("/api/v4/user")})

    detail = export(api, cast, generated, gitlab_forge, {"name": "redirected"}, run_jobs)

    assert detail["status"] == "failed", detail
    assert detail["error"]["code"] == "provider_error"
    assert "another origin" in detail["error"]["message"]
    assert listener.hits == []  # not followed at all, so the PRIVATE-TOKEN never left for that host
    assert creates(gitlab_forge) == []
