"""GitHub and GitLab exports against the local forge: real PyGithub, python-gitlab and git push."""

from __future__ import annotations

import json
import logging
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection as db
from django.utils import timezone

from apps.projects.models import ProjectFile, RepositoryExport
from tests.forge.fixtures import ALICE_TOKEN

pytestmark = pytest.mark.django_db


def connect(api, user, forge, provider, token=ALICE_TOKEN):
    name = f"{provider}-{forge.port}-{token[-12:]}"
    response = api(user).post(
        "/api/v1/connections/",
        {"provider": provider, "name": name, "base_url": forge.api_url, "token": token},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


def export(api, user, cast, generated, body, run_jobs):
    url = f"/api/v1/projects/{cast.project.pk}/generated/{generated.pk}/exports/"
    with run_jobs():
        created = api(user).post(url, body, format="json")
    assert created.status_code == 202, created.content
    return api(user).get(f"{url}{created.json()['id']}/").json()


def pushed_tree(forge, full_name: str, tmp_path: Path, branch: str = "main") -> dict[str, tuple[str, str]]:
    bare = forge.repo_path(full_name)
    out = subprocess.run(
        ["git", "--git-dir", str(bare), "ls-tree", "-r", branch], capture_output=True, text=True, check=True
    ).stdout
    tree = {}
    for line in out.splitlines():
        meta, path = line.split("\t", 1)
        mode, _, sha = meta.split()
        blob = subprocess.run(
            ["git", "--git-dir", str(bare), "cat-file", "blob", sha], capture_output=True, check=True
        ).stdout
        import hashlib

        tree[path] = (mode, hashlib.sha256(blob).hexdigest())
    return tree


def expected_tree(generated) -> dict[str, tuple[str, str]]:
    return {
        f.path: ("100755" if f.mode & 0o111 else "100644", f.sha256)
        for f in ProjectFile.objects.filter(generated=generated)
    }


def test_github_user_repo_export_reads_back(api, cast, generated, run_jobs, github_forge, tmp_path):
    conn = connect(api, cast.alice, github_forge, "github")
    detail = export(
        api,
        cast.alice,
        cast,
        generated,
        {
            "provider": "github",
            "connection": conn,
            "repository": {
                "name": "kiln-demo",
                "visibility": "private",
                "description": "from kiln",
                "topics": ["kiln", "demo"],
            },
        },
        run_jobs,
    )
    assert detail["status"] == "completed", detail
    assert detail["remote_url"] == github_forge.clone_url("alice/kiln-demo")
    assert detail["web_url"].startswith(github_forge.base_url)
    assert github_forge.refs("alice/kiln-demo")["refs/heads/main"] == detail["commit_sha"]
    assert pushed_tree(github_forge, "alice/kiln-demo", tmp_path) == expected_tree(generated)
    creates = github_forge.find_requests("POST", r"/user/repos$")
    assert len(creates) == 1
    assert creates[0].json == {"name": "kiln-demo", "private": True, "description": "from kiln", "auto_init": False}
    assert github_forge.repos["alice/kiln-demo"].topics == ["kiln", "demo"]
    assert {u for (_, _, _, u) in github_forge.git_requests} == {"x-access-token"}


def test_github_org_repo_with_default_branch(api, cast, generated, run_jobs, github_forge, tmp_path):
    conn = connect(api, cast.alice, github_forge, "github")
    detail = export(
        api,
        cast.alice,
        cast,
        generated,
        {
            "provider": "github",
            "connection": conn,
            "repository": {"owner": "acme", "name": "svc", "visibility": "public", "default_branch": "trunk"},
        },
        run_jobs,
    )
    assert detail["status"] == "completed", detail
    assert detail["branch"] == "trunk"
    assert github_forge.refs("acme/svc") == {"refs/heads/trunk": detail["commit_sha"]}
    assert github_forge.find_requests("GET", r"/orgs/acme$")
    assert github_forge.repos["acme/svc"].default_branch == "trunk"


def test_gitlab_nested_namespace_export(api, cast, generated, run_jobs, gitlab_forge, tmp_path):
    conn = connect(api, cast.alice, gitlab_forge, "gitlab")
    detail = export(
        api,
        cast.alice,
        cast,
        generated,
        {
            "provider": "gitlab",
            "connection": conn,
            "repository": {"namespace": "acme/platform/tools", "name": "svc", "visibility": "internal"},
        },
        run_jobs,
    )
    assert detail["status"] == "completed", detail
    assert gitlab_forge.refs("acme/platform/tools/svc")["refs/heads/main"] == detail["commit_sha"]
    assert pushed_tree(gitlab_forge, "acme/platform/tools/svc", tmp_path) == expected_tree(generated)
    create = gitlab_forge.find_requests("POST", r"/api/v4/projects$")[0]
    assert create.json["namespace_id"] and create.json["path"] == "svc" and create.json["visibility"] == "internal"
    assert {u for (_, _, _, u) in gitlab_forge.git_requests} == {"oauth2"}


@pytest.mark.parametrize("flavor", ["github", "gitlab"])
def test_exporting_twice_to_the_same_target_adopts_without_a_new_push(api, cast, generated, run_jobs, flavor, request):
    forge = request.getfixturevalue(f"{flavor}_forge")
    conn = connect(api, cast.alice, forge, flavor)
    body = {"provider": flavor, "connection": conn, "repository": {"name": "twice"}}
    first = export(api, cast.alice, cast, generated, body, run_jobs)
    pushes_after_first = len([r for r in forge.git_requests if r[1] == "POST" and "receive-pack" in r[2]])
    second = export(api, cast.alice, cast, generated, body, run_jobs)
    assert first["status"] == second["status"] == "completed", (first, second)
    assert second["commit_sha"] == first["commit_sha"]
    assert first["pushed"] is True and second["pushed"] is False
    assert len(forge.repos) == 1
    assert len([r for r in forge.git_requests if r[1] == "POST" and "receive-pack" in r[2]]) == pushes_after_first


def test_killed_after_creation_the_redelivered_export_adopts(cast, generated, github_forge, api, monkeypatch):
    from apps.projects.services import exports
    from apps.projects.services.export_providers import github as github_module

    conn = connect(api, cast.alice, github_forge, "github")
    export_row = exports.repository_export_start(
        generated=generated,
        data={"provider": "github", "connection": conn, "repository": {"name": "killed"}},
        actor=cast.alice,
        enqueue=False,
    )

    class WorkerKilled(BaseException):
        pass

    def die(*args, **kwargs):
        raise WorkerKilled()

    monkeypatch.setattr(github_module, "build_and_push", die)
    with pytest.raises(WorkerKilled):
        exports.repository_export_execute(export_id=export_row.pk, owner="host-a:1:first")
    row = RepositoryExport.objects.get(pk=export_row.pk)
    assert row.status == "running" and row.remote_repo_id
    monkeypatch.undo()
    RepositoryExport.objects.filter(pk=row.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    final, _ = exports.repository_export_execute(export_id=row.pk, owner="host-b:2:second")
    assert final.status == "completed", final.error
    assert len(github_forge.find_requests("POST", r"/user/repos$")) == 1
    assert github_forge.refs("alice/killed")["refs/heads/main"] == final.commit_sha


def test_bad_token_fails_without_retry(api, cast, generated, run_jobs, github_forge):
    conn = connect(api, cast.alice, github_forge, "github", token="CANARY-wrong-token-0000")
    detail = export(
        api,
        cast.alice,
        cast,
        generated,
        {"provider": "github", "connection": conn, "repository": {"name": "x"}},
        run_jobs,
    )
    assert detail["status"] == "failed"
    assert detail["error"]["code"] == "invalid_token"
    assert len(github_forge.requests) == 1  # one 401, not retried
    assert github_forge.repos == {}


def test_502_then_201_completes(api, cast, generated, run_jobs, github_forge):
    github_forge.inject("POST", r"/user/repos$", 502, {"message": "Server Error"}, times=1)
    conn = connect(api, cast.alice, github_forge, "github")
    detail = export(
        api,
        cast.alice,
        cast,
        generated,
        {"provider": "github", "connection": conn, "repository": {"name": "flaky"}},
        run_jobs,
    )
    assert detail["status"] == "completed", detail
    assert len(github_forge.repos) == 1


def test_502_after_the_repo_was_created_adopts_it(api, cast, generated, run_jobs, github_forge):
    github_forge.inject("POST", r"/user/repos$", 502, {"message": "Server Error"}, times=1, run_handler=True)
    conn = connect(api, cast.alice, github_forge, "github")
    detail = export(
        api,
        cast.alice,
        cast,
        generated,
        {"provider": "github", "connection": conn, "repository": {"name": "ghost"}},
        run_jobs,
    )
    assert detail["status"] == "completed", detail
    assert list(github_forge.repos) == ["alice/ghost"]


@pytest.mark.parametrize(
    ("status", "headers", "message"),
    [
        (403, {"Retry-After": "0", "X-RateLimit-Remaining": "0"}, "API rate limit exceeded for user ID 1."),
        (
            429,
            {"Retry-After": "0"},
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
        ),
    ],
)
def test_rate_limits_are_retried(api, cast, generated, run_jobs, github_forge, status, headers, message):
    github_forge.inject(
        "POST",
        r"/user/repos$",
        status,
        {"message": message, "documentation_url": "https://docs.github.com/rest"},
        headers=headers,
        times=1,
    )
    conn = connect(api, cast.alice, github_forge, "github")
    detail = export(
        api,
        cast.alice,
        cast,
        generated,
        {"provider": "github", "connection": conn, "repository": {"name": "limited"}},
        run_jobs,
    )
    assert detail["status"] == "completed", detail
    assert len(github_forge.find_requests("POST", r"/user/repos$")) == 2


def test_long_rate_limit_fails_with_retry_after_instead_of_sleeping(
    api, cast, generated, run_jobs, github_forge, settings
):
    settings.KILN_PROVIDER_MAX_WAIT = 5
    github_forge.inject(
        "POST",
        r"/user/repos$",
        403,
        {"message": "API rate limit exceeded for user ID 1."},
        headers={"Retry-After": "3600"},
        times=None,
    )
    conn = connect(api, cast.alice, github_forge, "github")
    detail = export(
        api,
        cast.alice,
        cast,
        generated,
        {"provider": "github", "connection": conn, "repository": {"name": "later"}},
        run_jobs,
    )
    assert detail["status"] == "failed"
    assert detail["error"]["code"] == "rate_limited"
    assert detail["error"]["extra"]["retry_after"] >= 3000


@pytest.mark.parametrize("flavor", ["github", "gitlab"])
@pytest.mark.parametrize("seed", [True, False], ids=["with-commits", "new-and-empty"])
def test_foreign_repo_with_the_same_name_is_name_taken_and_untouched(
    api, cast, generated, run_jobs, flavor, seed, request
):
    """Also when it is empty and made seconds before the export: no create request of this
    export could have made it, since the first one was refused."""
    forge = request.getfixturevalue(f"{flavor}_forge")
    full = "alice/taken"
    forge.create_repo_directly(full, "alice", seed=seed)
    before = forge.refs(full)
    assert bool(before) is seed
    conn = connect(api, cast.alice, forge, flavor)
    detail = export(
        api,
        cast.alice,
        cast,
        generated,
        {"provider": flavor, "connection": conn, "repository": {"name": "taken"}},
        run_jobs,
    )
    assert detail["status"] == "failed"
    assert detail["error"]["code"] == "name_taken"
    assert forge.refs(full) == before
    assert not [r for r in forge.git_requests if r[1] == "POST" and "receive-pack" in r[2]]


def test_gitlab_unknown_namespace(api, cast, generated, run_jobs, gitlab_forge):
    conn = connect(api, cast.alice, gitlab_forge, "gitlab")
    detail = export(
        api,
        cast.alice,
        cast,
        generated,
        {"provider": "gitlab", "connection": conn, "repository": {"namespace": "nope/none", "name": "x"}},
        run_jobs,
    )
    assert detail["status"] == "failed"
    assert detail["error"]["code"] == "namespace_not_found"


@pytest.mark.parametrize(
    "repository",
    [
        {"name": "--upload-pack=touch /tmp/x"},
        {"name": "../escape"},
        {"name": "ok", "owner": "-acme"},
        {"name": "ok", "default_branch": "main.lock"},
        {"name": "ok", "default_branch": "--orphan"},
        {"name": "x" * 101},
        {"name": "repo.git"},
        {"name": "ok", "topics": ["Not Valid"]},
        {"name": "ok", "visibility": "secret"},
        {"name": "ok", "unknown": 1},
    ],
)
def test_invalid_github_targets_are_400(api, cast, generated, run_jobs, github_forge, repository):
    conn = connect(api, cast.alice, github_forge, "github")
    url = f"/api/v1/projects/{cast.project.pk}/generated/{generated.pk}/exports/"
    response = api(cast.alice).post(
        url, {"provider": "github", "connection": conn, "repository": repository}, format="json"
    )
    assert response.status_code == 400, response.content
    assert github_forge.requests == []


def test_connection_verify_against_the_forges(api, cast, github_forge, gitlab_forge):
    for forge, provider in ((github_forge, "github"), (gitlab_forge, "gitlab")):
        conn = connect(api, cast.alice, forge, provider)
        response = api(cast.alice).post(f"/api/v1/connections/{conn}/verify/")
        assert response.status_code == 200, response.content
        assert response.json()["account"] == "alice"
    bad = connect(api, cast.alice, github_forge, "github", token="CANARY-bad-verify-0000")
    response = api(cast.alice).post(f"/api/v1/connections/{bad}/verify/")
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"
    assert "CANARY" not in response.content.decode()


@pytest.mark.parametrize("flavor", ["github", "gitlab"])
def test_canary_token_leaks_nowhere(api, cast, generated, run_jobs, flavor, request, caplog, monkeypatch, settings):
    forge = request.getfixturevalue(f"{flavor}_forge")
    caplog.set_level(logging.DEBUG)
    from apps.projects import tasks
    from apps.projects.services.export_providers import common

    monkeypatch.setattr(common, "backoff", lambda attempt: 0.01)  # the failing push (500) is retried

    sent_args = []
    original = tasks.execute_repository_export.apply_async

    def spy(args=None, **kwargs):
        sent_args.append(json.dumps([args, kwargs], default=str))
        return original(args=args, **kwargs)

    monkeypatch.setattr(tasks.execute_repository_export, "apply_async", spy)
    conn = connect(api, cast.alice, forge, flavor)
    bodies = []
    for name, inject in (("fails", True), ("works", False)):
        if inject:
            forge.inject(None, r"/git-receive-pack", 500, "boom", times=None)
        else:
            forge.clear_faults()
        url = f"/api/v1/projects/{cast.project.pk}/generated/{generated.pk}/exports/"
        with run_jobs():
            created = api(cast.alice).post(
                url, {"provider": flavor, "connection": conn, "repository": {"name": name}}, format="json"
            )
        bodies.append(created.content.decode())
        bodies.append(api(cast.alice).get(f"{url}{created.json()['id']}/").content.decode())
        bodies.append(api(cast.alice).get(url).content.decode())
    bodies.append(api(cast.alice).get("/api/v1/connections/").content.decode())
    bodies.append(api(cast.alice).get(f"/api/v1/projects/{cast.project.pk}/audit/?page_size=100").content.decode())
    statuses = list(RepositoryExport.objects.order_by("id").values_list("status", flat=True))
    assert statuses == ["failed", "completed"], RepositoryExport.objects.values("error")
    for body in bodies:
        assert ALICE_TOKEN not in body
    assert ALICE_TOKEN not in caplog.text
    assert all(ALICE_TOKEN not in args for args in sent_args) and sent_args
    errors = json.dumps(list(RepositoryExport.objects.values_list("error", flat=True)))
    assert ALICE_TOKEN not in errors
    with db.cursor() as cursor:
        cursor.execute("SELECT token_encrypted FROM projects_providerconnection")
        assert all(ALICE_TOKEN not in row[0] for row in cursor.fetchall())
    for path in Path(settings.GENERATED_PROJECTS_DIR).rglob("*"):
        if path.is_file():
            assert ALICE_TOKEN.encode() not in path.read_bytes(), path
    for repo in forge.repos:
        config = (forge.repo_path(repo) / "config").read_text()
        assert ALICE_TOKEN not in config
