"""Each format's questions as JSON Schema, and answers checked with the format's own rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.templates.services.formats import cookiecutter, copier
from core.exceptions import ValidationFailed
from core.json_schema import check_user_schema
from tests.formats.harness import CORPUS


def test_cookiecutter_json_as_json_schema() -> None:
    schema = cookiecutter.parameters_schema(cookiecutter.load_spec(CORPUS / "cookiecutter" / "prompts"))
    check_user_schema(schema)
    assert schema["properties"] == {
        "name": {"type": "string", "default": "promptdemo", "description": "Name of the project"},
        "flavour": {
            "enum": ["vanilla", "chocolate"],
            "default": "vanilla",
            "x-enum-labels": ["Plain vanilla", "Dark chocolate"],
            "description": "Which flavour?",
        },
    }
    ordered = cookiecutter.parameters_schema(cookiecutter.load_spec(CORPUS / "cookiecutter" / "context-order"))
    assert list(ordered["properties"]) == [
        "project_name",
        "project_slug",
        "package",
        "version",
        "year",
        "ratio",
        "nothing",
        "description",
    ]
    assert ordered["properties"]["project_slug"] == {
        "type": "string",
        "x-default-template": "{{ cookiecutter.project_name.lower().replace(' ', '_') }}",
    }
    private = cookiecutter.parameters_schema(cookiecutter.load_spec(CORPUS / "cookiecutter" / "private"))
    assert list(private["properties"]) == ["name"]  # _x and __x are not parameters
    booleans = cookiecutter.parameters_schema(cookiecutter.load_spec(CORPUS / "cookiecutter" / "booleans"))
    assert booleans["properties"]["use_docker"] == {"type": "boolean", "default": True}


def test_copier_questions_as_json_schema() -> None:
    schema = copier.parameters_schema(copier.load_spec(CORPUS / "copier" / "questions"))
    check_user_schema(schema)
    properties = schema["properties"]
    assert properties["project_name"] == {
        "type": "string",
        "default": "Question Demo",
        "description": "The human name of the project",
        "x-placeholder": "My Project",
    }
    assert properties["db_name"]["x-when"] == "{{ use_db }}"
    assert properties["computed"]["x-when"] is False
    assert properties["project_slug"]["x-validator"].startswith("{% if not")
    assert properties["api_token"]["writeOnly"] is True and properties["api_token"]["x-secret"] is True
    assert properties["port"] == {
        "type": "integer",
        "default": 8000,
        "x-validator": "{% if port < 1024 %}ports below 1024 need root{% endif %}",
    }
    choices = copier.parameters_schema(copier.load_spec(CORPUS / "copier" / "choices"))["properties"]
    assert choices["python"]["enum"] == ["3.12", "3.11"]
    assert choices["python"]["x-enum-labels"] == ["Python 3.12 (newest)", "Python 3.11"]
    assert choices["features"]["type"] == "array" and choices["features"]["items"] == {
        "enum": ["docs", "tests", "docker"]
    }
    assert choices["database"]["enum"] == ["postgres", "sqlite"] and choices["database"]["x-enum-validators"][0] == ""
    types = copier.parameters_schema(copier.load_spec(CORPUS / "copier" / "types"))["properties"]
    assert types["settings"]["default"] == {"a": 1, "b": [True, None]}  # a JSON text default, parsed
    assert types["ratio"]["type"] == "number" and types["enabled"]["type"] == "boolean"


def test_copier_required_questions(tmp_path: Path) -> None:
    (tmp_path / "copier.yml").write_text("needed:\n  type: str\noptional:\n  type: str\n  default: x\n")
    spec = copier.load_spec(tmp_path)
    assert copier.parameters_schema(spec)["required"] == ["needed"]
    prepared = copier.prepare(tmp_path)
    with pytest.raises(ValidationFailed) as caught:
        copier.validate(prepared, {})
    assert caught.value.extra["fields"] == {"parameters.needed": ['Question "needed" is required (it has no default).']}
    assert copier.validate(prepared, {"needed": "given"}).remember == {
        "_src_path": "",
        "needed": "given",
        "optional": "x",
    }


@pytest.mark.parametrize(
    ("answers", "field", "message"),
    [
        ({"nope": 1}, "parameters.nope", "Unknown parameter"),
        ({"_copy_without_render": []}, "parameters._copy_without_render", "cannot be set"),
        ({"use_docker": "maybe"}, "parameters.use_docker", "could not be converted to a boolean"),
        ({"name": ["a"]}, "parameters.name", "Expected a string"),
    ],
)
def test_cookiecutter_answers_follow_cookiecutters_rules(answers: dict, field: str, message: str) -> None:
    prepared = cookiecutter.prepare(CORPUS / "cookiecutter" / "booleans")
    with pytest.raises(ValidationFailed) as caught:
        cookiecutter.validate(prepared, answers)
    assert caught.value.code == "validation_error"
    assert message in caught.value.extra["fields"][field][0]


def test_cookiecutter_choice_answers_must_be_choices() -> None:
    prepared = cookiecutter.prepare(CORPUS / "cookiecutter" / "choices")
    with pytest.raises(ValidationFailed) as caught:
        cookiecutter.validate(prepared, {"license": "WTFPL"})
    assert "is not one of the choices" in caught.value.extra["fields"]["parameters.license"][0]
    context = cookiecutter.validate(prepared, {"license": "BSD-3-Clause"})
    assert context["cookiecutter"]["license"] == "BSD-3-Clause"
    assert context["_cookiecutter"]["license"][0] == "BSD-3-Clause"  # the choice moves to the front, as in cookiecutter


def test_copier_casts_and_validates_answers() -> None:
    prepared = copier.prepare(CORPUS / "copier" / "types")
    resolved = copier.validate(prepared, {"count": "7", "enabled": "no", "extra": "[1, 2]"})
    assert resolved.values["count"] == 7 and resolved.values["enabled"] is False and resolved.values["extra"] == [1, 2]
    with pytest.raises(ValidationFailed) as caught:
        copier.validate(prepared, {"count": "seven", "ratio": None})
    fields = caught.value.extra["fields"]
    assert "parameters.count" in fields and "parameters.ratio" in fields
    hidden = copier.validate(copier.prepare(CORPUS / "copier" / "questions"), {"use_db": False})
    assert "db_name" not in hidden.remember and "api_token" not in hidden.remember  # hidden and secret
