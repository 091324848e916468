"""ProjectGenerator and the generation service on the database: rules of the native format."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from apps.projects.models import GeneratedProject, ProjectFile
from apps.projects.services.generation import (
    generated_project_dry_run,
    generated_project_execute,
    generated_project_start,
)
from core.exceptions import ValidationFailed
from tests.trees import materialised

pytestmark = pytest.mark.django_db


def generate(cast, template, parameters=None):
    generated = generated_project_start(
        project=cast.project, template_slug=template.slug, parameters=parameters or {}, actor=cast.alice, enqueue=False
    )
    return generated_project_execute(generated_id=generated.pk, owner="test:1:x").generated


NAME_PARAMS = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "default": "demo", "pattern": "^[a-z][a-z0-9_]*$"},
        "with_extra": {"type": "boolean", "default": False},
        "count": {"type": "integer", "default": 2, "minimum": 0, "maximum": 10},
        "up": {"type": "string", "default": "../"},
        "root": {"type": "string", "default": "/"},
    },
}


def test_renders_contents_paths_and_keeps_modes_and_binaries(cast, make_template):
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
    template = make_template(
        {
            "README.md": "# {{ name }}\n{% for i in range(count) %}- item {{ i }}\n{% endfor %}",
            "src/{{ name }}/__init__.py": "NAME = {{ name | tojson }}\n",
            "plain.txt": "no markers here {not jinja}\n",
            "logo.png": png,
            "scripts/run.sh": ("#!/bin/sh\necho {{ name }}\n", 0o755),
            "{% if with_extra %}EXTRA.md{% endif %}": "extra\n",
            "{% if with_extra %}extra_dir{% endif %}/file.txt": "x\n",
        },
        parameters=NAME_PARAMS,
    )
    generated = generate(cast, template, {"name": "kiln"})
    assert generated.status == "completed", generated.error
    root = materialised(generated)
    assert (root / "README.md").read_text() == "# kiln\n- item 0\n- item 1\n"
    assert (root / "src/kiln/__init__.py").read_text() == 'NAME = "kiln"\n'
    assert (root / "plain.txt").read_text() == "no markers here {not jinja}\n"
    assert (root / "logo.png").read_bytes() == png
    assert os.stat(root / "scripts/run.sh").st_mode & 0o777 == 0o755
    assert not (root / "EXTRA.md").exists() and not (root / "extra_dir").exists()
    rows = {f.path: f for f in ProjectFile.objects.filter(generated=generated)}
    assert set(rows) == {"README.md", "src/kiln/__init__.py", "plain.txt", "logo.png", "scripts/run.sh"}
    assert rows["logo.png"].is_binary and not rows["README.md"].is_binary
    assert rows["scripts/run.sh"].mode == 0o755 and rows["README.md"].mode == 0o644
    assert generated.file_count == 5
    assert generated.total_bytes == sum(r.size for r in rows.values())
    assert (generated.progress_done, generated.progress_total) == (5, 5)


def test_conditional_files_appear_when_enabled(cast, make_template):
    template = make_template({"{% if with_extra %}EXTRA.md{% endif %}": "extra\n"}, parameters=NAME_PARAMS)
    generated = generate(cast, template, {"with_extra": True})
    assert (materialised(generated) / "EXTRA.md").read_text() == "extra\n"


def test_exclude_and_copy_without_render(cast, make_template):
    template = make_template(
        {"keep.txt": "{{ name }}", "raw/page.html": "{{ not_rendered }}", "junk/__pycache__/x.pyc": b"\x00"},
        parameters=NAME_PARAMS,
        exclude=["**/__pycache__/**"],
        copy_without_render=["raw/*"],
    )
    generated = generate(cast, template)
    root = materialised(generated)
    assert (root / "keep.txt").read_text() == "demo"
    assert (root / "raw/page.html").read_text() == "{{ not_rendered }}"
    assert not (root / "junk").exists()


def test_output_is_deterministic(cast, make_template):
    template = make_template({"a.txt": "{{ name }}\n", "b/c.txt": "c", "d.bin": b"\x00\x01"}, parameters=NAME_PARAMS)
    first = generate(cast, template, {"name": "same"})
    second = generate(cast, template, {"name": "same"})
    other = generate(cast, template, {"name": "other"})
    assert first.content_sha256 == second.content_sha256
    assert first.content_sha256 != other.content_sha256
    first_files = {f.path: f.sha256 for f in first.files.all()}
    assert first_files == {f.path: f.sha256 for f in second.files.all()}


def test_dry_run_writes_nothing_and_matches_real_run(cast, make_template, settings):
    template = make_template({"a.txt": "{{ name }}\n"}, parameters=NAME_PARAMS)
    result = generated_project_dry_run(
        project=cast.project, template_slug=template.slug, parameters={}, actor=cast.alice
    )
    assert [f.path for f in result.files] == ["a.txt"]
    assert not Path(settings.GENERATED_PROJECTS_DIR).exists() or not any(
        Path(settings.GENERATED_PROJECTS_DIR).rglob("*")
    )
    assert GeneratedProject.objects.count() == 0
    assert generate(cast, template).content_sha256 == result.content_sha256


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        ({"name": 5}, "parameters.name"),
        ({"name": "Bad-Name"}, "parameters.name"),
        ({"count": 99}, "parameters.count"),
        ({"unexpected": "x"}, "parameters.unexpected"),
    ],
)
def test_parameters_are_validated_against_the_schema(cast, make_template, parameters, field):
    template = make_template({"a.txt": "x"}, parameters=NAME_PARAMS)
    with pytest.raises(ValidationFailed) as info:
        generated_project_start(
            project=cast.project, template_slug=template.slug, parameters=parameters, actor=cast.alice
        )
    assert field in info.value.extra["fields"]
    assert GeneratedProject.objects.count() == 0


def test_required_parameter_missing(cast, make_template):
    schema = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
    template = make_template({"a.txt": "{{ name }}"}, parameters=schema)
    with pytest.raises(ValidationFailed) as info:
        generated_project_start(project=cast.project, template_slug=template.slug, parameters={}, actor=cast.alice)
    assert "parameters.name" in info.value.extra["fields"]


@pytest.mark.parametrize(
    ("files", "code"),
    [
        ({"{{ up }}escape.txt": "x"}, "unsafe_path"),
        ({"{{ up }}{{ up }}sentinel.txt": "owned"}, "unsafe_path"),
        ({"{{ root }}tmp{{ root }}abs.txt": "x"}, "unsafe_path"),
        ({"{{ '.git' }}/hooks/pre-commit": "#!/bin/sh\n"}, "unsafe_path"),
        ({"{{ '.GIT' }}/config": "x"}, "unsafe_path"),
        ({"a{{ '%c' % 0 }}b": "x"}, "unsafe_path"),
        ({"{{ up }}": "x"}, "unsafe_path"),
        ({"a.txt": "{{ ''.__class__.__mro__[1].__subclasses__() }}"}, "template_security_violation"),
        ({"a.txt": "{{ '{0.__class__.__mro__}'|attr('format')(1) }}"}, "template_security_violation"),
        ({"a.txt": "{{ cycler.__init__.__globals__ }}"}, "template_security_violation"),
        ({"a.txt": "{{ 'a' * 100000000 }}"}, "output_limit_exceeded"),
        ({"a.txt": "{{ '%099999999d' % 1 }}"}, "output_limit_exceeded"),
        ({"a.txt": "{{ 'x'.center(999999999) }}"}, "output_limit_exceeded"),
        ({"a.txt": "{{ 9 ** 99999999 }}"}, "output_limit_exceeded"),
        ({"a.txt": "{{ '{:>999999999}'.format(1) }}"}, "output_limit_exceeded"),
        ({"a.txt": "{{ '{:>{}}'.format(1, 999999999) }}"}, "output_limit_exceeded"),
        ({"a.txt": "{{ 'x'|indent(999999999) }}"}, "output_limit_exceeded"),
        ({"a.txt": "{{ missing_variable }}"}, "template_variable_missing"),
        ({"a.txt": "line1\n{% if %}\n"}, "template_syntax_error"),
        ({"A.txt": "1", "{{ 'a' }}.txt": "2"}, "duplicate_output_path"),
    ],
)
def test_bad_templates_fail_cleanly_and_write_nothing_outside(cast, make_template, sentinel, files, code, settings):
    template = make_template(files, parameters=NAME_PARAMS)
    generated = generate(cast, template)
    assert generated.status == "failed"
    assert generated.error["code"] == code, generated.error
    assert "Traceback" not in generated.error["message"]
    assert ProjectFile.objects.filter(generated=generated).count() == 0
    root = Path(settings.GENERATED_PROJECTS_DIR)
    assert not list(root.parent.glob("escape.txt")) and not Path("/tmp/abs.txt").exists()


def test_render_error_names_file_and_line(cast, make_template):
    template = make_template({"docs/guide.md": "ok\nok\n{{ nope }}\n"}, parameters=NAME_PARAMS)
    generated = generate(cast, template)
    assert generated.error["code"] == "template_variable_missing"
    assert "docs/guide.md:3" in generated.error["message"]
    assert generated.error["extra"] == {"file": "docs/guide.md", "line": 3}


def test_file_count_and_size_caps(cast, make_template, settings):
    settings.KILN_MAX_FILES = 3
    template = make_template({f"f{i}.txt": "x" for i in range(5)})
    assert generate(cast, template).error["code"] == "too_many_files"
    settings.KILN_MAX_FILES = 100
    settings.MAX_FILE_SIZE = 100
    template = make_template({"big.txt": "{{ 'x' * 50 }}{{ 'y' * 60 }}"})
    assert generate(cast, template).error["code"] == "output_limit_exceeded"
    settings.MAX_FILE_SIZE = 10_000
    settings.KILN_MAX_TOTAL_BYTES = 150
    template = make_template({"a.txt": "a" * 100, "b.txt": "b" * 100})
    assert generate(cast, template).error["code"] == "output_limit_exceeded"


def test_render_time_limit(cast, make_template, settings):
    settings.KILN_RENDER_TIME_LIMIT = 0.2
    template = make_template(
        {"slow.txt": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"}
    )
    generated = generate(cast, template)
    assert generated.error["code"] == "render_time_limit"


def test_symlink_in_template_fails_generation(cast, make_template, settings, sentinel):
    template = make_template({"a.txt": "x"})
    folder = Path(settings.KILN_TEMPLATES_DIR) / template.source_path
    os.symlink(sentinel, folder / "leak.txt")
    generated = generate(cast, template)
    assert generated.status == "failed"
    assert generated.error["code"] == "symlink_not_allowed"


def test_context_is_plain_json(cast, make_template):
    template = make_template({"a.txt": "{{ name.upper() }}-{{ name.__class__ }}"}, parameters=NAME_PARAMS)
    generated = generate(cast, template)
    assert generated.error["code"] == "template_security_violation"


def test_each_templated_path_segment_renders_once_per_generation(cast, make_template, monkeypatch, settings):
    from jinja2 import Template

    settings.KILN_RENDER_MEMORY_LIMIT = 0  # render in this process, where the counter can see it

    files = {f"src/{{{{ name }}}}/m{i}.py": f"X = {i}\n" for i in range(6)}
    files["{% if with_extra %}extra{% endif %}/a.txt"] = "a\n"
    files["{% if with_extra %}extra{% endif %}/b.txt"] = "b\n"
    template = make_template(files, parameters=NAME_PARAMS)
    renders = []
    original = Template.render

    def counting(self, *args, **kwargs):
        value = original(self, *args, **kwargs)
        renders.append(value)
        return value

    monkeypatch.setattr(Template, "render", counting)
    first = generate(cast, template, {"name": "one"})
    assert first.status == "completed", first.error
    assert sorted(renders) == ["", "one"]  # two distinct segments, each rendered once for 8 files
    second = generate(cast, template, {"name": "two", "with_extra": True})
    paths = set(ProjectFile.objects.filter(generated=second).values_list("path", flat=True))
    assert paths == {f"src/two/m{i}.py" for i in range(6)} | {"extra/a.txt", "extra/b.txt"}
    assert sorted(renders) == ["", "extra", "one", "two"]  # a new generation renders them again


@pytest.mark.parametrize(
    ("patterns", "matching", "not_matching"),
    [
        (["*.pyc"], ["a.pyc", "src/deep/b.pyc"], ["a.py", "pyc"]),
        (["**/__pycache__/**"], ["__pycache__/x.pyc", "src/__pycache__/y"], ["src/pycache/y"]),
        (["static/**"], ["static", "static/a.css", "static/img/b.png"], ["statics/a", "src/static/a"]),
        (["docs/[ab].md", "LICENSE"], ["docs/a.md", "docs/b.md", "LICENSE"], ["docs/c.md", "LICENSE.txt"]),
        ([], [], ["anything", "a/b"]),
    ],
)
def test_glob_matcher(patterns, matching, not_matching):
    from apps.projects.services.project_generator import glob_matcher

    matches = glob_matcher(patterns)
    assert [rel for rel in matching if matches(rel)] == matching
    assert [rel for rel in not_matching if matches(rel)] == []


def test_file_rows_are_inserted_in_batches_as_given(cast, make_template):
    from django.db import IntegrityError, transaction

    template = make_template({"a.txt": "a\n"})
    generated = generate(cast, template)
    rows = [
        (f"dir{i % 7}/naïve {i:04d}.txt", i, f"{i:064x}", 0o755 if i % 3 == 0 else 0o644, i % 5 == 0)
        for i in range(2500)
    ]
    with transaction.atomic():
        ProjectFile.objects.filter(generated=generated).delete()
        ProjectFile.objects.insert_many(generated.pk, rows)
    stored = sorted(
        ProjectFile.objects.filter(generated=generated).values_list("path", "size", "sha256", "mode", "is_binary")
    )
    assert stored == sorted(rows)
    with pytest.raises(IntegrityError), transaction.atomic():
        ProjectFile.objects.insert_many(generated.pk, rows[:1])  # (generated, path) stays unique


def test_missing_template_files_are_named_as_such_not_as_a_storage_error(cast, make_template, settings):
    import shutil

    from apps.projects.services.generation import generated_project_dry_run
    from apps.projects.services.project_generator import clear_template_cache
    from apps.templates.services.catalog import template_folder
    from core.exceptions import ApplicationError

    template = make_template({"a.txt": "{{ name }}\n"}, parameters=NAME_PARAMS)
    shutil.rmtree(template_folder(template))  # e.g. a worker without the shared KILN_TEMPLATES_DIR
    clear_template_cache()
    failed = generate(cast, template)
    assert failed.status == "failed"
    assert failed.error["code"] == "template_files_missing"
    assert "KILN_TEMPLATES_DIR" in failed.error["message"]
    assert str(settings.KILN_TEMPLATES_DIR) not in failed.error["message"]  # no server paths
    with pytest.raises(ApplicationError) as raised:
        generated_project_dry_run(project=cast.project, template_slug=template.slug, parameters={}, actor=cast.alice)
    assert (raised.value.status_code, raised.value.code) == (503, "template_files_missing")
