"""Exports end to end through HTTP and a real worker: archives, git over HTTP, GitHub, GitLab."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
import zipfile

import httpx
import pytest

from tests.forge.fixtures import ALICE_TOKEN
from tests.integration.harness import poll

pytestmark = [pytest.mark.integration]

TERMINAL = {"completed", "failed", "cancelled"}


@pytest.fixture
def session(live_stack, make_template):
    from apps.projects.tests.factories import UserFactory

    UserFactory(username="alice")
    make_template(
        {
            "README.md": "# {{ name }}\n",
            "src/{{ name }}/__init__.py": "VERSION = '1'\n",
            "bin/tool": ("#!/bin/sh\necho tool\n", 0o755),
            "img.bin": b"\x00\x01\xfe",
        },
        slug="live-export",
        parameters={"type": "object", "properties": {"name": {"type": "string", "default": "pkg"}}},
    )
    with httpx.Client(base_url=live_stack.url, timeout=30) as client:
        token = client.post("/api/v1/auth/token/", json={"username": "alice", "password": "pw-for-tests"}).json()[
            "token"
        ]
        client.headers["Authorization"] = f"Token {token}"
        project = client.post("/api/v1/projects/", json={"name": "Exports"}).json()
        base = f"/api/v1/projects/{project['id']}/generated/"
        created = client.post(base, json={"template": "live-export"}).json()
        generated = poll(lambda: client.get(f"{base}{created['id']}/").json(), lambda d: d["status"] in TERMINAL)
        assert generated["status"] == "completed", generated
        files = client.get(f"{base}{created['id']}/files/?page_size=100").json()["results"]
        yield client, f"{base}{created['id']}/exports/", {f["path"]: f for f in files}


def run_export(client, url, body):
    created = client.post(url, json=body)
    assert created.status_code == 202, created.text
    return poll(
        lambda: client.get(f"{url}{created.json()['id']}/").json(), lambda d: d["status"] in TERMINAL, timeout=90
    )


def tree_of(bare, ref):
    out = subprocess.run(
        ["git", "--git-dir", str(bare), "ls-tree", "-r", ref], capture_output=True, text=True, check=True
    ).stdout
    tree = {}
    for line in out.splitlines():
        meta, path = line.split("\t", 1)
        mode, _, sha = meta.split()
        blob = subprocess.run(
            ["git", "--git-dir", str(bare), "cat-file", "blob", sha], capture_output=True, check=True
        ).stdout
        tree[path] = (mode, hashlib.sha256(blob).hexdigest())
    return tree


def expected(files):
    return {p: ("100755" if f["mode"] & 0o111 else "100644", f["sha256"]) for p, f in files.items()}


@pytest.mark.parametrize("provider", ["zip", "tar.gz"])
def test_archives(session, provider):
    client, url, files = session
    detail = run_export(client, url, {"provider": provider})
    assert detail["status"] == "completed", detail
    data = client.get(f"{url}{detail['id']}/download/").content
    assert detail["archive"] == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    if provider == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = {i.filename: hashlib.sha256(archive.read(i)).hexdigest() for i in archive.infolist()}
    else:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            members = {i.name: hashlib.sha256(archive.extractfile(i).read()).hexdigest() for i in archive.getmembers()}
    assert members == {f"pkg/{p}": f["sha256"] for p, f in files.items()}  # one top folder: the project's name


def test_git_remote_over_http(session, github_forge):
    client, url, files = session
    github_forge.create_repo_directly("alice/plain", "alice")
    connection = client.post(
        "/api/v1/connections/", json={"provider": "git", "name": "plain-git", "token": ALICE_TOKEN}
    ).json()
    detail = run_export(
        client,
        url,
        {"provider": "git", "remote_url": github_forge.clone_url("alice/plain"), "connection": connection["id"]},
    )
    assert detail["status"] == "completed", detail
    assert github_forge.refs("alice/plain")["refs/heads/main"] == detail["commit_sha"]
    assert tree_of(github_forge.repo_path("alice/plain"), "main") == expected(files)


@pytest.mark.parametrize(("owner", "full"), [(None, "alice/live-user"), ("acme", "acme/live-org")])
def test_github(session, github_forge, owner, full):
    client, url, files = session
    connection = client.post(
        "/api/v1/connections/",
        json={"provider": "github", "name": f"gh-{full}", "base_url": github_forge.api_url, "token": ALICE_TOKEN},
    ).json()
    repository = {"name": full.split("/")[1]}
    if owner:
        repository["owner"] = owner
    detail = run_export(client, url, {"provider": "github", "connection": connection["id"], "repository": repository})
    assert detail["status"] == "completed", detail
    assert github_forge.refs(full)["refs/heads/main"] == detail["commit_sha"]
    assert tree_of(github_forge.repo_path(full), "main") == expected(files)
    again = run_export(client, url, {"provider": "github", "connection": connection["id"], "repository": repository})
    assert again["status"] == "completed"
    assert again["commit_sha"] == detail["commit_sha"]
    assert again["pushed"] is False
    assert len([r for r in github_forge.repos if r == full]) == 1


def test_gitlab_nested_namespace(session, gitlab_forge):
    client, url, files = session
    connection = client.post(
        "/api/v1/connections/",
        json={"provider": "gitlab", "name": "gl", "base_url": gitlab_forge.api_url, "token": ALICE_TOKEN},
    ).json()
    detail = run_export(
        client,
        url,
        {
            "provider": "gitlab",
            "connection": connection["id"],
            "repository": {"namespace": "acme/platform/tools", "name": "live"},
        },
    )
    assert detail["status"] == "completed", detail
    full = "acme/platform/tools/live"
    assert gitlab_forge.refs(full)["refs/heads/main"] == detail["commit_sha"]
    assert tree_of(gitlab_forge.repo_path(full), "main") == expected(files)
