"""The format registry and the one generator: every format detected, described, validated and
rendered through `ProjectGenerator` and the generation service, as the engines render it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from apps.projects.services.project_generator import NullSink, ProjectGenerator
from apps.templates.services import formats
from apps.templates.services.formats import cookiecutter, copier
from core.exceptions import ApplicationError, ValidationFailed
from tests.formats.harness import DirectorySink, copy_fixture, read_tree


def _ref(folder: Path, **overrides: Any) -> formats.VersionRef:
    described = formats.describe(folder)
    values: dict[str, Any] = {
        "folder": folder,
        "format": described.format,
        "checksum": described.checksum,
        "slug": described.slug or folder.name,
        "version": described.version or "1",
        "parameters": described.parameters,
        "uses_code": described.uses_code,
        "exclude": described.exclude,
        "copy_without_render": described.copy_without_render,
    }
    values.update(overrides)
    return formats.VersionRef(**values)


def test_detect_and_describe_each_format(tmp_path: Path) -> None:
    assert formats.format_ids()[:3] == ["native", "copier", "cookiecutter"]
    assert set(formats.config_files()) >= {"template.yaml", "copier.yml", "copier.yaml", "cookiecutter.json"}

    native = Path(settings.KILN_BUILTIN_TEMPLATES_DIR) / "python-package"
    described = formats.describe(native)
    assert (described.format, described.slug, described.uses_code) == ("native", "python-package", ())
    assert described.parameters["properties"]["project_name"]["default"]
    assert described.file_count > 3 and len(described.checksum) == 64

    hooks = copy_fixture("cookiecutter", "hooks", tmp_path / "cc-hooks")
    described = formats.describe(hooks)
    assert described.format == "cookiecutter" and described.slug == described.version == ""
    assert described.uses_code == ("hooks/pre_gen_project.py", "hooks/post_gen_project.py")
    assert described.parameters["x-format"] == "cookiecutter"
    assert formats.describe(hooks, "cookiecutter").checksum == described.checksum  # stable

    tasks = copy_fixture("copier", "tasks", tmp_path / "copier-tasks")
    assert formats.detect(tasks).id == "copier"
    assert formats.describe(tasks).uses_code == ("_tasks",)
    exclude = formats.describe(copy_fixture("copier", "exclude-defaults", tmp_path / "copier-exclude"))
    assert exclude.uses_code == () and ".git" in exclude.exclude and "copier.yml" in exclude.exclude

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ApplicationError) as caught:
        formats.detect(empty)
    assert caught.value.code == "template_invalid" and "cookiecutter.json" in caught.value.extra["looked_for"]
    with pytest.raises(ApplicationError) as caught:
        formats.get("helm")
    assert (caught.value.status_code, caught.value.code) == (400, "template_unsupported")
    # a broken configuration is the format's coded 400 naming the file
    with pytest.raises(ApplicationError) as caught:
        formats.describe(copy_fixture("cookiecutter", "errors-malformed-json", tmp_path / "bad-json"))
    assert caught.value.code == "template_invalid" and caught.value.extra["file"] == "cookiecutter.json"


def test_one_generator_renders_every_format_as_its_engine(tmp_path: Path) -> None:
    """ProjectGenerator (forked render process, files over the pipe) gives the engine's own bytes."""
    assert settings.KILN_RENDER_MEMORY_LIMIT > 0  # the bounded child is in play
    cases = [
        ("cookiecutter", "choices", {"license": "BSD-3-Clause", "level": 2}),
        ("copier", "questions", {"project_name": "Other Thing", "use_db": True}),
        ("copier", "yield", {}),
    ]
    for fmt, fixture, answers in cases:
        folder = copy_fixture(fmt, fixture, tmp_path / f"{fmt}-{fixture}")
        version = _ref(folder)
        prepared = formats.prepare(version)
        assert prepared.format == fmt and not prepared.runs_code
        values = formats.validate(version, answers)
        result = ProjectGenerator(prepared).render(values, DirectorySink(tmp_path / "out" / fixture))
        engine = cookiecutter if fmt == "cookiecutter" else copier
        expected = engine.render(engine.prepare(folder), answers, DirectorySink(tmp_path / "engine" / fixture))
        assert result.content_sha256 == expected.content_sha256, fixture
        assert read_tree(tmp_path / "out" / fixture) == read_tree(tmp_path / "engine" / fixture)
        assert result.file_count > 0


