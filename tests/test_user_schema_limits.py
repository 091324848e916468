"""People's JSON Schemas run in bounded time and stack (issue 21 items 5, 6, 8): patterns on RE2,
in-place reference loops refused when the schema is saved, deep schemas refused, and every
validation under a step budget, so a schema or a value ends in a coded 400, never a 500."""

from __future__ import annotations

import stat
import time

import pytest

from apps.templates.models import ProjectTemplate, TemplateVersion
from apps.templates.tests.test_api_templates import make_zip, upload
from core.json_schema import (
    MAX_VALIDATION_STEPS,
    UserSchemaError,
    check_user_schema,
    iter_user_schema_errors,
    user_pattern_search,
)

REDOS = "^(a+)+$"
EVIL = "a" * 28 + "!"  # Python's re: ~20 s here (x4 per 2 more); n=40 about an hour (the audit's figures)


def _errors(schema, instance):
    check_user_schema(schema)
    return [error.message for error in iter_user_schema_errors(schema, instance)]


def _quick(action, seconds=1.0):
    started = time.monotonic()
    result = action()
    assert time.monotonic() - started < seconds
    return result


# --- item 8: patterns -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "instance"),
    [
        ({"properties": {"a": {"type": "string", "pattern": REDOS}}}, {"a": EVIL}),
        ({"patternProperties": {REDOS: {"type": "integer"}}}, {EVIL: 1, "aaaa": "not an integer"}),
        ({"patternProperties": {REDOS: {}}, "additionalProperties": False}, {EVIL: 1}),
        ({"propertyNames": {"pattern": REDOS}}, {EVIL: 1}),
        ({"items": {"pattern": "^(a|aa)+$"}, "type": "array"}, ["a" * 5000 + "!"]),
    ],
    ids=["pattern", "patternProperties", "additionalProperties", "propertyNames", "alternation"],
)
def test_catastrophic_patterns_run_in_linear_time(schema, instance):
    errors = _quick(lambda: _errors(schema, instance))
    assert errors, "the value does not match and must be reported"


def test_json_schema_pattern_semantics_are_kept():
    assert user_pattern_search("b", "abc")  # search, not a full match
    assert not user_pattern_search("^b", "abc")
    assert user_pattern_search("^\\u0041+$", "AAA")  # ECMA-262 escapes
    assert user_pattern_search("^[\\u00e0-\\u00ff]$", "é")
    assert not user_pattern_search("^\\\\u0041$", "A")  # an escaped backslash stays a backslash
    assert user_pattern_search("^\\\\u0041$", "\\u0041")
    assert _errors({"properties": {"a": {"pattern": "^[a-z]+$"}}}, {"a": "abc"}) == []


@pytest.mark.parametrize(
    ("pattern", "keyword"),
    [("(a)\\1", "pattern"), ("a(?=b)", "pattern"), ("(?<!x)y", "pattern"), ("(a)\\1", "patternProperties")],
)
def test_patterns_re2_cannot_run_are_refused_naming_the_keyword(pattern, keyword):
    if keyword == "pattern":
        schema, pointer = {"properties": {"code": {"pattern": pattern}}}, "/properties/code/pattern"
    else:
        schema, pointer = {"patternProperties": {pattern: {}}}, "/patternProperties/"
    with pytest.raises(UserSchemaError) as caught:
        check_user_schema(schema)
    assert caught.value.reason == "unsupported_pattern"
    assert caught.value.pointer.startswith(pointer)
    assert "RE2" in str(caught.value)


def test_format_regex_values_are_checked_on_re2():
    schema = {"properties": {"re": {"type": "string", "format": "regex"}}}
    assert _quick(lambda: _errors(schema, {"re": "(" * 5000})), "an unbalanced pattern is not a regex"
    assert _errors(schema, {"re": "(a)\\1"}) != []  # what Kiln could not run is not a usable regex
    assert _errors(schema, {"re": "^[a-z]+$"}) == []


