"""What a repository made by Copier or cruft says about its template: the answers files.

* Copier writes `.copier-answers.yml` (or the template's `_answers_file`): `_src_path` (where the
  template came from), `_commit` (the template version, `git describe` of it: a tag such as
  `1.2.0`, or `1.2.0-3-gabc1234`), then the answers that are not secret.
* cruft writes `.cruft.json`: `template` (URL), `commit` (a sha), `checkout`, `directory`,
  `context: {"cookiecutter": {answers..., "_template": ...}}`, `skip`.

Both are read as untrusted input: size-capped, YAML without aliases or tags beyond plain values,
JSON through the bounded reader; answers are plain JSON values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import yaml

from core.exceptions import ValidationFailed
from core.values import UntrustedValueError, load_untrusted_json, load_untrusted_yaml

COPIER_FILES = (".copier-answers.yml", ".copier-answers.yaml")
CRUFT_FILE = ".cruft.json"
MAX_BYTES = 256 * 1024


class AnswersFileInvalid(ValidationFailed):
    default_code = "answers_file_invalid"


@dataclass(frozen=True)
class RecordedAnswers:
    """What an answers file records: the tool, the template source, its version, the answers."""

    tool: str  # "copier" | "cruft"
    path: str
    source: str  # the template's URL or path as the tool recorded it
    version: str  # copier: the `_commit` label; cruft: the commit sha
    answers: dict[str, Any] = field(default_factory=dict)

    @property
    def version_tag(self) -> str:
        """`1.2.0` of a `git describe` label `1.2.0-3-gabc1234` (Copier's `_commit` past a tag)."""
        parts = self.version.rsplit("-", 2)
        if len(parts) == 3 and parts[2].startswith("g") and parts[1].isdigit():
            return parts[0]
        return self.version


def _too_large(path: str) -> AnswersFileInvalid:
    return AnswersFileInvalid(f"{path} is larger than {MAX_BYTES} bytes.", extra={"file": path})


def parse_copier_answers(data: bytes, *, path: str = COPIER_FILES[0]) -> RecordedAnswers:
    if len(data) > MAX_BYTES:
        raise _too_large(path)
    try:
        loaded = load_untrusted_yaml(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError, UntrustedValueError) as exc:
        reason = exc.message if isinstance(exc, UntrustedValueError) else str(exc).splitlines()[0]
        raise AnswersFileInvalid(f"{path} is not a readable YAML mapping: {reason}", extra={"file": path}) from None
    if not isinstance(loaded, dict):
        raise AnswersFileInvalid(f"{path} must be a mapping of answers.", extra={"file": path})
    source, commit = loaded.get("_src_path"), loaded.get("_commit")
    if not isinstance(source, str) or not source or not isinstance(commit, (str, int, float)):
        raise AnswersFileInvalid(
            f"{path} has no _src_path and _commit: Kiln cannot tell which template version made it.",
            extra={"file": path},
        )
    answers = {str(k): v for k, v in loaded.items() if not str(k).startswith("_")}
    return RecordedAnswers("copier", path, source, str(commit), answers)


def parse_cruft(data: bytes, *, path: str = CRUFT_FILE) -> RecordedAnswers:
    if len(data) > MAX_BYTES:
        raise _too_large(path)
    try:
        loaded = load_untrusted_json(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, UntrustedValueError) as exc:
        raise AnswersFileInvalid(f"{path} is not readable JSON: {exc}", extra={"file": path}) from None
    if not isinstance(loaded, dict):
        raise AnswersFileInvalid(f"{path} must be a JSON object.", extra={"file": path})
    template, commit = loaded.get("template"), loaded.get("commit")
    context = loaded.get("context")
    cookiecutter = context.get("cookiecutter") if isinstance(context, dict) else None
    if not isinstance(template, str) or not isinstance(commit, str) or not isinstance(cookiecutter, dict):
        raise AnswersFileInvalid(
            f"{path} has no template, commit and context.cookiecutter: Kiln cannot tell which template made it.",
            extra={"file": path},
        )
    answers = {str(k): v for k, v in cookiecutter.items() if not str(k).startswith("_")}
    return RecordedAnswers("cruft", path, template, commit, answers)


def find_answers(files: dict[str, bytes]) -> RecordedAnswers | None:
    """The answers file among a repository's top-level files ({name: bytes}), Copier's first."""
    for name in COPIER_FILES:
        if name in files:
            return parse_copier_answers(files[name], path=name)
    if CRUFT_FILE in files:
        return parse_cruft(files[CRUFT_FILE])
    return None


def same_source(recorded: str, url: str) -> bool:
    """Whether the template source an answers file names is this git URL (scheme, `.git`,
    trailing slashes and `gh:`/`gl:` shorthands aside)."""

    def norm(value: str) -> str:
        value = value.strip()
        for short, full in (("gh:", "github.com/"), ("gl:", "gitlab.com/")):
            if value.startswith(short):
                value = full + value[len(short) :]
        value = value.split("://", 1)[-1]
        if value.startswith("git@"):
            value = value[4:].replace(":", "/", 1)
        value = value.rsplit("@", 1)[-1] if "@" in value.split("/", 1)[0] else value
        return value.rstrip("/").removesuffix(".git").lower()

    return bool(recorded) and bool(url) and norm(recorded) == norm(url)
