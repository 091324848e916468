"""Exports without a forge: archives, git remotes on disk, validation of targets, idempotency."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from apps.projects.models import ProjectFile, RepositoryExport
from apps.projects.services.exports import repository_export_execute
from apps.projects.services.generation import generated_project_execute, generated_project_start

pytestmark = pytest.mark.django_db

A_SHA = hashlib.sha256(b"a").hexdigest()


@pytest.fixture
def generated(cast, make_template):
    template = make_template(
        {
            "README.md": "# {{ name }}\n",
            "src/app.py": "print('hi')\n",
            "bin/run": ("#!/bin/sh\necho run\n", 0o755),
            "img.bin": b"\x00\x01\x02",
        },
        parameters={"type": "object", "properties": {"name": {"type": "string", "default": "demo"}}},
    )
    row = generated_project_start(
        project=cast.project, template_slug=template.slug, parameters={}, actor=cast.alice, enqueue=False
    )
    return generated_project_execute(generated_id=row.pk, owner="t:1:x").generated


def export_url(cast, generated, suffix=""):
    return f"/api/v1/projects/{cast.project.pk}/generated/{generated.pk}/exports/{suffix}"


def start(api, user, cast, generated, body, run_jobs):
    with run_jobs():
        response = api(user).post(export_url(cast, generated), body, format="json")
    return response


def rows(generated):
    return {f.path: f for f in ProjectFile.objects.filter(generated=generated)}


@pytest.mark.parametrize("provider", ["zip", "tar.gz"])
def test_archive_export_matches_the_recorded_files(api, cast, generated, run_jobs, provider):
    response = start(api, cast.mia, cast, generated, {"provider": provider}, run_jobs)
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "pending"
    detail = api(cast.victor).get(export_url(cast, generated, f"{response.json()['id']}/")).json()
    assert detail["status"] == "completed", detail
    download = api(cast.victor).get(export_url(cast, generated, f"{detail['id']}/download/"))
    assert download.status_code == 200
    data = b"".join(download.streaming_content)
    assert detail["archive"] == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    # GitHub's "Download ZIP" shape: <name>-<version>.zip holding one folder <name>/
    assert download["Content-Disposition"] == f'attachment; filename="demo-1.0.0.{provider}"'
    expected = {f"demo/{path}": row for path, row in rows(generated).items()}
    members = {}
    if provider == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            for info in archive.infolist():
                members[info.filename] = (archive.read(info), (info.external_attr >> 16) & 0o777)
    else:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            names = archive.getnames()
            for info in archive.getmembers():
                assert info.isreg()
                members[info.name] = (archive.extractfile(info).read(), info.mode)
    assert names == sorted(names)
    assert set(members) == set(expected)
    for path, (content, mode) in members.items():
        assert hashlib.sha256(content).hexdigest() == expected[path].sha256
        assert mode == expected[path].mode


def test_archives_are_deterministic(cast, generated):
    from apps.projects.services.exports import repository_export_start

    digests = []
    for _ in range(2):
        export = repository_export_start(
            generated=generated, data={"provider": "tar.gz"}, actor=cast.alice, enqueue=False
        )
        digests.append(repository_export_execute(export_id=export.pk, owner=f"t:1:{export.pk}")[0].archive_sha256)
    assert digests[0] == digests[1] != ""


def bare_repo(tmp_path: Path, name="remote.git") -> Path:
    path = tmp_path / name
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path


def git(*args, cwd=None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def test_git_export_to_a_bare_repository_then_again_is_a_no_op(api, cast, generated, run_jobs, tmp_path):
    remote = bare_repo(tmp_path)
    body = {"provider": "git", "remote_url": f"file://{remote}", "branch": "main"}
    first = start(api, cast.mia, cast, generated, body, run_jobs).json()
    detail = api(cast.mia).get(export_url(cast, generated, f"{first['id']}/")).json()
    assert detail["status"] == "completed", detail
    assert detail["pushed"] is True
    assert git("--git-dir", str(remote), "rev-parse", "refs/heads/main") == detail["commit_sha"]
    clone = tmp_path / "clone"
    git("clone", "-q", "-b", "main", str(remote), str(clone))
    assert (
        git("log", "--format=%an <%ae> %at", cwd=clone)
        == f"Kiln <kiln@kiln.invalid> {int(generated.finished_at.timestamp())}"
    )
    tracked = set(git("ls-files", cwd=clone).splitlines())
    assert tracked == set(rows(generated))
    assert git("ls-files", "-s", "bin/run", cwd=clone).startswith("100755")
    second = start(api, cast.mia, cast, generated, body, run_jobs).json()
    again = api(cast.mia).get(export_url(cast, generated, f"{second['id']}/")).json()
    assert again["status"] == "completed"
    assert again["commit_sha"] == detail["commit_sha"]
    assert again["pushed"] is False


def test_git_export_never_pushes_into_a_non_empty_remote(api, cast, generated, run_jobs, tmp_path):
    remote = bare_repo(tmp_path)
    work = tmp_path / "w"
    git("init", "-q", str(work))
    (work / "x").write_text("x")
    git("-c", "user.name=a", "-c", "user.email=a@b", "add", "x", cwd=work)
    git("-c", "user.name=a", "-c", "user.email=a@b", "commit", "-qm", "theirs", cwd=work)
    git("push", "-q", str(remote), "HEAD:refs/heads/main", cwd=work)
    before = git("--git-dir", str(remote), "rev-parse", "refs/heads/main")
    created = start(
        api, cast.mia, cast, generated, {"provider": "git", "remote_url": f"file://{remote}"}, run_jobs
    ).json()
    detail = api(cast.mia).get(export_url(cast, generated, f"{created['id']}/")).json()
    assert detail["status"] == "failed"
    assert detail["error"]["code"] == "remote_not_empty"
    assert git("--git-dir", str(remote), "rev-parse", "refs/heads/main") == before


def test_client_hooks_never_run_and_config_stays_clean(tmp_path, settings):
    from apps.projects.services.gitops import GitAuth, build_commit, push_commit
    from apps.projects.services.stored_files import SourceFile

    git_dir = tmp_path / "built.git"
    commit = build_commit(
        files=[SourceFile("a.txt", 0o644, 1, A_SHA)],
        read_many=lambda files: [b"a" for _ in files],
        git_dir=git_dir,
        branch="main",
        message="m\n",
        timestamp=1700000000,
    )
    sentinel = tmp_path / "pwned"
    for name in ("pre-push", "post-update", "reference-transaction"):
        hook = git_dir / "hooks" / name
        hook.write_text(f"#!/bin/sh\ntouch {sentinel}\n")
        hook.chmod(0o755)
    remote = bare_repo(tmp_path)
    canary = "CANARY-token-0000-never-in-config"
    outcome = push_commit(
        git_dir=git_dir, url=f"file://{remote}", branch="main", commit=commit, auth=GitAuth("x-access-token", canary)
    )
    assert outcome.pushed
    assert not sentinel.exists()
    assert canary not in (git_dir / "config").read_text()
    assert git("--git-dir", str(remote), "rev-parse", "refs/heads/main") == commit


@pytest.mark.parametrize("provider", ["zip", "tar.gz", "git"])
@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_a_missing_or_damaged_blob_fails_the_export_with_a_code(
    api, cast, generated, run_jobs, settings, tmp_path, provider, damage
):
    from apps.projects.models import ProjectFile
    from apps.storage.blobs import blob_key, blob_store

    readme = ProjectFile.objects.get(generated=generated, path="README.md")
    stored = Path(blob_store().backend.path(blob_key(readme.sha256)))
    if damage == "corrupt":
        stored.write_bytes(b"# not what was generated\n")
    else:
        stored.unlink()
    body = {"provider": provider}
    if provider == "git":
        body.update(remote_url=f"file://{bare_repo(tmp_path)}")
    created = start(api, cast.mia, cast, generated, body, run_jobs).json()
    detail = api(cast.mia).get(export_url(cast, generated, f"{created['id']}/")).json()
    assert detail["status"] == "failed"
    assert detail["error"]["code"] == f"blob_{damage}"
    assert detail["archive"] is None and not detail["commit_sha"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"provider": "git", "remote_url": "ext::sh -c touch% /tmp/kiln-pwn"}, "remote_url_not_allowed"),
        ({"provider": "git", "remote_url": "--upload-pack=touch /tmp/kiln-pwn"}, "remote_url_not_allowed"),
        ({"provider": "git", "remote_url": "fd::17/foo"}, "remote_url_not_allowed"),
        ({"provider": "git", "remote_url": "https://user:secret@example.com/r.git"}, "remote_url_not_allowed"),
        ({"provider": "git", "remote_url": "ssh://git@example.com/r.git"}, "remote_url_not_allowed"),
        ({"provider": "git", "remote_url": "https://example.com/-u/x.git"}, "remote_url_not_allowed"),
        ({"provider": "git", "remote_url": "https://example.com/r.git", "branch": "--force"}, "invalid_branch_name"),
        ({"provider": "git", "remote_url": "https://example.com/r.git", "branch": "main.lock"}, "invalid_branch_name"),
        (
            {"provider": "git", "remote_url": "https://example.com/r.git", "branch": "../../config"},
            "invalid_branch_name",
        ),
        (
            {"provider": "git", "remote_url": "https://example.com/r.git", "branch": "refs/heads/../x"},
            "invalid_branch_name",
        ),
        ({"provider": "git", "remote_url": "https://example.com/r.git", "branch": "a@{1}"}, "invalid_branch_name"),
        ({"provider": "git", "remote_url": "https://example.com/r.git", "branch": "HEAD"}, "invalid_branch_name"),
        ({"provider": "zip", "remote_url": "https://example.com/r.git"}, "validation_error"),
        ({"provider": "svn"}, "validation_error"),
        ({"provider": "github", "repository": {"name": "x"}}, "validation_error"),
    ],
)
def test_invalid_targets_are_400_and_nothing_runs(api, cast, generated, run_jobs, body, code):
    response = start(api, cast.mia, cast, generated, body, run_jobs)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == code
    assert RepositoryExport.objects.count() == 0
    assert not Path("/tmp/kiln-pwn").exists()


def test_roles_for_exports(api, cast, generated, run_jobs):
    assert start(api, cast.dave, cast, generated, {"provider": "zip"}, run_jobs).status_code == 403
    assert start(api, cast.charlie, cast, generated, {"provider": "zip"}, run_jobs).status_code == 404
    created = start(api, cast.mia, cast, generated, {"provider": "zip"}, run_jobs).json()
    assert api(cast.victor).get(export_url(cast, generated, f"{created['id']}/")).status_code == 200
    assert api(cast.charlie).get(export_url(cast, generated, f"{created['id']}/download/")).status_code == 404


def test_export_of_an_unfinished_generation_is_409(api, cast, make_template):
    template = make_template({"a": "a"})
    row = generated_project_start(
        project=cast.project, template_slug=template.slug, parameters={}, actor=cast.alice, enqueue=False
    )
    response = api(cast.mia).post(export_url(cast, row), {"provider": "zip"}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "generation_not_ready"


def test_a_push_that_loses_the_race_to_an_earlier_delivery_of_the_same_commit_succeeds(tmp_path, monkeypatch):
    from apps.projects.services import gitops, stored_files

    git_dir = tmp_path / "built.git"
    commit = gitops.build_commit(
        files=[stored_files.SourceFile("a.txt", 0o644, 1, A_SHA)],
        read_many=lambda files: [b"a" for _ in files],
        git_dir=git_dir,
        branch="main",
        message="m\n",
        timestamp=1,
    )
    remote = bare_repo(tmp_path)
    git("--git-dir", str(git_dir), "push", "-q", f"file://{remote}", "refs/heads/main:refs/heads/main")
    real_refs = gitops.remote_refs
    calls = {"n": 0}

    def refs(url, *, auth):
        calls["n"] += 1
        return {} if calls["n"] == 1 else real_refs(url, auth=auth)  # empty when first checked

    def push_fails(args, *, env, secrets):
        if "push" in args:
            raise gitops.GitFailed("cannot lock ref 'refs/heads/main': reference already exists")
        return real_run(args, env=env, secrets=secrets)

    real_run = gitops._run
    monkeypatch.setattr(gitops, "remote_refs", refs)
    monkeypatch.setattr(gitops, "_run", push_fails)
    outcome = gitops.push_commit(git_dir=git_dir, url=f"file://{remote}", branch="main", commit=commit, auth=None)
    assert outcome.pushed is False
