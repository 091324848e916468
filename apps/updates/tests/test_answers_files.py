"""Reading the answers files Copier and cruft leave in a repository (untrusted input)."""

from __future__ import annotations

import json

import pytest

from apps.updates.services.answers_files import (
    AnswersFileInvalid,
    find_answers,
    parse_copier_answers,
    parse_cruft,
    same_source,
)

COPIER = b"""# Changes here will be overwritten by Copier; NEVER EDIT MANUALLY
_commit: 1.2.0-3-gabc1234
_src_path: gh:acme/svc-template
name: shop
port: 8000
tags:
- a
- b
"""


def test_copier_answers() -> None:
    recorded = parse_copier_answers(COPIER)
    assert (recorded.tool, recorded.source, recorded.version) == ("copier", "gh:acme/svc-template", "1.2.0-3-gabc1234")
    assert recorded.version_tag == "1.2.0"
    assert recorded.answers == {"name": "shop", "port": 8000, "tags": ["a", "b"]}


def test_cruft_answers() -> None:
    data = {
        "template": "https://github.com/acme/cc-template.git",
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "checkout": None,
        "context": {"cookiecutter": {"project_slug": "shop", "_template": "x", "_output_dir": "/tmp"}},
        "directory": None,
    }
    recorded = parse_cruft(json.dumps(data).encode())
    assert recorded.tool == "cruft" and recorded.version == data["commit"]
    assert recorded.answers == {"project_slug": "shop"}


@pytest.mark.parametrize(
    "content",
    [
        b"- a list\n",
        b"name: x\n",  # no _src_path/_commit
        b"_src_path: x\n_commit: [1]\n",
        b"a: &x [1]\nb: *x\n_src_path: s\n_commit: 1\n",  # aliases refused
        b"\xff\xfe",
        b"_src_path: s\n_commit: 1\n" + b"x: " + b"[" * 200 + b"]" * 200 + b"\n",
        b"_src_path: s\n_commit: 1\nbig: '" + b"x" * 300_000 + b"'\n",
    ],
)
def test_bad_copier_answers_are_400(content: bytes) -> None:
    with pytest.raises(AnswersFileInvalid) as refused:
        parse_copier_answers(content)
    assert refused.value.status_code == 400 and refused.value.code == "answers_file_invalid"


@pytest.mark.parametrize("content", [b"[]", b"{}", b'{"template": 1, "commit": "x", "context": {}}', b"{" * 5000])
def test_bad_cruft_files_are_400(content: bytes) -> None:
    with pytest.raises(AnswersFileInvalid):
        parse_cruft(content)


def test_copier_is_preferred_and_nothing_is_none() -> None:
    cruft = json.dumps({"template": "t", "commit": "c", "context": {"cookiecutter": {}}}).encode()
    assert find_answers({".cruft.json": cruft, ".copier-answers.yml": COPIER}).tool == "copier"  # type: ignore[union-attr]
    assert find_answers({"README.md": b"x"}) is None


@pytest.mark.parametrize(
    ("recorded", "url", "same"),
    [
        ("gh:acme/svc-template", "https://github.com/acme/svc-template.git", True),
        ("https://github.com/Acme/svc-template/", "https://github.com/acme/svc-template", True),
        ("git@github.com:acme/svc-template.git", "https://github.com/acme/svc-template", True),
        ("https://token@github.com/acme/x", "https://github.com/acme/x", True),
        ("gh:acme/other", "https://github.com/acme/svc-template", False),
        ("", "https://github.com/acme/x", False),
    ],
)
def test_same_source(recorded: str, url: str, same: bool) -> None:
    assert same_source(recorded, url) is same
