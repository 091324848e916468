"""Issue 21 items 16-18 and 21: remote URLs and branches judged as git reads them.

IPv6-literal remotes are judged by scheme and address (not refused for holding `::`),
percent-encoded `..` in file:// paths is decoded before the check, a full ref name as a
branch is normalised instead of becoming `refs/heads/refs/heads/x`, and a retried export
whose own URL is now refused says so instead of blaming a provider.
"""

from __future__ import annotations

import subprocess

import pytest

from apps.projects.services.git_names import validate_base_url, validate_branch, validate_remote_url
from core.exceptions import ValidationFailed

pytestmark = pytest.mark.django_db


def refused(call, *args, **kwargs) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        call(*args, **kwargs)
    return caught.value


# --- item 16: IPv6 literals ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://[2606:4700:4700::1111]/acme/repo.git",
        "https://[2606:4700:4700::1111]:8443/acme/repo.git",
        "https://[::1]:9/x.git",
        "https://[fe80::1]/x.git",
    ],
)
def test_ipv6_literal_remotes_pass_the_syntax_check(url):
    assert validate_remote_url(url) == url


@pytest.mark.parametrize("url", ["https://[::1]:9/x.git", "https://[fe80::1]/x.git", "https://[::ffff:10.0.0.1]/x"])
def test_private_ipv6_literal_remotes_are_refused_as_addresses(url, settings):
    from core.netguard import check_url

    settings.KILN_ALLOW_PRIVATE_NETWORKS = False
    with pytest.raises(ValidationFailed) as caught:
        check_url(url, field="remote_url")
    assert caught.value.code == "remote_host_not_allowed"


def test_public_ipv6_literal_remote_is_accepted_by_the_export_api(api, cast, generated, settings):
    settings.KILN_ALLOW_PRIVATE_NETWORKS = False
    url = f"/api/v1/projects/{cast.project.pk}/generated/{generated.pk}/exports/"
    body = {"provider": "git", "remote_url": "https://[2606:4700:4700::1111]/acme/repo.git"}
    from apps.projects.services import exports

    export = exports.repository_export_start(generated=generated, data=body, actor=cast.alice, enqueue=False)
    assert export.remote_url == body["remote_url"]
    private = api(cast.alice).post(url, {**body, "remote_url": "https://[::1]:9/x.git"}, format="json")
    assert private.status_code == 400
    assert private.json()["code"] == "remote_host_not_allowed"


@pytest.mark.parametrize("url", ["ext::sh -c touch% /tmp/x", "ext::sh", "fd::17", "fd::17/foo", "https::x"])
def test_transport_helpers_are_still_refused(url):
    assert refused(validate_remote_url, url).code == "remote_url_not_allowed"


@pytest.mark.parametrize("url", ["https://[::1/x.git", "https://[zz]/x.git"])
def test_malformed_brackets_are_a_400_not_a_500(url):
    assert refused(validate_remote_url, url).code == "remote_url_not_allowed"
    assert refused(validate_base_url, url).code == "invalid_base_url"


# --- item 17: percent-encoded traversal ------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "file:///srv/git/%2e%2e/%2e%2e/etc/x.git",
        "file:///srv/git/%2E%2E/x.git",
        "file:///srv/git/.%2e/x.git",
        "file:///srv/git%2f..%2fx.git",
        "file:///srv/git/%2e%2e",
    ],
)
def test_encoded_dotdot_in_file_remotes_is_refused(url):
    error = refused(validate_remote_url, url)
    assert error.code == "remote_url_not_allowed"
    assert "without '..'" in error.message


@pytest.mark.parametrize("url", ["https://example.com/a/%2e%2e/b.git", "https://example.com/a%2f-u/x.git"])
def test_encoded_traversal_and_options_in_https_paths_are_refused(url):
    assert refused(validate_remote_url, url).code == "remote_url_not_allowed"


def test_encoded_control_characters_are_refused():
    assert refused(validate_remote_url, "file:///srv/git/a%0ab.git").code == "remote_url_not_allowed"
    assert refused(validate_remote_url, "file:///srv/git/a%00b.git").code == "remote_url_not_allowed"


def test_encoded_ordinary_characters_still_pass():
    assert validate_remote_url("file:///srv/git/my%20repo.git") == "file:///srv/git/my%20repo.git"
    assert validate_remote_url("https://example.com/acme/caf%C3%A9.git")


