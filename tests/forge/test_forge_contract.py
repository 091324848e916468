"""Contract tests: the real clients (PyGithub, python-gitlab, git via GitPython) against the forge.

Each test pins what the client sends (method, path, JSON body, significant headers) and
what it raises, so a client upgrade that changes either breaks here first. The request
shapes are the ones forge.md §2.3 observed and PyGithub's own replay records describe
(checked against them, not copied).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import git
import gitlab
import pytest
import requests
from github import Auth, Github, GithubException, GithubRetry
from github.GithubException import BadCredentialsException, RateLimitExceededException, UnknownObjectException
from gitlab.exceptions import GitlabAuthenticationError, GitlabCreateError, GitlabGetError

from tests.forge import LocalForge, Recorded
from tests.forge.fixtures import ALICE_TOKEN, BOB_TOKEN
from tests.forge.model import GIT

EXISTS_BODY = {
    "message": "Repository creation failed.",
    "errors": [
        {
            "resource": "Repository",
            "code": "custom",
            "field": "name",
            "message": "name already exists on this account",
        }
    ],
    "documentation_url": "https://docs.github.com/rest/repos/repos#create-a-repository-for-the-authenticated-user",
    "status": "422",
}
BAD_CREDENTIALS = {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"}
TAKEN = ["has already been taken"]
AUTHOR = git.Actor("Kiln Test", "kiln@example.invalid")


# ----------------------------------------------------------------------------- helpers


def gh(forge: LocalForge, token: str = ALICE_TOKEN, **kwargs: Any) -> Github:
    options: dict[str, Any] = {"seconds_between_requests": None, "seconds_between_writes": None, "retry": None}
    options.update(kwargs)
    return Github(auth=Auth.Token(token), base_url=forge.api_url, **options)


def gl(forge: LocalForge, token: str = ALICE_TOKEN, **kwargs: Any) -> gitlab.Gitlab:
    # python-gitlab 8.6 takes obey_rate_limit / max_retries per request, not in the constructor.
    options: dict[str, Any] = {"retry_transient_errors": False, "timeout": 5}
    options.update(kwargs)
    return gitlab.Gitlab(forge.api_url, private_token=token, **options)


def only(forge: LocalForge) -> Recorded:
    assert len(forge.requests) == 1, forge.requests
    return forge.requests[0]


def shape(r: Recorded) -> tuple[str, str, Any, int]:
    return (r.method, r.path, r.json, r.status)


def absolute_urls(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from absolute_urls(item)
    elif isinstance(value, list):
        for item in value:
            yield from absolute_urls(item)
    elif isinstance(value, str) and "://" in value:
        yield value


def assert_urls_point_home(forge: LocalForge, payload: Any, minimum: int) -> None:
    urls = list(absolute_urls(payload))
    assert len(urls) >= minimum, urls
    for url in urls:
        if url.startswith("git://"):
            assert urlsplit(url).netloc == forge.host, url
        else:
            assert url.startswith(forge.base_url + "/"), url


def basic_env(forge: LocalForge, token: str, git_env: dict[str, str], username: str | None = None) -> dict[str, str]:
    user = username or forge.git_username
    header = "Authorization: Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()
    return {
        **git_env,
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"http.{forge.base_url}/.extraHeader",
        "GIT_CONFIG_VALUE_0": header,
    }


def local_repo(
    path: Path, git_env: dict[str, str], files: dict[str, bytes] | None = None, branch: str = "main"
) -> git.Repo:
    subprocess.run([GIT, "init", "-q", "-b", branch, str(path)], env={**os.environ, **git_env}, check=True)
    repo = git.Repo(path)
    for name, content in (files or {"README.md": b"# hello\n"}).items():
        (path / name).write_bytes(content)
        repo.index.add([name])
    repo.index.commit("Initial commit", author=AUTHOR, committer=AUTHOR)
    return repo


def push(repo: git.Repo, url: str, env: dict[str, str], branch: str = "main") -> None:
    remote = repo.create_remote("origin", url)
    remote.push(f"refs/heads/{branch}:refs/heads/{branch}", env=env, kill_after_timeout=60).raise_if_error()


# ----------------------------------------------------------------------------- the server itself


def test_forge_starts_in_milliseconds_and_stops_with_open_connections(tmp_path: Path) -> None:
    started = time.perf_counter()
    forge = LocalForge("github", tmp_path / "f").start()
    boot = time.perf_counter() - started
    forge.add_user("alice", ALICE_TOKEN)
    session = requests.Session()
    first = session.get(f"{forge.api_url}/user", headers={"Authorization": f"token {ALICE_TOKEN}"}, timeout=5)
    second = session.get(f"{forge.api_url}/user", headers={"Authorization": f"token {ALICE_TOKEN}"}, timeout=5)
    assert first.status_code == second.status_code == 200
    assert first.raw.version == 11  # HTTP/1.1 keep-alive; the session keeps its socket open
    stopping = time.perf_counter()
    forge.stop()
    assert time.perf_counter() - stopping < 0.5
    assert boot < 0.5
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{urlsplit(first.url).port}/api/v3/user", timeout=1)


def test_github_every_response_carries_rate_limit_and_media_headers(github_forge: LocalForge) -> None:
    ok = requests.get(f"{github_forge.api_url}/user", headers={"Authorization": f"token {ALICE_TOKEN}"}, timeout=5)
    missing = requests.get(
        f"{github_forge.api_url}/nope", headers={"Authorization": f"Bearer {ALICE_TOKEN}"}, timeout=5
    )
    for resp in (ok, missing):
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
        assert resp.headers["X-GitHub-Media-Type"] == "github.v3; format=json"
        for name in ("Limit", "Remaining", "Reset", "Used", "Resource"):
            assert f"X-RateLimit-{name}" in resp.headers
    assert ok.headers["X-RateLimit-Limit"] == "5000"
    assert int(missing.headers["X-RateLimit-Used"]) == int(ok.headers["X-RateLimit-Used"]) + 1
    assert missing.status_code == 404
    assert missing.json() == {
        "message": "Not Found",
        "documentation_url": "https://docs.github.com/rest",
        "status": "404",
    }


def test_gitlab_every_response_carries_ratelimit_headers(gitlab_forge: LocalForge) -> None:
    resp = requests.get(f"{gitlab_forge.base_url}/api/v4/user", headers={"PRIVATE-TOKEN": ALICE_TOKEN}, timeout=5)
    unknown = requests.get(f"{gitlab_forge.base_url}/api/v4/nope", headers={"PRIVATE-TOKEN": ALICE_TOKEN}, timeout=5)
    for r in (resp, unknown):
        for name in ("Limit", "Observed", "Remaining", "Reset", "ResetTime"):
            assert f"RateLimit-{name}" in r.headers
    assert 0 <= int(resp.headers["RateLimit-Reset"]) - time.time() <= 61
    assert unknown.status_code == 404 and unknown.json() == {"error": "404 Not Found"}


def test_every_absolute_url_in_created_objects_points_back_at_the_forge(
    github_forge: LocalForge, gitlab_forge: LocalForge
) -> None:
    g = gh(github_forge)
    user_repo = g.get_user().create_repo("urls", private=True)
    org_repo = g.get_organization("acme").create_repo("urls")
    assert_urls_point_home(github_forge, user_repo.raw_data, 40)
    assert_urls_point_home(github_forge, org_repo.raw_data, 60)
    assert_urls_point_home(github_forge, g.get_user().raw_data, 10)
    assert_urls_point_home(github_forge, g.get_organization("acme").raw_data, 7)

    client = gl(gitlab_forge)
    client.auth()
    assert client.user is not None
    tools = client.groups.get("acme/platform/tools")
    personal = client.projects.create({"name": "urls"})
    grouped = client.projects.create({"name": "urls", "namespace_id": tools.id})
    assert_urls_point_home(gitlab_forge, personal.asdict(), 12)
    assert_urls_point_home(gitlab_forge, grouped.asdict(), 10)
    assert_urls_point_home(gitlab_forge, client.user.asdict(), 2)
    assert_urls_point_home(gitlab_forge, client.groups.get(tools.id).asdict(), 10)
    assert_urls_point_home(gitlab_forge, client.namespaces.get("acme").asdict(), 1)


def test_forge_is_reachable_from_another_process(github_forge: LocalForge) -> None:
    """A Celery worker runs in a subprocess: nothing may depend on sharing the test's process."""
    code = (
        "import sys, urllib.request;"
        "r = urllib.request.Request(sys.argv[1], data=b'{\"name\": \"from-worker\"}', method='POST',"
        " headers={'Authorization': 'token ' + sys.argv[2]});"
        "print(urllib.request.urlopen(r, timeout=5).status)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, f"{github_forge.api_url}/user/repos", ALICE_TOKEN],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert out.stdout.strip() == "201"
    assert "alice/from-worker" in github_forge.repos


def test_concurrent_creates_of_one_name_make_exactly_one_repo(github_forge: LocalForge) -> None:
    results: list[int] = []
    lock = threading.Lock()

    def create() -> None:
        resp = requests.post(
            f"{github_forge.api_url}/user/repos",
            json={"name": "race"},
            headers={"Authorization": f"token {ALICE_TOKEN}"},
            timeout=10,
        )
        with lock:
            results.append(resp.status_code)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [201] + [422] * 7
    assert [name for name in github_forge.repos if name.lower() == "alice/race"] == ["alice/race"]


# ----------------------------------------------------------------------------- GitHub via PyGithub


def test_github_create_user_repo_sends_one_post(github_forge: LocalForge) -> None:
    repo = gh(github_forge).get_user().create_repo("demo", private=True, description="d", auto_init=False)
    req = only(github_forge)
    assert shape(req) == (
        "POST",
        "/api/v3/user/repos",
        {"name": "demo", "description": "d", "private": True, "auto_init": False},
        201,
    )
    assert req.headers["authorization"] == f"token {ALICE_TOKEN}"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["user-agent"] == "PyGithub/Python"
    assert req.headers["accept"] == "*/*"
    assert "x-github-api-version" not in req.headers
    assert (repo.full_name, repo.owner.login, repo.private, repo.default_branch) == (
        "alice/demo",
        "alice",
        True,
        "main",
    )
    assert repo.clone_url == f"{github_forge.base_url}/alice/demo.git"
    assert repo.html_url == f"{github_forge.base_url}/alice/demo"
    assert repo.url == f"{github_forge.api_url}/repos/alice/demo"
    assert repo.ssh_url == "git@127.0.0.1:alice/demo.git"
    assert (repo.size, repo.visibility, repo.topics, repo.organization) == (0, "private", [], None)
    assert github_forge.refs("alice/demo") == {}
    assert (github_forge.repo_path("alice/demo") / "HEAD").is_file()


def test_github_create_answers_201_with_location(github_forge: LocalForge) -> None:
    resp = requests.post(
        f"{github_forge.api_url}/user/repos",
        json={"name": "loc"},
        headers={"Authorization": f"token {ALICE_TOKEN}"},
        timeout=5,
    )
    assert resp.status_code == 201
    assert resp.headers["Location"] == f"{github_forge.api_url}/repos/alice/loc"
    body = resp.json()
    assert body["default_branch"] == "main" and body["pushed_at"] == body["created_at"]
    assert body["permissions"] == {"admin": True, "maintain": True, "push": True, "triage": True, "pull": True}


def test_github_create_org_repo_reads_org_then_posts_with_nebula_preview(github_forge: LocalForge) -> None:
    repo = gh(github_forge).get_organization("acme").create_repo("svc", private=False)
    first, second = github_forge.requests
    assert shape(first) == ("GET", "/api/v3/orgs/acme", None, 200)
    assert shape(second) == ("POST", "/api/v3/orgs/acme/repos", {"name": "svc", "private": False}, 201)
    assert second.headers["accept"] == "application/vnd.github.nebula-preview+json"
    assert repo.organization.login == "acme"
    assert repo.owner.type == "Organization"
    assert repo.full_name == "acme/svc"


def test_github_get_repo_is_one_eager_get(github_forge: LocalForge) -> None:
    github_forge.create_repo_directly("acme/svc", "alice")
    repo = gh(github_forge).get_repo("acme/svc")
    _ = (repo.clone_url, repo.default_branch, repo.owner.login, repo.private, repo.id, repo.created_at)
    assert shape(only(github_forge)) == ("GET", "/api/v3/repos/acme/svc", None, 200)


def test_github_name_clash_is_case_insensitive_422(github_forge: LocalForge) -> None:
    client = gh(github_forge)
    client.get_user().create_repo("demo")
    with pytest.raises(GithubException) as caught:
        client.get_user().create_repo("DEMO")
    assert type(caught.value) is GithubException
    assert caught.value.status == 422
    assert caught.value.data == EXISTS_BODY
    assert caught.value.data["errors"][0]["message"] == "name already exists on this account"
    assert list(github_forge.repos) == ["alice/demo"]


def test_github_foreign_repo_with_marker_clashes_and_is_readable(github_forge: LocalForge) -> None:
    github_forge.create_repo_directly(
        "alice/taken", "alice", description="someone else's", kiln_marker="export:1234", seed=True
    )
    client = gh(github_forge)
    with pytest.raises(GithubException) as caught:
        client.get_user().create_repo("taken")
    assert caught.value.status == 422
    existing = client.get_repo("alice/taken")
    assert existing.description == "someone else's export:1234"
    assert existing.size > 0
    assert set(github_forge.refs("alice/taken")) == {"refs/heads/main"}


def test_github_sanitises_names(github_forge: LocalForge) -> None:
    repo = gh(github_forge).get_user().create_repo("my repo!! ok")
    assert repo.name == "my-repo-ok"
    assert "alice/my-repo-ok" in github_forge.repos


def test_github_validation_errors(github_forge: LocalForge) -> None:
    headers = {"Authorization": f"token {ALICE_TOKEN}"}
    missing = requests.post(f"{github_forge.api_url}/user/repos", json={"private": True}, headers=headers, timeout=5)
    assert missing.status_code == 422
    assert missing.json()["message"] == "Validation Failed"
    assert missing.json()["errors"] == [{"resource": "Repository", "code": "missing_field", "field": "name"}]
    wrong_type = requests.post(
        f"{github_forge.api_url}/user/repos", json={"name": "x", "private": "yes"}, headers=headers, timeout=5
    )
    assert wrong_type.status_code == 422
    assert wrong_type.json()["errors"] == [{"resource": "Repository", "code": "invalid", "field": "private"}]
    broken = requests.post(f"{github_forge.api_url}/user/repos", data=b"{nope", headers=headers, timeout=5)
    assert broken.status_code == 400 and broken.json()["message"] == "Problems parsing JSON"
    assert github_forge.repos == {}


def test_github_bad_credentials(github_forge: LocalForge) -> None:
    with pytest.raises(BadCredentialsException) as caught:
        gh(github_forge, token="CANARY-wrong").get_user().create_repo("x")
    assert caught.value.status == 401
    assert caught.value.data == BAD_CREDENTIALS
    req = only(github_forge)
    assert (req.method, req.path, req.status) == ("POST", "/api/v3/user/repos", 401)
    assert github_forge.repos == {}


def test_github_missing_token_requires_authentication(github_forge: LocalForge) -> None:
    resp = requests.get(f"{github_forge.api_url}/user", timeout=5)
    assert resp.status_code == 401
    assert resp.json()["message"] == "Requires authentication"
    assert resp.headers["X-RateLimit-Limit"] == "60"


def test_github_injected_primary_rate_limit(github_forge: LocalForge) -> None:
    reset = str(int(time.time()) + 3600)
    github_forge.inject(
        "POST",
        r"/user/repos$",
        403,
        {"message": "API rate limit exceeded for user ID 1001.", "documentation_url": "https://docs.github.com/rest"},
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset},
    )
    with pytest.raises(RateLimitExceededException) as caught:
        gh(github_forge).get_user().create_repo("x")
    assert caught.value.status == 403
    assert caught.value.headers is not None
    assert caught.value.headers["x-ratelimit-remaining"] == "0"
    assert caught.value.headers["x-ratelimit-reset"] == reset
    assert github_forge.repos == {}
    # times=1: the next call goes through.
    gh(github_forge).get_user().create_repo("x")
    assert [r.status for r in github_forge.requests] == [403, 201]


