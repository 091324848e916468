"""Git template sources, below the catalog: listing a repository's versions, fetching one version
shallow and writing out its template folder, against real bare repositories served over smart HTTP
by the tests' forge (`git http-backend`) and over file://."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from apps.projects.services import gitops
from apps.projects.services.gitops import GitAuth
from apps.templates.services.sources.git import (
    GitLocation,
    clean_location,
    fetched_version,
    latest_label,
    ordered_labels,
    remote_versions,
)
from core.exceptions import ApplicationError
from tests.forge.fixtures import ALICE_TOKEN
from tests.forge.model import run_git

MANIFEST = "slug: greeter\nname: Greeter\nversion: '{version}'\nparameters:\n  type: object\n  properties:\n    who: {{type: string, default: world}}\n"


def template_files(version: str, prefix: str = "") -> dict[str, str]:
    return {
        f"{prefix}template.yaml": MANIFEST.format(version=version),
        f"{prefix}hello.txt": f"Hello {{{{ who }}}} from {version}\n",
        f"{prefix}docs/notes.md": "notes\n",
    }


def make_repo(forge, name: str, *, private: bool = False):  # type: ignore[no-untyped-def]
    forge.create_repo_directly(f"acme/{name}", "alice", private=private)
    return forge.clone_url(f"acme/{name}")


def raised(function, *args, **kwargs) -> ApplicationError:  # type: ignore[no-untyped-def]
    with pytest.raises(ApplicationError) as info:
        function(*args, **kwargs)
    return info.value


@pytest.mark.django_db
def test_versions_fetch_and_subdirectory_over_http(github_forge):
    url = make_repo(github_forge, "tpl")
    first = github_forge.seed_commit("acme/tpl", files={"README.md": "top\n", **template_files("1.0.0", "tpl/")})
    github_forge.tag("acme/tpl", "v1.0.0", first, message="first release")  # annotated: peeled by ls-remote
    github_forge.tag("acme/tpl", "not-a-version", first)
    second = github_forge.seed_commit("acme/tpl", files=template_files("1.1.0", "tpl/"))
    github_forge.tag("acme/tpl", "1.1.0", second)
    github_forge.tag("acme/tpl", "2.0.0rc1", second)

    location = clean_location({"url": url, "subdirectory": "tpl/"})
    assert location == GitLocation(url=url, ref="", subdirectory="tpl")
    versions = remote_versions(location, auth=None)
    assert [(v.label, v.ref, v.commit) for v in versions] == [
        ("v1.0.0", "refs/tags/v1.0.0", first),
        ("1.1.0", "refs/tags/1.1.0", second),
        ("2.0.0rc1", "refs/tags/2.0.0rc1", second),
    ]
    assert latest_label(v.label for v in versions) == "1.1.0"  # Copier skips pre-releases for the latest

    with fetched_version(location, versions[0], auth=None) as fetched:
        assert fetched.commit == first
        files = sorted(str(p.relative_to(fetched.folder)) for p in fetched.folder.rglob("*") if p.is_file())
        assert files == ["docs/notes.md", "hello.txt", "template.yaml"]
        assert (fetched.folder / "hello.txt").read_text() == "Hello {{ who }} from 1.0.0\n"
        git_dir = fetched.folder.parent / "repo.git"
        # exactly one ref fetched, shallow: no tags, no branches
        refs = run_git(["for-each-ref", "--format=%(refname)"], home=git_dir.parent, git_dir=git_dir).stdout
        assert refs.decode().split() == ["refs/kiln/fetched"]
        assert (git_dir / "shallow").read_text().strip() == first
    assert not fetched.folder.exists()  # the scratch folder is gone with the block

    # a version tag and a subdirectory missing there
    error = raised(
        lambda: fetched_version(GitLocation(url=url, subdirectory="nope"), versions[1], auth=None).__enter__()
    )
    assert error.code == "template_invalid" and error.extra["path"] == "nope"


@pytest.mark.django_db
def test_without_version_tags_the_head_of_ref_is_the_version(github_forge, settings):
    url = make_repo(github_forge, "plain")
    head = github_forge.seed_commit("acme/plain", files=template_files("0.1.0"))
    dev = github_forge.seed_commit("acme/plain", branch="dev", files=template_files("0.2.0"))
    github_forge.tag("acme/plain", "latest", head)  # not a version

    [version] = remote_versions(clean_location({"url": url}), auth=None)
    assert (version.label, version.ref, version.commit) == (head[:7], "refs/heads/main", head)
    [version] = remote_versions(clean_location({"url": url, "ref": "dev"}), auth=None)
    assert (version.label, version.ref, version.commit) == (dev[:7], "refs/heads/dev", dev)
    [version] = remote_versions(clean_location({"url": url, "ref": "refs/tags/latest"}), auth=None)
    assert version.commit == head
    assert raised(remote_versions, clean_location({"url": url, "ref": "gone"}), auth=None).code == "ref_not_found"

    # over file:// where the settings allow it
    [version] = remote_versions(clean_location({"url": f"file://{github_forge.repo_path('acme/plain')}"}), auth=None)
    with fetched_version(GitLocation(url=f"file://{github_forge.repo_path('acme/plain')}"), version, auth=None) as got:
        assert (got.folder / "hello.txt").read_text() == "Hello {{ who }} from 0.1.0\n"
    settings.KILN_ALLOW_FILE_REMOTES = False
    error = raised(clean_location, {"url": f"file://{github_forge.repo_path('acme/plain')}"})
    assert error.code == "remote_url_not_allowed" and "KILN_ALLOW_FILE_REMOTES" in error.message

    # the newest KILN_GIT_SOURCE_MAX_VERSIONS tags only
    for label in ("0.9", "v0.10", "0.10.1", "0.11.dev1"):
        github_forge.tag("acme/plain", label, head)
    settings.KILN_GIT_SOURCE_MAX_VERSIONS = 2
    assert [v.label for v in remote_versions(clean_location({"url": url}), auth=None)] == ["0.10.1", "0.11.dev1"]
    # PEP 440, not text: 0.10 after 0.9, a dev release before its release, a short commit first
    assert ordered_labels(["1.0", "1.0.dev1", "0.9", "abc1234", "v0.10"]) == [
        "abc1234",
        "0.9",
        "v0.10",
        "1.0.dev1",
        "1.0",
    ]


@pytest.mark.django_db
def test_private_repository_needs_the_token_which_is_left_nowhere(github_forge, caplog):
    url = make_repo(github_forge, "secret", private=True)
    commit = github_forge.seed_commit("acme/secret", files=template_files("1.0.0"))
    github_forge.tag("acme/secret", "v1.0.0", commit)
    location = clean_location({"url": url})

    error = raised(remote_versions, location, auth=None)
    assert (error.code, error.extra["reason"]) == ("invalid_token", "credentials_required")
    assert (401, "GET", "/acme/secret.git/info/refs?service=git-upload-pack", None) in github_forge.git_requests
    wrong = raised(remote_versions, location, auth=GitAuth("x-access-token", "CANARY-wrong-token-0000"))
    assert wrong.code == "invalid_token" and "CANARY" not in wrong.message

    auth = GitAuth("x-access-token", ALICE_TOKEN)
    [version] = remote_versions(location, auth=auth)
    with fetched_version(location, version, auth=auth) as fetched:
        assert fetched.commit == commit
        work = fetched.folder.parent
        leaked = [p for p in work.rglob("*") if p.is_file() and ALICE_TOKEN.encode() in p.read_bytes()]
        assert leaked == []
        assert "extraheader" not in (work / "repo.git" / "config").read_text().lower()
    assert all(ALICE_TOKEN not in record.getMessage() for record in caplog.records)
    assert all(user in (None, "x-access-token") for *_, user in github_forge.git_requests)


HOSTILE_URLS = [
    "ext::sh -c touch% /tmp/kiln-pwned",
    "--upload-pack=touch /tmp/kiln-pwned",
    "-x",
    "fd::17",
    "https://-oProxyCommand=x/repo.git",
    "https://user:CANARY-pass@example.com/repo.git",
    "ssh://example.com/repo.git",
    "https://example.com/repo.git?x=1",
    "file:///srv/../etc/repo.git",
]
HOSTILE_REFS = ["refs/../x", "--upload-pack=touch /tmp/x", "-x", "refs/remotes/origin/main", "a..b", "main@{1}", "*"]


def test_hostile_urls_refs_and_folders_are_refused_before_git_runs(monkeypatch):
    def no_git(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("git ran")

    monkeypatch.setattr(gitops.subprocess, "Popen", no_git)
    monkeypatch.setattr(gitops.subprocess, "run", no_git)
    for url in HOSTILE_URLS:
        error = raised(clean_location, {"url": url})
        assert error.code == "remote_url_not_allowed", url
        assert "git.url" in error.extra["fields"]
    for ref in HOSTILE_REFS:
        error = raised(clean_location, {"url": "https://example.com/t.git", "ref": ref})
        assert (error.code, list(error.extra["fields"])) == ("invalid_ref", ["git.ref"]), ref
    for folder in ("../up", "/abs/../../x", "a/../../b"):
        error = raised(clean_location, {"url": "https://example.com/t.git", "subdirectory": folder})
        assert list(error.extra["fields"]) == ["git.subdirectory"], folder
    assert raised(clean_location, {"url": "https://example.com/t.git", "branch": "x"}).extra["fields"] == {
        "git.branch": ["Unknown field."]
    }


def test_private_networks_are_refused_unless_allowed(settings):
    settings.KILN_ALLOW_PRIVATE_NETWORKS = False
    for url in ("https://127.0.0.1/t.git", "https://169.254.169.254/t.git", "http://example.com/t.git"):
        assert raised(clean_location, {"url": url}).code in ("remote_host_not_allowed", "remote_url_not_allowed")


def _commit_with_modes(forge, full_name: str, entries: list[tuple[str, str, bytes]]) -> str:  # type: ignore[no-untyped-def]
    stream = b"commit refs/heads/main\ncommitter T <t@t.invalid> 0 +0000\ndata 1\nx\n"
    for mode, path, data in entries:
        stream += f"M {mode} inline {path}\ndata {len(data)}\n".encode() + data + b"\n"
    run_git(["fast-import", "--quiet", "--force"], home=forge.home, git_dir=forge.repo_path(full_name), stdin=stream)
    return forge.refs(full_name)["refs/heads/main"]


@pytest.mark.django_db
def test_over_budget_and_links_are_refused(github_forge, settings):
    url = make_repo(github_forge, "big")
    location = clean_location({"url": url})
    settings.KILN_TEMPLATE_UPLOAD_MAX_UNCOMPRESSED = 60_000

    def version_of(entries: list[tuple[str, str, bytes]]):  # type: ignore[no-untyped-def]
        _commit_with_modes(github_forge, "acme/big", entries)
        [version] = remote_versions(location, auth=None)
        return version

    def refused(entries: list[tuple[str, str, bytes]]) -> ApplicationError:
        version = version_of(entries)
        return raised(lambda: fetched_version(location, version, auth=None).__enter__())

    manifest = ("100644", "template.yaml", MANIFEST.format(version="1").encode())
    # random bytes do not compress: the fetch itself is stopped
    error = refused([manifest, ("100644", "blob.bin", os.urandom(200_000))])
    assert (error.code, error.extra["limit"]) == ("template_too_large", 60_000)
    assert "sent more than 60000 bytes" in error.message
    # zeros compress to nothing: the tree's sizes are over budget
    error = refused([manifest, ("100644", "a.bin", bytes(40_000)), ("100644", "b.bin", bytes(40_000))])
    assert error.code == "template_too_large" and "larger than 60000 bytes" in error.message
    settings.MAX_FILE_SIZE = 1000
    error = refused([manifest, ("100644", "big.txt", b"x" * 2000)])
    assert (error.code, error.extra["path"]) == ("template_too_large", "big.txt")
    settings.KILN_TEMPLATE_UPLOAD_MAX_FILES = 3
    error = refused([manifest, *(("100644", f"f{i}.txt", b"x") for i in range(4))])
    assert error.code == "template_too_large" and error.extra["limit"] == 3
    error = refused([manifest, ("120000", "link", b"/etc/passwd")])
    assert (error.code, error.extra["path"]) == ("symlink_not_allowed", "link")
    # an executable bit is kept
    with fetched_version(location, version_of([manifest, ("100755", "run.sh", b"#!/bin/sh\n")]), auth=None) as got:
        assert os.stat(got.folder / "run.sh").st_mode & 0o111
        assert Path(got.folder / "template.yaml").exists()


@pytest.mark.django_db
def test_a_repository_that_does_not_answer_in_time_or_at_all_is_git_unreachable(github_forge, settings):
    url = make_repo(github_forge, "slow")
    github_forge.tag("acme/slow", "v1", github_forge.seed_commit("acme/slow", files=template_files("1")))
    settings.KILN_GIT_TIMEOUT = 1
    github_forge.delay("GET", r"/acme/slow\.git/info/refs", 2.5)
    started = time.monotonic()
    error = raised(remote_versions, clean_location({"url": url}), auth=None)
    assert error.code == "git_unreachable" and "within 1s" in error.message
    assert time.monotonic() - started < 2.0  # git was stopped, not waited for
    gone = raised(remote_versions, clean_location({"url": github_forge.clone_url("acme/none")}), auth=None)
    assert gone.code == "invalid_token"  # like GitHub, the forge asks anonymous callers for credentials first
    closed = raised(remote_versions, clean_location({"url": "http://127.0.0.1:9/x.git"}), auth=None)
    assert closed.code == "git_unreachable"


@pytest.mark.django_db
def test_links_inside_the_repository_are_followed_as_copier_does_and_others_refused(github_forge):
    url = make_repo(github_forge, "linked")
    location = clean_location({"url": url, "subdirectory": "tpl"})
    manifest = ("100644", "tpl/template.yaml", MANIFEST.format(version="1").encode())
    shared = [("100644", "shared/LICENSE", b"MIT\n"), ("100755", "shared/bin/run.sh", b"#!/bin/sh\n")]

    def version_of(entries: list[tuple[str, str, bytes]]):  # type: ignore[no-untyped-def]
        _commit_with_modes(github_forge, "acme/linked", [manifest, *shared, *entries])
        [version] = remote_versions(location, auth=None)
        return version

    links = [
        ("100644", "tpl/hello.txt", b"hi\n"),
        ("120000", "tpl/LICENSE", b"../shared/LICENSE"),  # outside the subdirectory, inside the repository
        ("120000", "tpl/tools", b"../shared"),  # a folder
        ("120000", "tpl/alias.txt", b"hello.txt"),
        ("120000", "tpl/chain.txt", b"alias.txt"),  # a link to a link
    ]
    with fetched_version(location, version_of(links), auth=None) as got:
        files = {str(p.relative_to(got.folder)): p for p in got.folder.rglob("*") if p.is_file()}
        assert sorted(files) == [
            "LICENSE",
            "alias.txt",
            "chain.txt",
            "hello.txt",
            "template.yaml",
            "tools/LICENSE",
            "tools/bin/run.sh",
        ]
        assert not any(p.is_symlink() for p in got.folder.rglob("*"))
        assert files["LICENSE"].read_bytes() == b"MIT\n" and files["chain.txt"].read_bytes() == b"hi\n"
        assert os.stat(files["tools/bin/run.sh"]).st_mode & 0o111

    for target, reason in (
        (b"../../etc/passwd", "outside"),
        (b"/etc/passwd", "absolute"),
        (b"missing.txt", "dangling"),
        (b"loop-b", "loop"),
    ):
        version = version_of(
            [("120000", "tpl/bad", target), ("120000", "tpl/loop-b", b"loop-c"), ("120000", "tpl/loop-c", b"loop-b")]
            if reason == "loop"
            else [("120000", "tpl/bad", target)]
        )
        error = raised(lambda v=version: fetched_version(location, v, auth=None).__enter__())
        assert (error.code, error.extra["reason"]) == ("symlink_not_allowed", reason), target
        assert error.extra["path"] in ("bad", "loop-b", "loop-c")