def test_answers_follow_each_formats_rules(tmp_path: Path) -> None:
    choices = _ref(copy_fixture("cookiecutter", "choices", tmp_path / "choices"))
    with pytest.raises(ValidationFailed) as caught:
        formats.validate(choices, {"license": "GPL"})
    assert list(caught.value.extra["fields"]) == ["parameters.license"]
    with pytest.raises(ValidationFailed) as caught:
        formats.validate(choices, {"nope": 1})
    assert "parameters.nope" in caught.value.extra["fields"]

    questions = _ref(copy_fixture("copier", "questions", tmp_path / "questions"))
    with pytest.raises(ValidationFailed) as caught:
        formats.validate(questions, {"port": 80})
    assert "ports below 1024 need root" in str(caught.value.extra["fields"])
    # a secret answer is recorded encrypted, and the render still sees it
    recorded = formats.validate(questions, {"api_token": "given-secret-canary", "port": 9000})
    assert "given-secret-canary" not in str(recorded) and set(recorded["api_token"]) == {copier.SEALED_KEY}
    assert formats.validate(questions, recorded) == recorded  # validating the recorded form again
    ProjectGenerator(formats.prepare(questions)).render(recorded, DirectorySink(tmp_path / "out"))
    tree = read_tree(tmp_path / "out")
    assert tree["summary.txt"][0].count(b"token_length=19") == 1
    assert not any(b"given-secret-canary" in data for data, _ in tree.values())


def test_code_is_refused_until_trusted_and_unsupported_code_always(tmp_path: Path) -> None:
    hooks = _ref(copy_fixture("cookiecutter", "hooks", tmp_path / "hooks"))
    with pytest.raises(ApplicationError) as caught:
        formats.validate(hooks, {})
    assert (caught.value.status_code, caught.value.code) == (400, "template_untrusted")
    assert caught.value.extra["uses_code"] == ["hooks/pre_gen_project.py", "hooks/post_gen_project.py"]
    with pytest.raises(ApplicationError) as caught:  # nothing runs even if a caller skips validation
        ProjectGenerator(formats.prepare(hooks)).render({}, NullSink())
    assert caught.value.code == "template_untrusted"
    tasks = _ref(copy_fixture("copier", "tasks", tmp_path / "tasks"))
    with pytest.raises(ApplicationError) as caught:
        formats.validate(tasks, {})
    assert caught.value.extra["uses_code"] == ["_tasks"]
    extensions = _ref(copy_fixture("copier", "code-extensions", tmp_path / "ext"), trusted=True)
    with pytest.raises(ApplicationError) as caught:
        formats.validate(extensions, {})
    assert caught.value.code == "template_unsupported" and caught.value.extra["file"] == "copier.yml"


def test_trusted_hooks_run_isolated_through_the_generator(tmp_path: Path) -> None:
    from apps.templates.services import isolation

    if not isolation.available().ok:
        pytest.skip(f"no isolation here: {isolation.available().reason}")
    folder = copy_fixture("cookiecutter", "hooks", tmp_path / "hooks")
    version = _ref(folder, trusted=True)
    prepared = formats.prepare(version)
    assert prepared.runs_code  # renders in the caller: the hooks have the sandbox's own limits
    result = ProjectGenerator(prepared).render(formats.validate(version, {}), DirectorySink(tmp_path / "out"))
    expected = cookiecutter.render(
        cookiecutter.prepare(folder), {}, DirectorySink(tmp_path / "engine"), run_hooks=isolation.cookiecutter_hook
    )
    assert result.content_sha256 == expected.content_sha256
    assert read_tree(tmp_path / "out") == read_tree(tmp_path / "engine")