def test_github_secondary_rate_limit_403_and_429(github_forge: LocalForge) -> None:
    body = {"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}
    github_forge.inject("POST", r"/user/repos$", 403, body, {"Retry-After": "0"})
    github_forge.inject("POST", r"/user/repos$", 429, body, {"Retry-After": "0"})
    client = gh(github_forge)
    with pytest.raises(RateLimitExceededException):
        client.get_user().create_repo("x")
    with pytest.raises(GithubException) as caught:
        client.get_user().create_repo("x")
    assert type(caught.value) is GithubException  # PyGithub only maps 403 to RateLimitExceeded
    assert caught.value.status == 429
    assert caught.value.headers is not None and caught.value.headers["retry-after"] == "0"


def test_github_retry_paths_run_in_milliseconds(github_forge: LocalForge) -> None:
    github_forge.inject("GET", r"/api/v3/user$", 502, {"message": "Server Error"}, times=2)
    client = gh(github_forge, retry=GithubRetry(total=3, backoff_factor=0, secondary_rate_wait=0))
    started = time.perf_counter()
    assert client.get_user().login == "alice"
    assert time.perf_counter() - started < 1
    assert [r.status for r in github_forge.requests] == [502, 502, 200]


def test_github_ambiguous_create_really_created_the_repo(github_forge: LocalForge) -> None:
    github_forge.inject("POST", r"/user/repos$", 502, {"message": "Server Error"}, run_handler=True)
    client = gh(github_forge)
    with pytest.raises(GithubException) as caught:
        client.get_user().create_repo("maybe")
    assert caught.value.status == 502
    assert "alice/maybe" in github_forge.repos
    assert client.get_repo("alice/maybe").size == 0


def test_github_unknown_and_invisible_repos_are_not_found(github_forge: LocalForge) -> None:
    github_forge.create_repo_directly("alice/secret", "alice", private=True)
    with pytest.raises(UnknownObjectException) as caught:
        gh(github_forge).get_repo("alice/nothing")
    assert caught.value.status == 404
    assert caught.value.data == {
        "message": "Not Found",
        "documentation_url": "https://docs.github.com/rest",
        "status": "404",
    }
    with pytest.raises(UnknownObjectException):
        gh(github_forge, token=BOB_TOKEN).get_repo("alice/secret")
    assert gh(github_forge).get_repo("ALICE/Secret").full_name == "alice/secret"


def test_github_org_membership_and_unknown_org(github_forge: LocalForge) -> None:
    bob = gh(github_forge, token=BOB_TOKEN)
    with pytest.raises(GithubException) as caught:
        bob.get_organization("acme").create_repo("x")
    assert caught.value.status == 403
    assert caught.value.data["message"] == "You need admin access to the organization before adding a repository to it."
    with pytest.raises(UnknownObjectException):
        bob.get_organization("nope")
    resp = requests.post(
        f"{github_forge.api_url}/orgs/nope/repos",
        json={"name": "x"},
        headers={"Authorization": f"token {BOB_TOKEN}"},
        timeout=5,
    )
    assert resp.status_code == 404 and resp.json()["message"] == "Not Found"
    assert github_forge.repos == {}


def test_github_topics_edit_and_delete(github_forge: LocalForge) -> None:
    client = gh(github_forge)
    repo = client.get_user().create_repo("t")
    github_forge.requests.clear()
    repo.replace_topics(["kiln", "Generated"])
    put = only(github_forge)
    assert shape(put) == ("PUT", "/api/v3/repos/alice/t/topics", {"names": ["kiln", "Generated"]}, 200)
    assert put.response == {"names": ["kiln", "generated"]}
    assert client.get_repo("alice/t").topics == ["kiln", "generated"]
    with pytest.raises(GithubException) as caught:
        repo.replace_topics(["not valid!"])
    assert caught.value.status == 422

    github_forge.requests.clear()
    repo.edit(description="new words")
    patch = only(github_forge)
    assert shape(patch) == ("PATCH", "/api/v3/repos/alice/t", {"name": "t", "description": "new words"}, 200)
    assert repo.description == "new words"

    # GET /repositories/{id} is not in the REST docs: off unless the knob serves it.
    with pytest.raises(UnknownObjectException):
        client.get_repo(repo.id)
    github_forge.github_knobs.repositories_by_id = True
    same = client.get_repo(repo.id)
    assert github_forge.requests[-1].path == f"/api/v3/repositories/{repo.id}"
    same.delete()
    assert github_forge.requests[-1].method == "DELETE" and github_forge.requests[-1].status == 204
    assert github_forge.repos == {}
    with pytest.raises(UnknownObjectException):
        client.get_repo("alice/t")


def test_github_default_branch_patch_needs_an_existing_branch(
    github_forge: LocalForge, tmp_path: Path, git_env: dict[str, str]
) -> None:
    client = gh(github_forge)
    repo = client.get_user().create_repo("branches")
    local = local_repo(tmp_path / "w", git_env, branch="develop")
    push(local, repo.clone_url, basic_env(github_forge, ALICE_TOKEN, git_env), branch="develop")
    # main was never pushed, so the first pushed branch became the default (as on GitHub).
    assert client.get_repo("alice/branches").default_branch == "develop"
    with pytest.raises(GithubException) as caught:
        repo.edit(default_branch="nope")
    assert caught.value.status == 422
    assert caught.value.data["errors"] == [{"resource": "Repository", "code": "invalid", "field": "default_branch"}]


def test_github_git_ref_endpoint(github_forge: LocalForge) -> None:
    client = gh(github_forge)
    repo = client.get_user().create_repo("refs")
    headers = {"Authorization": f"token {ALICE_TOKEN}"}
    empty = requests.get(f"{github_forge.api_url}/repos/alice/refs/git/ref/heads/main", headers=headers, timeout=5)
    assert empty.status_code == 409 and empty.json()["message"] == "Git Repository is empty."
    sha = github_forge.seed_commit("alice/refs")
    assert repo.get_git_ref("heads/main").object.sha == sha
    assert github_forge.requests[-1].path == "/api/v3/repos/alice/refs/git/ref/heads/main"
    plural = requests.get(f"{github_forge.api_url}/repos/alice/refs/git/refs/heads/main", headers=headers, timeout=5)
    assert plural.json()["object"]["sha"] == sha
    missing = requests.get(f"{github_forge.api_url}/repos/alice/refs/git/ref/heads/nope", headers=headers, timeout=5)
    assert missing.status_code == 404 and missing.json()["message"] == "Not Found"
    listing = requests.get(f"{github_forge.api_url}/repos/alice/refs/git/refs", headers=headers, timeout=5)
    assert [ref["ref"] for ref in listing.json()] == ["refs/heads/main"]
    prefix = requests.get(f"{github_forge.api_url}/repos/alice/refs/git/refs/heads", headers=headers, timeout=5)
    assert [ref["object"]["sha"] for ref in prefix.json()] == [sha]


def test_github_rename_moves_the_bare_repo_and_head_has_no_body(github_forge: LocalForge) -> None:
    client = gh(github_forge)
    repo = client.get_user().create_repo("before", auto_init=True)
    assert set(github_forge.refs("alice/before")) == {"refs/heads/main"}
    repo.edit(name="after")
    assert repo.full_name == "alice/after"
    assert list(github_forge.repos) == ["alice/after"]
    assert set(github_forge.refs("alice/after")) == {"refs/heads/main"}
    head = requests.head(
        f"{github_forge.api_url}/repos/alice/after", headers={"Authorization": f"token {ALICE_TOKEN}"}, timeout=5
    )
    assert head.status_code == 200 and head.content == b""
    with pytest.raises(UnknownObjectException):
        client.get_repo("alice/before")


def test_github_rate_limit_endpoint(github_forge: LocalForge) -> None:
    overview = gh(github_forge).get_rate_limit()
    assert overview.resources.core.limit == 5000
    assert only(github_forge).path == "/api/v3/rate_limit"


def test_github_knob_documented_already_exists_code(github_forge: LocalForge) -> None:
    github_forge.github_knobs.name_exists = "already_exists"
    client = gh(github_forge)
    client.get_user().create_repo("demo")
    with pytest.raises(GithubException) as caught:
        client.get_user().create_repo("Demo")
    assert caught.value.status == 422
    assert caught.value.data == {
        "message": "Validation Failed",
        "errors": [{"resource": "Repository", "code": "already_exists", "field": "name"}],
        "documentation_url": "https://docs.github.com/rest/repos/repos#create-a-repository-for-the-authenticated-user",
        "status": "422",
    }


def test_github_knob_api_links_point_elsewhere(github_forge: LocalForge) -> None:
    github_forge.github_knobs.api_links = "https://api.github.com"
    headers = {"Authorization": f"Bearer {ALICE_TOKEN}"}
    resp = requests.post(f"{github_forge.api_url}/orgs/acme/repos", json={"name": "svc"}, headers=headers, timeout=5)
    assert resp.status_code == 201
    body = resp.json()
    assert body["url"] == "https://api.github.com/repos/acme/svc"
    assert body["owner"]["url"] == "https://api.github.com/users/acme"
    assert resp.headers["Location"] == "https://api.github.com/repos/acme/svc"
    assert body["clone_url"] == github_forge.clone_url("acme/svc")  # git URLs still lead to the forge
    # A client following `url` leaves the /api/v3 prefix behind and misses.
    assert requests.get(f"{github_forge.base_url}/repos/acme/svc", headers=headers, timeout=5).status_code == 404


def test_github_injected_documented_limits_and_401(github_forge: LocalForge) -> None:
    from tests.forge import github_api

    github_api.inject_primary_rate_limit(github_forge, "GET", r"/user$", message="Anything at all.", reset_in=60)
    github_api.inject_secondary_rate_limit(github_forge, "GET", r"/user$", status=429, retry_after=7)
    github_api.inject_requires_authentication(github_forge, "GET", r"/user$")
    with pytest.raises(GithubException) as primary:
        gh(github_forge).get_user().login  # noqa: B018
    assert type(primary.value) is GithubException  # not message-based RateLimitExceeded
    assert primary.value.status == 403
    assert primary.value.headers is not None and primary.value.headers["x-ratelimit-remaining"] == "0"
    assert 0 < int(primary.value.headers["x-ratelimit-reset"]) - time.time() <= 61
    with pytest.raises(GithubException) as secondary:
        gh(github_forge).get_user().login  # noqa: B018
    assert secondary.value.status == 429 and secondary.value.headers is not None
    assert secondary.value.headers["retry-after"] == "7"
    assert int(secondary.value.headers["x-ratelimit-remaining"]) > 0
    with pytest.raises(GithubException) as unauthenticated:
        gh(github_forge).get_user().login  # noqa: B018
    assert type(unauthenticated.value) is GithubException  # PyGithub maps only "Bad credentials"
    assert unauthenticated.value.status == 401
    assert unauthenticated.value.data["message"] == "Requires authentication"
    assert gh(github_forge).get_user().login == "alice"


# ----------------------------------------------------------------------------- GitLab via python-gitlab


def test_python_gitlab_takes_rate_limit_options_per_request_not_in_the_constructor(gitlab_forge: LocalForge) -> None:
    """`gitlab.Gitlab(..., obey_rate_limit=False)` is a TypeError in 8.6 (kwargs go to the HTTP backend)."""
    with pytest.raises(TypeError):
        gitlab.Gitlab(gitlab_forge.api_url, private_token=ALICE_TOKEN, obey_rate_limit=False)


def test_gitlab_auth_without_url_warning(gitlab_forge: LocalForge) -> None:
    client = gl(gitlab_forge)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client.auth()
    assert [w for w in caught if issubclass(w.category, UserWarning)] == []
    assert client.user is not None and client.user.username == "alice"
    assert client.user.web_url == f"{gitlab_forge.base_url}/alice"
    req = only(gitlab_forge)
    assert shape(req) == ("GET", "/api/v4/user", None, 200)
    assert req.headers["private-token"] == ALICE_TOKEN
    assert req.headers["user-agent"] == f"python-gitlab/{gitlab.__version__}"
    assert req.headers["content-type"] == "application/json"


def test_gitlab_bearer_token_is_accepted(gitlab_forge: LocalForge) -> None:
    client = gitlab.Gitlab(gitlab_forge.api_url, oauth_token=ALICE_TOKEN, timeout=5)
    client.auth()
    assert only(gitlab_forge).headers["authorization"] == f"Bearer {ALICE_TOKEN}"


def test_gitlab_nested_group_and_namespace_paths_are_url_encoded(gitlab_forge: LocalForge) -> None:
    client = gl(gitlab_forge)
    group = client.groups.get("acme/platform/tools")
    namespace = client.namespaces.get("acme/platform/tools")
    assert [r.path for r in gitlab_forge.requests] == [
        "/api/v4/groups/acme%2Fplatform%2Ftools",
        "/api/v4/namespaces/acme%2Fplatform%2Ftools",
    ]
    assert group.id == namespace.id
    assert (group.full_path, group.full_name) == ("acme/platform/tools", "Acme / platform / Tools")
    assert (namespace.kind, namespace.parent_id) == ("group", client.groups.get("acme/platform").id)
    assert client.namespaces.get("alice").kind == "user"


def test_gitlab_namespaces_search_is_paginated(gitlab_forge: LocalForge) -> None:
    found = gl(gitlab_forge).namespaces.list(search="platform")
    assert [n.full_path for n in found] == ["acme/platform", "acme/platform/tools"]
    assert only(gitlab_forge).query == {"search": "platform"}
    resp = requests.get(
        f"{gitlab_forge.base_url}/api/v4/namespaces",
        params={"per_page": 2},
        headers={"PRIVATE-TOKEN": ALICE_TOKEN},
        timeout=5,
    )
    assert [n["full_path"] for n in resp.json()] == ["alice", "acme"]
    assert (resp.headers["X-Page"], resp.headers["X-Per-Page"], resp.headers["X-Total"]) == ("1", "2", "4")
    assert (resp.headers["X-Total-Pages"], resp.headers["X-Next-Page"], resp.headers["X-Prev-Page"]) == ("2", "2", "")
    assert resp.links["next"]["url"].startswith(f"{gitlab_forge.base_url}/api/v4/namespaces?")
    everything = gl(gitlab_forge).namespaces.list(per_page=2, get_all=True)
    assert len(everything) == 4


def test_gitlab_create_project_in_group(gitlab_forge: LocalForge) -> None:
    client = gl(gitlab_forge)
    tools = client.namespaces.get("acme/platform/tools")
    gitlab_forge.requests.clear()
    payload = {"name": "svc", "path": "svc", "namespace_id": tools.id, "visibility": "private", "description": "d"}
    project = client.projects.create(payload)
    req = only(gitlab_forge)
    assert shape(req) == ("POST", "/api/v4/projects", payload, 201)
    assert req.headers["content-type"] == "application/json"
    assert project.default_branch is None
    assert project.empty_repo is True
    assert project.path_with_namespace == "acme/platform/tools/svc"
    assert project.name_with_namespace == "Acme / platform / Tools / svc"
    assert project.http_url_to_repo == f"{gitlab_forge.base_url}/acme/platform/tools/svc.git"
    assert project.web_url == f"{gitlab_forge.base_url}/acme/platform/tools/svc"
    assert project.namespace["kind"] == "group" and project.namespace["full_path"] == "acme/platform/tools"
    assert project._links["self"] == f"{gitlab_forge.base_url}/api/v4/projects/{project.id}"
    assert gitlab_forge.refs("acme/platform/tools/svc") == {}
    assert client.projects.get("acme/platform/tools/svc").id == project.id
    assert gitlab_forge.requests[-1].path == "/api/v4/projects/acme%2Fplatform%2Ftools%2Fsvc"


def test_gitlab_personal_project_and_path_from_name(gitlab_forge: LocalForge) -> None:
    project = gl(gitlab_forge).projects.create({"name": "My Service"})
    assert (project.path, project.path_with_namespace) == ("my-service", "alice/my-service")
    assert project.namespace["kind"] == "user"
    assert project.owner["username"] == "alice"
    assert project.visibility == "private"


def test_gitlab_initialize_with_readme_has_a_default_branch(gitlab_forge: LocalForge) -> None:
    project = gl(gitlab_forge).projects.create({"name": "r", "initialize_with_readme": True, "default_branch": "trunk"})
    assert (project.default_branch, project.empty_repo) == ("trunk", False)
    assert set(gitlab_forge.refs("alice/r")) == {"refs/heads/trunk"}


def test_gitlab_form_encoded_create(gitlab_forge: LocalForge) -> None:
    resp = requests.post(
        f"{gitlab_forge.base_url}/api/v4/projects",
        data={"name": "form", "initialize_with_readme": "false"},
        headers={"PRIVATE-TOKEN": ALICE_TOKEN},
        timeout=5,
    )
    assert resp.status_code == 201
    assert only(gitlab_forge).json == {"name": "form", "initialize_with_readme": "false"}


def test_gitlab_name_taken_is_400_with_only_the_clashing_keys(gitlab_forge: LocalForge) -> None:
    client = gl(gitlab_forge)
    tools = client.groups.get("acme/platform/tools")
    client.projects.create({"name": "svc", "path": "svc", "namespace_id": tools.id})
    with pytest.raises(GitlabCreateError) as caught:
        client.projects.create({"name": "svc", "path": "svc", "namespace_id": tools.id})
    assert caught.value.response_code == 400
    assert caught.value.error_message == {"name": TAKEN, "path": TAKEN, "project_namespace.name": TAKEN}
    with pytest.raises(GitlabCreateError) as path_only:
        client.projects.create({"name": "Other name", "path": "SVC", "namespace_id": tools.id})
    assert path_only.value.error_message == {"path": TAKEN}
    with pytest.raises(GitlabCreateError) as invalid:
        client.projects.create({"name": "-bad", "path": "ok-path"})
    assert list(invalid.value.error_message) == ["name"]
    with pytest.raises(GitlabCreateError) as missing:
        client.projects.create({"visibility": "private"})
    assert missing.value.error_message == "name, path are missing, at least one parameter must be provided"


def test_gitlab_bad_token_is_authentication_error(gitlab_forge: LocalForge) -> None:
    client = gl(gitlab_forge, token="CANARY-wrong")
    with pytest.raises(GitlabAuthenticationError) as caught:
        client.projects.create({"name": "x"})
    assert caught.value.response_code == 401
    assert json.loads(caught.value.response_body or b"") == {"message": "401 Unauthorized"}
    with pytest.raises(GitlabAuthenticationError):
        client.auth()
    assert gitlab_forge.repos == {}


def test_gitlab_injected_429_and_python_gitlab_retries(gitlab_forge: LocalForge) -> None:
    client = gl(gitlab_forge)
    gitlab_forge.inject("POST", r"^/api/v4/projects$", 429, "Retry later\n", {"Retry-After": "0"})
    with pytest.raises(GitlabCreateError) as caught:
        client.projects.create({"name": "x"}, obey_rate_limit=False)
    assert caught.value.response_code == 429
    assert caught.value.error_message == "Retry later\n"
    assert gitlab_forge.requests[-1].headers["private-token"] == ALICE_TOKEN
    # With python-gitlab's default 429 handling, Retry-After: 0 keeps the retry instant.
    gitlab_forge.inject("POST", r"^/api/v4/projects$", 429, "Retry later\n", {"Retry-After": "0"}, times=2)
    started = time.perf_counter()
    project = client.projects.create({"name": "x"})
    assert time.perf_counter() - started < 1
    assert project.path == "x"
    assert [r.status for r in gitlab_forge.requests] == [429, 429, 429, 201]


def test_gitlab_membership_and_not_found_errors(gitlab_forge: LocalForge) -> None:
    bob = gl(gitlab_forge, token=BOB_TOKEN)
    tools_id = gl(gitlab_forge).groups.get("acme/platform/tools").id
    with pytest.raises(GitlabCreateError) as caught:
        bob.projects.create({"name": "x", "namespace_id": tools_id})
    assert (caught.value.response_code, caught.value.error_message) == (400, {"namespace": ["is not valid"]})
    with pytest.raises(GitlabCreateError) as unknown_ns:
        bob.projects.create({"name": "x", "namespace_id": 999999})
    assert unknown_ns.value.error_message == {"namespace": ["is not valid"]}
    with pytest.raises(GitlabGetError) as hidden_group:
        bob.groups.get("acme")
    assert (hidden_group.value.response_code, hidden_group.value.error_message) == (404, "404 Group Not Found")
    with pytest.raises(GitlabGetError) as ns:
        bob.namespaces.get("acme/platform/tools")
    assert ns.value.error_message == "404 Namespace Not Found"
    with pytest.raises(GitlabGetError) as project:
        bob.projects.get("acme/nothing")
    assert project.value.error_message == "404 Project Not Found"
    assert gitlab_forge.repos == {}


def test_gitlab_delete_project(gitlab_forge: LocalForge) -> None:
    client = gl(gitlab_forge)
    project = client.projects.create({"name": "gone"})
    bare = gitlab_forge.repo_path("alice/gone")
    project.delete()
    assert (gitlab_forge.requests[-1].method, gitlab_forge.requests[-1].status) == ("DELETE", 202)
    assert gitlab_forge.requests[-1].response == {"message": "202 Accepted"}
    assert not bare.exists()
    with pytest.raises(GitlabGetError):
        client.projects.get(project.id)


def test_gitlab_client_timeout_on_a_slow_answer(gitlab_forge: LocalForge) -> None:
    gitlab_forge.delay("GET", r"/api/v4/user$", 5)
    client = gl(gitlab_forge, timeout=0.2)
    started = time.perf_counter()
    with pytest.raises(requests.exceptions.ReadTimeout):
        client.auth()
    assert time.perf_counter() - started < 2
    client.auth()  # times=1: the next one is not delayed


# ----------------------------------------------------------------------------- git smart-HTTP


def test_github_push_with_token_only_in_env(github_forge: LocalForge, tmp_path: Path, git_env: dict[str, str]) -> None:
    repo = gh(github_forge).get_user().create_repo("pushed", private=True)
    local = local_repo(tmp_path / "work", git_env)
    env = basic_env(github_forge, ALICE_TOKEN, git_env)
    push(local, repo.clone_url, env)

    head = local.head.commit.hexsha
    assert github_forge.refs("alice/pushed") == {"refs/heads/main": head}
    assert local.git.ls_remote("origin", "refs/heads/main", env=env) == f"{head}\trefs/heads/main"
    config = (tmp_path / "work" / ".git" / "config").read_text()
    secret_forms = (ALICE_TOKEN, base64.b64encode(f"x-access-token:{ALICE_TOKEN}".encode()).decode())
    for secret in secret_forms:
        assert secret not in local.remotes.origin.url
        assert secret not in config
    assert local.remotes.origin.url == f"{github_forge.base_url}/alice/pushed.git"
    assert github_forge.git_requests[:2] == [
        (200, "GET", "/alice/pushed.git/info/refs?service=git-receive-pack", "x-access-token"),
        (200, "POST", "/alice/pushed.git/git-receive-pack", "x-access-token"),
    ]
    assert gh(github_forge).get_repo("alice/pushed").size > 0


def test_gitlab_push_sets_default_branch(gitlab_forge: LocalForge, tmp_path: Path, git_env: dict[str, str]) -> None:
    client = gl(gitlab_forge)
    tools = client.groups.get("acme/platform/tools")
    project = client.projects.create({"name": "svc", "path": "svc", "namespace_id": tools.id})
    local = local_repo(tmp_path / "work", git_env)
    push(local, project.http_url_to_repo, basic_env(gitlab_forge, ALICE_TOKEN, git_env))

    assert gitlab_forge.refs("acme/platform/tools/svc")["refs/heads/main"] == local.head.commit.hexsha
    assert {u for (_, _, _, u) in gitlab_forge.git_requests} == {"oauth2"}
    after = client.projects.get(project.id)
    assert gitlab_forge.requests[-1].path == f"/api/v4/projects/{project.id}"
    assert (after.default_branch, after.empty_repo) == ("main", False)
    assert after.readme_url == f"{gitlab_forge.base_url}/acme/platform/tools/svc/-/blob/main/README.md"
    branch = after.branches.get("main")
    assert branch.commit["id"] == local.head.commit.hexsha
    assert branch.default is True
    with pytest.raises(GitlabGetError) as caught:
        after.branches.get("nope")
    assert caught.value.error_message == "404 Branch Not Found"


def test_wrong_token_push_fails_fast_and_leaves_the_repo_empty(
    github_forge: LocalForge, tmp_path: Path, git_env: dict[str, str]
) -> None:
    repo = gh(github_forge).get_user().create_repo("locked")
    local = local_repo(tmp_path / "work", git_env)
    started = time.perf_counter()
    with pytest.raises(git.GitCommandError) as caught:
        push(local, repo.clone_url, basic_env(github_forge, "CANARY-wrong", git_env))
    assert time.perf_counter() - started < 10
    assert "CANARY-wrong" not in str(caught.value)
    assert github_forge.refs("alice/locked") == {}
    assert github_forge.git_requests[0][0] == 401
    # The right token with the wrong username is refused too (GitHub wants x-access-token).
    with pytest.raises(git.GitCommandError):
        local.remotes.origin.push(
            "refs/heads/main:refs/heads/main", env=basic_env(github_forge, ALICE_TOKEN, git_env, username="oauth2")
        ).raise_if_error()
    assert github_forge.refs("alice/locked") == {}


def test_push_without_access_is_refused(github_forge: LocalForge, tmp_path: Path, git_env: dict[str, str]) -> None:
    github_forge.create_repo_directly("alice/private", "alice", private=True)
    github_forge.create_repo_directly("acme/public", "alice", private=False)
    local = local_repo(tmp_path / "work", git_env)
    bob = basic_env(github_forge, BOB_TOKEN, git_env)
    for name in ("alice/private", "acme/public"):
        with pytest.raises(git.GitCommandError):
            local.git.push(github_forge.clone_url(name), "refs/heads/main:refs/heads/main", env=bob)
        assert github_forge.refs(name) == {}
    statuses = [status for (status, method, _, _) in github_forge.git_requests if method == "GET"]
    assert statuses == [404, 403]


def test_large_push_uses_a_chunked_body(github_forge: LocalForge, tmp_path: Path, git_env: dict[str, str]) -> None:
    repo = gh(github_forge).get_user().create_repo("big")
    local = local_repo(tmp_path / "work", git_env, files={"blob.bin": os.urandom(3 * 1024 * 1024)})
    push(local, repo.clone_url, basic_env(github_forge, ALICE_TOKEN, git_env))
    assert github_forge.refs("alice/big") == {"refs/heads/main": local.head.commit.hexsha}
    assert github_forge.chunked_requests >= 1


def test_push_to_a_repo_never_created_fails(github_forge: LocalForge, tmp_path: Path, git_env: dict[str, str]) -> None:
    local = local_repo(tmp_path / "work", git_env)
    with pytest.raises(git.GitCommandError):
        push(local, f"{github_forge.base_url}/alice/ghost.git", basic_env(github_forge, ALICE_TOKEN, git_env))
    assert github_forge.git_requests == [
        (404, "GET", "/alice/ghost.git/info/refs?service=git-receive-pack", "x-access-token")
    ]
    assert not (github_forge.git_root / "alice" / "ghost.git").exists()


def test_clone_back_over_http(gitlab_forge: LocalForge, tmp_path: Path, git_env: dict[str, str]) -> None:
    project = gl(gitlab_forge).projects.create({"name": "roundtrip"})
    local = local_repo(tmp_path / "work", git_env, files={"a.txt": b"alpha\n"})
    env = basic_env(gitlab_forge, ALICE_TOKEN, git_env)
    push(local, project.http_url_to_repo, env)
    git.Repo.clone_from(project.http_url_to_repo, tmp_path / "clone", env=env)
    assert (tmp_path / "clone" / "a.txt").read_bytes() == b"alpha\n"
    anonymous = subprocess.run(
        [GIT, "ls-remote", project.http_url_to_repo],
        env={**os.environ, **git_env},
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert anonymous.returncode != 0  # private project: no credentials, no refs
    assert gitlab_forge.git_requests[-1][0] == 401


def test_git_paths_can_be_faulted(github_forge: LocalForge, tmp_path: Path, git_env: dict[str, str]) -> None:
    repo = gh(github_forge).get_user().create_repo("flaky")
    github_forge.inject("GET", r"/alice/flaky\.git/info/refs$", 404, "Repository not found.\n", times=1)
    local = local_repo(tmp_path / "work", git_env)
    env = {**git_env, **github_forge.git_auth_env(ALICE_TOKEN)}
    assert env == basic_env(github_forge, ALICE_TOKEN, git_env)
    with pytest.raises(git.GitCommandError):
        push(local, repo.clone_url, env)
    local.remotes.origin.push("refs/heads/main:refs/heads/main", env=env).raise_if_error()
    assert [s for (s, _, _, _) in github_forge.git_requests] == [404, 200, 200]