def test_encoded_dotdot_never_reaches_git(api, cast, generated, run_jobs, tmp_path):
    outside = tmp_path / "outside.git"
    subprocess.run(["git", "init", "-q", "--bare", str(outside)], check=True)
    inner = tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    url = f"file://{inner}/%2e%2e/%2e%2e/outside.git"
    with run_jobs():
        response = api(cast.alice).post(
            f"/api/v1/projects/{cast.project.pk}/generated/{generated.pk}/exports/",
            {"provider": "git", "remote_url": url},
            format="json",
        )
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "remote_url_not_allowed"
    refs = subprocess.run(
        ["git", "--git-dir", str(outside), "for-each-ref"], capture_output=True, text=True, check=True
    ).stdout
    assert refs == ""


# --- item 18: full ref names as branches -------------------------------------------------------------


def test_refs_heads_prefix_is_normalised():
    assert validate_branch("refs/heads/x") == "x"
    assert validate_branch("refs/heads/feature/a") == "feature/a"


@pytest.mark.parametrize(
    "branch", ["refs/tags/v1", "refs/remotes/origin/main", "refs/x", "refs", "refs/heads/refs/heads/x", "refs/heads/"]
)
def test_other_full_ref_names_are_refused(branch):
    assert refused(validate_branch, branch).code == "invalid_branch_name"


def test_refs_heads_traversal_is_still_refused():
    assert refused(validate_branch, "refs/heads/../../config").code == "invalid_branch_name"


def test_export_with_a_full_ref_name_pushes_the_short_branch(api, cast, generated, run_jobs, tmp_path):
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    with run_jobs():
        response = api(cast.alice).post(
            f"/api/v1/projects/{cast.project.pk}/generated/{generated.pk}/exports/",
            {"provider": "git", "remote_url": f"file://{remote}", "branch": "refs/heads/x"},
            format="json",
        )
    assert response.status_code == 202, response.content
    assert response.json()["branch"] == "x"
    refs = subprocess.run(
        ["git", "--git-dir", str(remote), "for-each-ref", "--format=%(refname)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert refs == ["refs/heads/x"]


def test_github_default_branch_full_ref_is_normalised(cast, generated, settings):
    from apps.projects.services.export_providers.common import clean_repository

    _, _, branch = clean_repository(
        {"repository": {"name": "r", "default_branch": "refs/heads/trunk"}},
        label="GitHub",
        fields={"name", "default_branch"},
        max_description=350,
    )
    assert branch == "trunk"


# --- item 21: a retried export whose own URL is now refused ------------------------------------------


def test_retry_to_a_user_url_now_refused_blames_the_url_not_a_provider(
    api, cast, generated, run_jobs, settings, tmp_path
):
    from apps.projects.models import RepositoryExport

    # a remote that already has someone's commit: the first attempt fails at once (remote_not_empty)
    remote = tmp_path / "remote.git"
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    (work / "x").write_text("x")
    identity = ["-c", "user.name=a", "-c", "user.email=a@b"]
    subprocess.run(["git", *identity, "add", "x"], cwd=work, check=True)
    subprocess.run(["git", *identity, "commit", "-qm", "theirs"], cwd=work, check=True)
    subprocess.run(["git", "push", "-q", str(remote), "HEAD:refs/heads/main"], cwd=work, check=True)
    base = f"/api/v1/projects/{cast.project.pk}/generated/{generated.pk}/exports/"
    with run_jobs():
        created = api(cast.alice).post(base, {"provider": "git", "remote_url": f"file://{remote}"}, format="json")
    first = RepositoryExport.objects.get(pk=created.json()["id"])
    assert first.status == "failed" and first.error["code"] == "remote_not_empty", first.error
    settings.KILN_ALLOW_FILE_REMOTES = False  # the operator turned file remotes off since
    with run_jobs():
        retried = api(cast.alice).post(f"{base}{first.pk}/retry/", format="json")
    assert retried.status_code == 202, retried.content
    first.refresh_from_db()
    assert first.status == "failed"
    assert first.error["code"] == "remote_url_not_allowed"
    assert "provider returned" not in first.error["message"].lower()
    assert "of this export is no longer allowed" in first.error["message"]
