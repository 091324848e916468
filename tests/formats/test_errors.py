"""Every way a Cookiecutter or Copier template can fail is a coded 4xx naming the file and line.

Also the hostile-input side: configurations that are deep, huge, self-including or slow to
render are refused within a bound, never crash or hang the process.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from apps.projects.services.project_generator import GenerationFailed, NullSink
from apps.templates.services.formats import cookiecutter, copier
from apps.templates.services.formats._engine import FormatInvalid, FormatUnsupported, TemplateUntrusted
from core.exceptions import ApplicationError, ValidationFailed
from tests.formats.harness import CORPUS, copy_fixture


def _cookiecutter(tmp_path: Path, config: Any, files: dict[str, str] | None = None) -> Path:
    folder = tmp_path / "cc"
    (folder / "{{cookiecutter.name}}").mkdir(parents=True)
    text = config if isinstance(config, str) else json.dumps(config, indent=2)
    (folder / "cookiecutter.json").write_text(text)
    for path, content in (files or {"x.txt": "x"}).items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    return folder


def _copier(tmp_path: Path, config: str, files: dict[str, str] | None = None) -> Path:
    folder = tmp_path / "cp"
    folder.mkdir()
    (folder / "copier.yml").write_text(config)
    for path, content in (files or {"x.txt.jinja": "x"}).items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    return folder


def test_malformed_cookiecutter_json_names_the_line(tmp_path: Path) -> None:
    folder = copy_fixture("cookiecutter", "errors-malformed-json", tmp_path / "t")
    with pytest.raises(FormatInvalid) as caught:
        cookiecutter.load_spec(folder)
    error = caught.value
    assert (error.status_code, error.code) == (400, "template_invalid")
    assert error.extra["file"] == "cookiecutter.json" and error.extra["line"] == 4
    assert error.message.startswith("cookiecutter.json:4:")


def test_an_extension_that_is_not_built_in_is_template_unsupported(tmp_path: Path) -> None:
    folder = _cookiecutter(
        tmp_path, {"name": "x", "_extensions": ["cookiecutter.extensions.SlugifyExtension", "evil.Ext"]}
    )
    with pytest.raises(FormatInvalid) as caught:
        cookiecutter.load_spec(folder)
    error = caught.value
    assert (error.status_code, error.code) == (400, "template_unsupported")
    assert error.extra == {"file": "cookiecutter.json", "line": 5, "extension": "evil.Ext"}


def test_environment_options_that_are_code_are_refused(tmp_path: Path) -> None:
    folder = _cookiecutter(tmp_path, {"name": "x", "_jinja2_env_vars": {"finalize": "os.system"}})
    with pytest.raises(FormatInvalid) as caught:
        cookiecutter.load_spec(folder)
    assert caught.value.code == "template_unsupported" and caught.value.extra["line"] == 4


def test_an_undefined_variable_names_file_and_line(tmp_path: Path) -> None:
    folder = copy_fixture("cookiecutter", "errors-undefined", tmp_path / "t")
    with pytest.raises(GenerationFailed) as caught:
        cookiecutter.render(cookiecutter.prepare(folder), {}, NullSink())
    error = caught.value
    assert (error.status_code, error.code) == (422, "template_variable_missing")
    assert error.extra == {"file": "{{cookiecutter.name}}/bad.txt", "line": 2}


def test_untrusted_code_is_refused_before_anything_runs(tmp_path: Path) -> None:
    folder = copy_fixture("cookiecutter", "hooks", tmp_path / "t")
    spec = cookiecutter.load_spec(folder)
    assert spec.uses_code == ["hooks/pre_gen_project.py", "hooks/post_gen_project.py"]
    with pytest.raises(TemplateUntrusted) as caught:
        cookiecutter.render(cookiecutter.prepare(folder), {}, NullSink(), run_hooks=None)
    assert (caught.value.status_code, caught.value.code) == (400, "template_untrusted")
    assert caught.value.extra == {"uses_code": spec.uses_code}
    tasks = copier.load_spec(copy_fixture("copier", "tasks", tmp_path / "tasks"))
    assert tasks.uses_code == ["_tasks"]
    with pytest.raises(TemplateUntrusted):
        copier.render(copier.prepare(tasks.folder), {}, NullSink(), run_tasks=None)


def test_a_failing_hook_fails_with_its_output(tmp_path: Path) -> None:
    from apps.templates.services import isolation

    folder = copy_fixture("cookiecutter", "hooks-failing", tmp_path / "t")
    with pytest.raises(GenerationFailed) as caught:
        cookiecutter.render(cookiecutter.prepare(folder), {}, NullSink(), run_hooks=isolation.cookiecutter_hook)
    error = caught.value
    assert (error.status_code, error.code) == (422, "hook_failed")
    assert error.extra["exit_status"] == 3 and error.extra["stage"] == "post_gen_project"
    assert "post hook refuses failing" in error.extra["output"]


def test_jinja_extensions_and_migrations_are_code(tmp_path: Path) -> None:
    spec = copier.load_spec(copy_fixture("copier", "code-extensions", tmp_path / "t"))
    assert spec.uses_code == ["_migrations", "_jinja_extensions"]
    with pytest.raises(FormatUnsupported) as caught:
        copier.render(copier.prepare(spec.folder), {}, NullSink(), run_tasks=lambda **kw: kw["files"])
    assert caught.value.code == "template_unsupported" and caught.value.extra["line"] == 1


def test_malformed_copier_yml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(FormatInvalid) as caught:
        copier.load_spec(copy_fixture("copier", "errors-malformed", tmp_path / "t"))
    error = caught.value
    assert (error.status_code, error.code) == (400, "template_invalid")
    assert error.extra == {"file": "copier.yml", "line": 4}
    assert error.message.startswith("copier.yml:4: not valid YAML")


def test_a_bad_question_names_its_line(tmp_path: Path) -> None:
    folder = _copier(tmp_path, "name:\n  default: x\ntoken:\n  type: str\n  secret: true\n")
    with pytest.raises(FormatInvalid) as caught:
        copier.load_spec(folder)
    assert caught.value.extra == {"file": "copier.yml", "question": "token", "line": 3}
    assert "needs a default" in caught.value.message


def test_a_failing_validator_is_a_field_error(tmp_path: Path) -> None:
    prepared = copier.prepare(copy_fixture("copier", "errors-validator", tmp_path / "t"))
    with pytest.raises(ValidationFailed) as caught:
        copier.validate(prepared, {"port": 80, "kind": "c"})
    error = caught.value
    assert (error.status_code, error.code) == (400, "validation_error")
    assert error.extra["fields"] == {
        "parameters.port": ["Validation error for question 'port': Port 80 is privileged"],
        "parameters.kind": ['Invalid choice for \'kind\': "c" is not one of ["a", "b"]'],
    }


def test_includes_stay_inside_the_template_and_cannot_loop(tmp_path: Path) -> None:
    outside = tmp_path / "outside.yml"
    outside.write_text("stolen:\n  default: yes\n")
    folder = _copier(tmp_path, "--- !include ../outside.yml\n")
    with pytest.raises(FormatInvalid) as caught:
        copier.load_spec(folder)
    assert "outside the template" in caught.value.message and caught.value.extra["line"] == 1
    (folder / "copier.yml").write_text("--- !include loop.yml\n")
    (folder / "loop.yml").write_text("--- !include copier.yml\n")
    started = time.monotonic()
    with pytest.raises(FormatInvalid) as caught:
        copier.load_spec(folder)
    assert time.monotonic() - started < 10
    assert caught.value.code == "template_invalid"


def test_yaml_alias_bombs_are_refused_quickly(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    folder = _copier(tmp_path, "\n".join(lines) + "\n")
    started = time.monotonic()
    with pytest.raises(FormatInvalid) as caught:
        copier.load_spec(folder)
    assert time.monotonic() - started < 10
    assert "expands to more than" in caught.value.message


def test_deep_cookiecutter_json_is_refused(tmp_path: Path) -> None:
    folder = _cookiecutter(tmp_path, '{"name": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(FormatInvalid) as caught:
        cookiecutter.load_spec(folder)
    assert caught.value.code == "template_invalid"


def test_a_slow_template_stops_at_the_render_time_limit(tmp_path: Path) -> None:
    folder = _copier(
        tmp_path,
        "n:\n  default: 1\n",
        {"slow.txt.jinja": "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"},
    )
    started = time.monotonic()
    with pytest.raises(GenerationFailed) as caught:
        copier.render(copier.prepare(folder), {}, NullSink(), time_limit=1)
    assert caught.value.code == "render_time_limit" and caught.value.extra["file"] == "slow.txt.jinja"
    assert time.monotonic() - started < 10


def test_copier_filters_that_read_the_host_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KILN_TEST_CANARY", "kiln-canary-0a1b2c")
    folder = _copier(tmp_path, "n:\n  default: 1\n", {"env.txt.jinja": "{{ '$KILN_TEST_CANARY' | expandvars }}"})
    with pytest.raises(ApplicationError) as caught:
        copier.render(copier.prepare(folder), {}, NullSink())
    assert caught.value.code == "template_unsupported"
    assert "kiln-canary-0a1b2c" not in caught.value.message


def test_every_corpus_error_case_is_a_4xx(tmp_path: Path) -> None:
    from tests.formats.cases import ALL

    for case in (c for c in ALL if c.error):
        assert (CORPUS / case.format / case.fixture).is_dir()
        assert case.error in {
            "template_invalid",
            "template_unsupported",
            "template_variable_missing",
            "template_error",
            "validation_error",
            "hook_failed",
            "template_syntax_error",
        }


def test_growing_a_container_is_bounded(tmp_path: Path) -> None:
    folder = _copier(
        tmp_path,
        "n:\n  default: 1\n",
        {
            "grow.txt.jinja": "{% set l = [1] %}{% for i in range(64) %}{% set _ = l.extend(l) %}{% endfor %}{{ l | length }}"
        },
    )
    started = time.monotonic()
    with pytest.raises(GenerationFailed) as caught:
        copier.render(copier.prepare(folder), {}, NullSink())
    assert caught.value.code == "output_limit_exceeded" and caught.value.extra["file"] == "grow.txt.jinja"
    assert time.monotonic() - started < 10


def test_a_lone_surrogate_in_output_is_a_template_error(tmp_path: Path) -> None:
    folder = _copier(tmp_path, "n:\n  default: 1\n", {"bad.txt.jinja": "{{ '%c' % 55296 }}"})
    with pytest.raises(GenerationFailed) as caught:
        copier.render(copier.prepare(folder), {}, NullSink())
    assert caught.value.code == "template_error" and caught.value.extra["reason"] == "not_utf8"
    cc = _cookiecutter(tmp_path, {"name": "x"}, {"{{cookiecutter.name}}/bad.txt": "{{ '%c' % 55296 }}"})
    with pytest.raises(GenerationFailed) as caught:
        cookiecutter.render(cookiecutter.prepare(cc), {}, NullSink())
    assert caught.value.extra["file"] == "{{cookiecutter.name}}/bad.txt"


def test_copier_glob_lists_are_bounded(tmp_path: Path) -> None:
    folder = _copier(tmp_path, "_exclude:\n  - '" + "[" * 20000 + "'\nn:\n  default: 1\n")
    started = time.monotonic()
    with pytest.raises(FormatInvalid) as caught:
        copier.load_spec(folder)
    assert "at most 100 patterns" in caught.value.message and caught.value.extra["line"] == 1
    assert time.monotonic() - started < 5


def test_extensions_kiln_provides_are_code_but_render(tmp_path: Path) -> None:
    """Copier asks --trust for any _jinja_extensions, so they stay uses_code; Kiln renders the ones it provides."""
    spec = copier.load_spec(copy_fixture("copier", "builtin-extensions", tmp_path / "t"))
    assert spec.uses_code == ["_jinja_extensions"]
    assert copier.unsupported(spec) is None
    spec.settings["jinja_extensions"] = [*spec.settings["jinja_extensions"], "jinja2_slugify.SlugifyExtension"]
    refused = copier.unsupported(spec)
    assert refused is not None and refused.extra["extensions"] == ["jinja2_slugify.SlugifyExtension"]