def test_a_stored_schema_with_a_backtracking_only_pattern_is_a_400_at_validation():
    with pytest.raises(UserSchemaError) as caught:
        list(iter_user_schema_errors({"properties": {"a": {"pattern": "(a)\\1"}}}, {"a": "aa"}))
    assert caught.value.reason == "unsupported_pattern"


def test_unevaluated_properties_with_pattern_properties_is_refused():
    with pytest.raises(UserSchemaError, match="unevaluatedProperties"):
        check_user_schema({"patternProperties": {"^x": {}}, "unevaluatedProperties": False})
    check_user_schema({"properties": {"x": {}}, "unevaluatedProperties": False})


# --- item 6: reference loops ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schema",
    [
        {"$defs": {"a": {"$ref": "#/$defs/a"}}, "properties": {"x": {"$ref": "#/$defs/a"}}},
        {"$defs": {"a": {"$ref": "#/$defs/a"}}},  # unused: still refused when saved
        {"$ref": "#"},
        {"$defs": {"a": {"allOf": [{"$ref": "#/$defs/b"}]}, "b": {"anyOf": [{"not": {"$ref": "#/$defs/a"}}]}}},
        {"$defs": {"a": {"if": {"$ref": "#/$defs/a"}}}},
        {"$defs": {"a": {"dependentSchemas": {"k": {"$ref": "#/$defs/a"}}}}},
        {"$defs": {"a": {"$anchor": "A", "oneOf": [{"$ref": "#A"}]}}},
    ],
    ids=["self", "unused", "root", "allOf-anyOf-not", "if", "dependentSchemas", "anchor"],
)
def test_in_place_reference_loops_are_refused(schema):
    with pytest.raises(UserSchemaError) as caught:
        check_user_schema(schema)
    assert caught.value.reason == "recursive_ref"