# --- through the generation service (the path of REST, workflows, MCP and the CLI) -------------------


def _register(folder: Path, slug: str) -> Any:
    """A catalog template for a Cookiecutter/Copier folder, recorded as the catalog records a version."""
    from apps.templates.models import TemplateSource
    from apps.templates.services.versions import version_record_described

    described = formats.describe(folder)
    target = Path(settings.KILN_TEMPLATES_DIR) / slug / described.checksum[:16]
    shutil.copytree(folder, target)
    return version_record_described(
        folder=target,
        described=described,
        slug=slug,
        label="1.0.0",
        source=TemplateSource.UPLOAD,
        source_path=f"{slug}/{described.checksum[:16]}",
        store_blobs=False,
    ).template


@pytest.mark.django_db
def test_generation_service_renders_foreign_formats(cast: Any, tmp_path: Path) -> None:
    from apps.projects.models import ProjectFile
    from apps.projects.services.generation import (
        generated_project_dry_run,
        generated_project_execute,
        generated_project_start,
    )

    choices = _register(copy_fixture("cookiecutter", "choices", tmp_path / "choices"), "cc-choices")
    questions = _register(copy_fixture("copier", "questions", tmp_path / "questions"), "copier-questions")
    hooks = _register(copy_fixture("cookiecutter", "hooks", tmp_path / "hooks"), "cc-hooks")

    for template, answers in ((choices, {"python": "3.10"}), (questions, {"api_token": "svc-secret-canary"})):
        preview = generated_project_dry_run(
            project=cast.project, template_slug=template.slug, parameters=answers, actor=cast.alice
        )
        generated = generated_project_start(
            project=cast.project, template_slug=template.slug, parameters=answers, actor=cast.alice, enqueue=False
        )
        done = generated_project_execute(generated_id=generated.pk, owner="test:1:x").generated
        assert done.status == "completed", done.error
        assert done.content_sha256 == preview.content_sha256 and done.file_count == preview.file_count
        paths = set(ProjectFile.objects.filter(generated=done).values_list("path", flat=True))
        assert paths == {entry.path for entry in preview.files}
    assert "svc-secret-canary" not in str(done.parameters)

    with pytest.raises(ValidationFailed) as caught:
        generated_project_start(
            project=cast.project, template_slug=questions.slug, parameters={"port": 1}, actor=cast.alice
        )
    assert "parameters.port" in caught.value.extra["fields"]
    with pytest.raises(ApplicationError) as caught:
        generated_project_start(project=cast.project, template_slug=hooks.slug, parameters={}, actor=cast.alice)
    assert (caught.value.status_code, caught.value.code) == (400, "template_untrusted")
    assert caught.value.extra["uses_code"] == ["hooks/pre_gen_project.py", "hooks/post_gen_project.py"]


@pytest.mark.django_db
def test_a_git_versions_answers_file_names_its_source_and_tag(tmp_path: Path) -> None:
    """Copier writes `_src_path` (the URL it copied from) and `_commit` (the tag) in the answers file."""
    from apps.projects.services.generation import template_version_ref
    from apps.templates.models import TemplateSource
    from apps.templates.services.versions import version_record_described

    folder = copy_fixture("copier", "answers-file", tmp_path / "answers")
    url = "https://git.example.test/acme/answers-template.git"
    recorded = version_record_described(
        folder=folder,
        described=formats.describe(folder),
        slug="answers-git",
        label="v1.2.0",
        source=TemplateSource.GIT,
        commit="0123456789abcdef0123456789abcdef01234567",
        template_fields={"git_url": url},
    )  # its files in the blob store, as a git sync keeps them
    version = template_version_ref(recorded.version)
    assert version.source is not None and (version.source.url, version.source.commit) == (url, "v1.2.0")
    ProjectGenerator(formats.prepare(version)).render({}, DirectorySink(tmp_path / "out"))
    answers = (tmp_path / "out" / ".config" / "kiln-answers.yml").read_text()
    assert f"_src_path: {url}\n" in answers and "_commit: v1.2.0\n" in answers
