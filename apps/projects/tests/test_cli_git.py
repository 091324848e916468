"""`generate_project --template <git>`: a repository (https, file://, gh:, gl:) registered as a git
template through the git source, its version tags generated, synced after a new tag; and the git
arguments refused before git runs or anything is recorded."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from apps.projects.management.commands._sources import expand_git_url
from apps.projects.models import GeneratedProject, Project
from apps.templates.models import ProjectTemplate

pytestmark = pytest.mark.django_db(transaction=True)  # the job is enqueued on commit

MANIFEST = (
    "slug: greeter\nname: Greeter\nversion: '{version}'\nparameters:\n  type: object\n  properties:\n"
    "    who: {{type: string, default: world, description: Whom to greet.}}\n"
    "    times: {{type: integer, default: 1, description: How many greetings.}}\n"
)


def files(version: str, prefix: str = "") -> dict[str, str]:
    return {
        f"{prefix}template.yaml": MANIFEST.format(version=version),
        f"{prefix}hello.txt": f"{{% for _ in range(times) %}}Hello {{{{ who }}}} from {version}\n{{% endfor %}}",
    }


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("generate_project", "--no-sync", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db  # refused before any commit: no need to flush the database
def test_gh_and_gl_expand_to_github_and_the_configured_gitlab(settings):
    assert expand_git_url("gh:acme/tpl") == "https://github.com/acme/tpl.git"
    assert expand_git_url("gh:acme/tpl.git") == "https://github.com/acme/tpl.git"
    assert expand_git_url("gl:acme/platform/tpl") == "https://gitlab.com/acme/platform/tpl.git"
    settings.KILN_GITLAB_URL = "https://gitlab.example.com/"
    assert expand_git_url("gl:acme/tpl") == "https://gitlab.example.com/acme/tpl.git"
    assert expand_git_url("git+https://example.com/t.git") == "https://example.com/t.git"
    assert expand_git_url("python-package") is None and expand_git_url("./t.zip") is None
    with pytest.raises(CommandError, match=r"gh: takes owner/repository"):
        expand_git_url("gh:acme")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--template", "https://example.com/t.git", "--vcs-ref=--upload-pack=touch /tmp/x"], r"invalid_ref"),
        (["--template", "https://example.com/t.git", "--vcs-ref", "refs/../x"], r"invalid_ref"),
        (["--template", "https://example.com/t.git", "--subdirectory", "../up"], r"git\.subdirectory is not allowed"),
        (["--template", "https://me:canary@example.com/t.git"], r"remote_url_not_allowed: Credentials"),
        (["--template", "ftp://example.com/t.git"], r"remote_url_not_allowed"),
        (["--template", "ext::sh%20-c%20touch"], r"remote_url_not_allowed: Git transport helpers"),
        (["--template", "gl:acme"], r"gl: takes owner/repository"),
        (["--template", "python-package", "--vcs-ref", "v1"], r"^--vcs-ref goes with a git --template$"),
        (["--template", "https://example.com/t.git", "--export", "ftp"], r"^--export: validation_error"),
    ],
)
@pytest.mark.django_db  # refused before any commit: no need to flush the database
def test_git_arguments_are_refused_before_git_runs_or_anything_is_recorded(args, message, monkeypatch):
    from apps.templates.services.sources import git as git_source

    def no_git(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("git ran")

    monkeypatch.setattr(git_source, "list_remote_refs", no_git)
    monkeypatch.setattr(git_source, "fetch_ref", no_git)
    models = (ProjectTemplate, GeneratedProject, Project, get_user_model())
    before = [model.objects.count() for model in models]
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert [model.objects.count() for model in models] == before


def test_a_repository_over_http_is_registered_generated_at_each_version_and_synced(github_forge, tmp_path):
    github_forge.create_repo_directly("acme/greeter", "alice")
    url = github_forge.clone_url("acme/greeter")
    first = github_forge.seed_commit("acme/greeter", files={"README.md": "top\n", **files("1.0.0", "tpl/")})
    github_forge.tag("acme/greeter", "v1.0.0", first, message="first")
    github_forge.tag("acme/greeter", "not-a-version", first)
    second = github_forge.seed_commit("acme/greeter", files=files("1.1.0", "tpl/"))
    github_forge.tag("acme/greeter", "1.1.0", second)

    text = run("--template", url, "--subdirectory", "tpl", "--slug", "greeter", "--set", "times=2",
               "--output", str(tmp_path / "latest"))  # fmt: skip
    assert f"template greeter from git {url}: versions 1.1.0, v1.0.0\n" in text
    assert "from greeter 1.1.0:" in text
    assert (tmp_path / "latest" / "hello.txt").read_text() == "Hello world from 1.1.0\n" * 2
    template = ProjectTemplate.objects.get(slug="greeter")
    assert (template.source, template.git_url, template.git_subdirectory) == ("git", url, "tpl")

    old = run("--template", "greeter", "--version", "v1.0.0", "--set", "who=kiln", "--output", str(tmp_path / "v1"))
    assert "from greeter v1.0.0:" in old
    assert (tmp_path / "v1" / "hello.txt").read_text() == "Hello kiln from 1.0.0\n"

    # a new tag: the same URL again syncs it, and the newest version is generated
    third = github_forge.seed_commit("acme/greeter", files=files("1.2.0", "tpl/"))
    github_forge.tag("acme/greeter", "v1.2.0", third)
    text = run("--template", url, "--subdirectory", "tpl", "--output", str(tmp_path / "synced"))
    assert "synced greeter: added v1.2.0\n" in text
    assert ": versions v1.2.0, 1.1.0, v1.0.0\n" in text and "from greeter v1.2.0:" in text
    assert (tmp_path / "synced" / "hello.txt").read_text() == "Hello world from 1.2.0\n"
    assert ProjectTemplate.objects.filter(source="git").count() == 1
    again = run("--template", "greeter", "--version", "v1.0.0", "--set", "who=kiln")
    assert "from greeter v1.0.0:" in again
    v1 = GeneratedProject.objects.filter(template_version="v1.0.0").order_by("pk")
    assert v1.count() == 2 and v1[0].content_sha256 == v1[1].content_sha256

    # another user's run: the template is not theirs to sync, its recorded versions still generate
    text = run("--template", url, "--subdirectory", "tpl", "--user", "someone-else", "--project", "theirs")
    assert "not synced (template_not_owner): Only the owner of template 'greeter' (or staff) may sync it.\n" in text
    assert "from greeter v1.2.0:" in text
    # a connection that is not the user's: refused by the git source, nothing registered
    with pytest.raises(CommandError, match=r"connection"):
        run("--template", github_forge.clone_url("acme/other"), "--git-connection", "999", "--slug", "other")
    assert not ProjectTemplate.objects.filter(slug="other").exists()


def test_gl_shorthand_reads_the_configured_gitlab_and_file_urls_work_where_allowed(gitlab_forge, settings, tmp_path):
    gitlab_forge.create_repo_directly("acme/greeter", "alice")
    head = gitlab_forge.seed_commit("acme/greeter", files=files("0.1.0"))
    settings.KILN_GITLAB_URL = gitlab_forge.base_url
    text = run("--template", "gl:acme/greeter", "--slug", "gl-greeter", "--output", str(tmp_path / "gl"))
    label = head[:7]  # no version tag: the head of the default branch, labelled by its short commit
    assert f"template gl-greeter from git {gitlab_forge.clone_url('acme/greeter')}: versions {label}\n" in text
    assert (tmp_path / "gl" / "hello.txt").read_text() == "Hello world from 0.1.0\n"

    bare = f"file://{gitlab_forge.repo_path('acme/greeter')}"
    text = run("--template", bare, "--slug", "file-greeter", "--vcs-ref", "main")
    assert f"template file-greeter from git {bare}: versions {label}\n" in text
    settings.KILN_ALLOW_FILE_REMOTES = False
    with pytest.raises(CommandError, match=r"remote_url_not_allowed"):
        run("--template", bare, "--slug", "file-greeter-2")
    assert not ProjectTemplate.objects.filter(slug="file-greeter-2").exists()