def test_recursion_through_the_value_stays_allowed():
    tree = {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#"}}}}
    check_user_schema(tree)
    value = {"children": [{"children": [{"children": []}]}, {"children": 5}]}
    assert _errors(tree, value) == ['5 is not of type "array"']


def test_exponential_in_place_fan_out_is_refused():
    defs = {f"a{i}": {"allOf": [{"$ref": f"#/$defs/a{i + 1}"}, {"$ref": f"#/$defs/a{i + 1}"}]} for i in range(40)}
    defs["a40"] = {"type": "string"}
    with pytest.raises(UserSchemaError) as caught:
        _quick(lambda: check_user_schema({"$defs": defs}))
    assert caught.value.reason == "too_complex"


def test_validation_that_multiplies_through_the_value_hits_the_step_budget():
    schema = {"$defs": {"s": {"anyOf": [{"items": {"$ref": "#/$defs/s"}}, {"items": {"$ref": "#/$defs/s"}}]}}}
    schema["$ref"] = "#/$defs/s"
    check_user_schema(schema)
    value: object = "x"
    for _ in range(40):
        value = [value, value]
    with pytest.raises(UserSchemaError) as caught:
        _quick(lambda: list(iter_user_schema_errors(schema, value)), seconds=10)
    assert caught.value.reason == "too_complex"
    assert str(MAX_VALIDATION_STEPS) in str(caught.value)


# --- item 5: depth -------------------------------------------------------------------------------------------


def test_deep_schemas_are_refused_before_any_recursive_code():
    schema: dict = {"type": "string"}
    for _ in range(800):
        schema = {"not": schema}
    with pytest.raises(UserSchemaError) as caught:
        _quick(lambda: check_user_schema({"properties": {"a": schema}}))
    assert caught.value.reason == "too_deep"


def test_long_in_place_chains_are_refused():
    defs = {f"a{i}": {"$ref": f"#/$defs/a{i + 1}"} for i in range(100)}
    defs["a100"] = {}
    with pytest.raises(UserSchemaError) as caught:
        check_user_schema({"$defs": defs})
    assert caught.value.reason == "too_deep"


# --- through the API and the services ------------------------------------------------------------------------


def _manifest_zip(parameters_yaml: str) -> bytes:
    manifest = f"slug: limits\nname: Limits\nversion: '1.0.0'\nparameters:\n{parameters_yaml}".encode()
    return make_zip([("template.yaml", manifest, stat.S_IFREG | 0o644), ("README.md", b"x\n", stat.S_IFREG | 0o644)])


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("parameters", "reason", "pointer"),
    [
        ("  type: object\n  properties:\n    x: {type: string, pattern: '(a)\\1'}\n", "unsupported_pattern", "/x/"),
        ("  type: object\n  properties:\n    x: {type: string, pattern: '^(?!x)'}\n", "unsupported_pattern", "/x/"),
        (
            "  type: object\n  $defs: {a: {$ref: '#/$defs/a'}}\n  properties:\n    x: {$ref: '#/$defs/a', default: 1}\n",
            "recursive_ref",
            "/$defs/a",
        ),
        (
            "  type: object\n  $defs: {a: {$ref: '#/$defs/a'}}\n  properties:\n    x: {$ref: '#/$defs/a'}\n",
            "recursive_ref",
            "",
        ),
    ],
    ids=["backreference", "lookahead", "loop-with-default", "loop-without-default"],
)
def test_upload_refuses_schemas_kiln_cannot_run(api, cast, parameters, reason, pointer):
    response = _quick(lambda: upload(api(cast.alice), _manifest_zip(parameters)), seconds=3)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "template_invalid"
    assert body["extra"]["reason"] == reason
    assert body["extra"]["pointer"].startswith("/parameters")
    assert pointer in body["extra"]["pointer"]
    assert not ProjectTemplate.objects.filter(slug="limits").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "inputs_schema",
    [
        {"type": "object", "properties": {"x": {"pattern": "(a)\\1"}}},
        {"type": "object", "$defs": {"a": {"$ref": "#/$defs/a"}}, "properties": {"x": {"$ref": "#/$defs/a"}}},
    ],
)
def test_workflow_save_refuses_schemas_kiln_cannot_run(api, cast, inputs_schema):
    body = {
        "name": "limits",
        "inputs_schema": inputs_schema,
        "steps": [{"id": "a", "type": "api_call", "input": {"operation": "projects_list"}}],
    }
    response = api(cast.alice).post("/api/v1/workflows/", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "validation_error"
    assert response.json()["extra"]["pointer"].startswith("/inputs_schema/")


@pytest.mark.django_db
@pytest.mark.parametrize("dry_run", [True, False])
def test_generation_with_a_redos_pattern_answers_quickly(api, cast, make_template, dry_run):
    make_template(
        {"README.md": "{{ code }}\n"},
        slug="redos",
        parameters={"type": "object", "properties": {"code": {"type": "string", "pattern": REDOS}}},
    )
    response = _quick(
        lambda: api(cast.dave).post(
            f"/api/v1/projects/{cast.project.pk}/generated/",
            {"template": "redos", "parameters": {"code": "a" * 40 + "!"}, "dry_run": dry_run},
            format="json",
        )
    )
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "validation_error"
    assert "parameters.code" in response.json()["extra"]["fields"]


@pytest.mark.django_db
@pytest.mark.parametrize("dry_run", [True, False])
def test_a_stored_recursive_schema_is_a_400_at_generation_not_a_500(api, cast, make_template, dry_run):
    template = make_template({"README.md": "x\n"}, slug="stored-loop")
    stored = {"type": "object", "$defs": {"a": {"$ref": "#/$defs/a"}}, "properties": {"x": {"$ref": "#/$defs/a"}}}
    ProjectTemplate.objects.filter(pk=template.pk).update(parameters=stored)  # as rows saved before the check existed
    TemplateVersion.objects.filter(template=template).update(parameters=stored)  # generations read the version
    response = api(cast.dave).post(
        f"/api/v1/projects/{cast.project.pk}/generated/",
        {"template": "stored-loop", "parameters": {"x": 1}, "dry_run": dry_run},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "template_invalid"
    assert response.json()["extra"]["reason"] == "recursive_ref"
