"""The differential corpus: each fixture template (tests/formats/corpus/<format>/<fixture>) with the
answers it is rendered with, by the real tool and by Kiln. Defaults (`{}`) and non-defaults.

`error` names the Kiln error code expected when the real tool fails too (both must fail).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Case:
    format: str
    fixture: str
    answers: dict[str, Any] = field(default_factory=dict)
    label: str = "defaults"
    error: str | None = None
    existing: dict[str, str] | None = None
    feature: str = ""

    @property
    def id(self) -> str:
        return f"{self.format}-{self.fixture}-{self.label}"


def _cases(fmt: str, fixture: str, feature: str, *answer_sets: tuple[str, dict[str, Any]], **kwargs: Any) -> list[Case]:
    sets = answer_sets or (("defaults", {}),)
    return [Case(fmt, fixture, answers, label, feature=feature, **kwargs) for label, answers in sets]


COOKIECUTTER: list[Case] = [
    *_cases(
        "cookiecutter",
        "context-order",
        "cookiecutter.json in order, defaults rendered over earlier answers, numbers and null",
        ("defaults", {}),
        ("name", {"project_name": "My Great Tool"}),
        ("slug-and-int", {"project_slug": "custom_slug", "year": 2030}),
    ),
    *_cases(
        "cookiecutter",
        "choices",
        "choice lists (first is the default, templated options, numbers)",
        ("defaults", {}),
        ("picked", {"license": "BSD-3-Clause", "python": "3.10"}),
        ("templated-option", {"license": "{{ cookiecutter.author }} proprietary", "author": "Grace"}),
        ("number", {"level": 1}),
    ),
    *_cases(
        "cookiecutter",
        "dicts",
        "dict variables, rendered recursively and merged with answers",
        ("defaults", {}),
        ("merged", {"settings": {"database": "sqlite", "nested": {"debug": True}}}),
    ),
    *_cases(
        "cookiecutter",
        "booleans",
        "boolean variables (yes/no answers) and a conditional file",
        ("defaults", {}),
        ("flipped", {"use_docker": False, "use_ci": "yes"}),
        ("bool-answer", {"use_ci": True}),
    ),
    *_cases(
        "cookiecutter",
        "private",
        "_private (raw) and __private (rendered) variables",
        ("defaults", {}),
        ("name", {"name": "other"}),
    ),
    *_cases("cookiecutter", "prompts", "__prompts__ labels", ("defaults", {}), ("chocolate", {"flavour": "chocolate"})),
    *_cases("cookiecutter", "copy-without-render", "_copy_without_render (paths still rendered)"),
    *_cases(
        "cookiecutter",
        "extensions",
        "built-in extensions: jsonify, slugify, random_ascii_string, uuid4, now",
        ("defaults", {}),
        ("cyrillic", {"name": "Другое имя проекта"}),
    ),
    *_cases("cookiecutter", "jinja2-time-alias", "jinja2_time.TimeExtension alias, jinja2.ext.do and loopcontrols"),
    *_cases("cookiecutter", "templates-dir", "templates/ folder for include and extends"),
    *_cases("cookiecutter", "line-endings", "line endings taken from each source file"),
    *_cases("cookiecutter", "new-lines-forced", "_new_lines"),
    *_cases(
        "cookiecutter",
        "layout",
        "the single {{cookiecutter.*}} folder, nested templated folders, empty names skipped",
        ("defaults", {}),
        ("extra", {"with_extra": True, "repo": "r2"}),
    ),
    *_cases("cookiecutter", "binaries-modes", "binary files copied, file modes kept"),
    *_cases("cookiecutter", "env-vars", "_jinja2_env_vars (whitespace options)"),
    *_cases(
        "cookiecutter",
        "hooks",
        "pre_gen_project and post_gen_project hooks (Python, rendered with Jinja)",
        ("defaults", {}),
        ("options", {"keep_docs": False, "license": "none"}),
    ),
    *_cases(
        "cookiecutter",
        "hooks",
        "a pre_gen_project hook that refuses",
        ("bad-name", {"name": "Bad Name"}),
        error="hook_failed",
    ),
    *_cases("cookiecutter", "hooks-shell", "a shell post_gen_project hook"),
    *_cases("cookiecutter", "context-update", "a hook's render updating the context; lists appended to"),
    *_cases("cookiecutter", "pre-prompt", "a pre_prompt hook rewriting cookiecutter.json"),
    *_cases("cookiecutter", "hooks-failing", "a failing post_gen_project hook", error="hook_failed"),
    *_cases("cookiecutter", "skipped-broken", "a broken file the tool never renders (its name renders empty)"),
    *_cases(
        "cookiecutter",
        "skipped-broken",
        "the same file rendered",
        ("rendered", {"with_broken": True}),
        error="template_syntax_error",
    ),
    *_cases("cookiecutter", "errors-malformed-json", "malformed cookiecutter.json", error="template_invalid"),
    *_cases("cookiecutter", "errors-extension", "an extension that is not built in", error="template_unsupported"),
    *_cases("cookiecutter", "errors-undefined", "an undefined variable", error="template_variable_missing"),
    *_cases("cookiecutter", "errors-not-utf8", "a text file that is not UTF-8", error="template_error"),
]

COPIER: list[Case] = [
    *_cases(
        "copier",
        "types",
        "question types str/int/float/bool/json/yaml/path, inferred types",
        ("defaults", {}),
        (
            "cast",
            {
                "name": "x",
                "count": "7",
                "ratio": 2,
                "enabled": "no",
                "settings": {"z": 1},
                "extra": "[1, 2]",
                "location": "lib",
                "untyped_number": "9",
                "untyped_list": "[q]",
            },
        ),
    ),
    *_cases(
        "copier",
        "choices",
        "choices as list and mapping, multiselect, per-choice validator",
        ("defaults", {}),
        (
            "picked",
            {"license": "MIT", "python": "3.12", "level": "3", "features": ["docker", "docs"], "database": "postgres"},
        ),
    ),
    *_cases(
        "copier",
        "choices",
        "a disabled choice",
        ("disabled-choice", {"features": ["docker"], "database": "sqlite"}),
        error="validation_error",
    ),
    *_cases(
        "copier",
        "questions",
        "templated defaults, when, validator, secret, help, placeholder, the answers file",
        ("defaults", {}),
        ("db", {"project_name": "Other Thing", "use_db": True}),
        ("secret-given", {"api_token": "given-secret-canary", "port": 9000}),
    ),
    *_cases(
        "copier",
        "questions",
        "a validator's message",
        ("bad-slug", {"project_slug": "Bad Slug"}),
        error="validation_error",
    ),
    *_cases("copier", "questions", "a numeric validator", ("low-port", {"port": 80}), error="validation_error"),
    *_cases("copier", "subdirectory", "_subdirectory (templated) and templated siblings"),
    *_cases("copier", "suffix-empty", '_templates_suffix: "" (everything rendered, binaries copied)'),
    *_cases("copier", "suffix-custom", "_templates_suffix: .tmpl"),
    *_cases(
        "copier",
        "exclude",
        "_exclude (gitignore syntax, negation, templated)",
        ("defaults", {}),
        ("notes", {"with_notes": True}),
    ),
    *_cases("copier", "exclude-defaults", "Copier's default excludes"),
    *_cases(
        "copier",
        "skip-if-exists",
        "_skip_if_exists over existing files",
        ("existing", {}),
        existing={"config/secrets.env": "SECRET=kept\n", "LOCAL.md": "mine\n", "README.md": "old\n"},
    ),
    *_cases("copier", "skip-if-exists", "_skip_if_exists on a first copy", ("fresh", {})),
    *_cases(
        "copier",
        "answers-file",
        "_answers_file with _copier_answers and _copier_conf",
        ("defaults", {}),
        ("answers", {"name": "n2", "size": 5, "tags": ["z"], "secret_key": "other-secret-canary"}),
    ),
    *_cases("copier", "envops", "_envops with custom delimiters and whitespace options"),
    *_cases(
        "copier",
        "yield",
        "{% yield %} in folder and file names",
        ("defaults", {}),
        ("one", {"services": [{"name": "solo", "port": 1}]}),
    ),
    *_cases("copier", "include", "!include of other YAML files and several documents"),
    *_cases(
        "copier",
        "builtin-extensions",
        "_jinja_extensions Kiln provides: jinja2_time's now tag, jinja2.ext.do and loopcontrols",
        ("defaults", {}),
        ("named", {"name": "other"}),
    ),
    *_cases("copier", "ansible-filters", "jinja2_ansible_filters"),
    *_cases(
        "copier",
        "tasks",
        "_tasks (shell, argv, when, working_directory)",
        ("defaults", {}),
        ("no-extra", {"make_extra": False}),
    ),
    *_cases(
        "copier",
        "empty-names",
        "files and folders whose names render empty",
        ("defaults", {}),
        ("flipped", {"with_docs": True, "with_ci": False}),
    ),
    *_cases("copier", "modes-binaries", "modes, binaries, line endings kept"),
    *_cases("copier", "mutation", "templates appending to lists and updating dicts (Copier's mutable sandbox)"),
    *_cases("copier", "skipped-broken", "a broken file the tool never renders (excluded)"),
    *_cases(
        "copier",
        "skipped-broken",
        "the same file rendered",
        ("rendered", {"with_broken": True}),
        error="template_syntax_error",
    ),
    *_cases("copier", "errors-malformed", "malformed copier.yml", error="template_invalid"),
    *_cases("copier", "errors-validator", "validator failure", ("port", {"port": 80}), error="validation_error"),
    *_cases("copier", "errors-validator", "invalid choice", ("choice", {"kind": "c"}), error="validation_error"),
]

ALL = COOKIECUTTER + COPIER
