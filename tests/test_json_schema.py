"""People's JSON Schemas (template parameters, workflow inputs) never make Kiln fetch a URL,
and a reference that does not resolve is a 400, not a 500."""

from __future__ import annotations

import stat

import pytest

from apps.templates.models import ProjectTemplate, TemplateVersion
from apps.templates.tests.test_api_templates import make_zip, upload
from core.json_schema import MissingProperty, UserSchemaError, check_user_schema, iter_user_schema_errors


@pytest.fixture
def schema_url(listener):
    """(URL of a schema on a loopback server, the requests that server got)."""
    listener.body = b'{"type": "string"}'
    return listener.url("/schema.json"), listener.hits


LOCAL = {
    "type": "object",
    "$defs": {"count": {"type": "integer", "minimum": 1}, "named": {"$anchor": "Name", "type": "string"}},
    "properties": {
        "n": {"$ref": "#/$defs/count"},
        "who": {"$ref": "#Name"},
        "data": {"type": "object", "default": {"$ref": "not a reference, a value"}},
    },
}


def test_references_inside_the_schema_are_accepted_and_used():
    check_user_schema(LOCAL)
    errors = sorted(e.message for e in iter_user_schema_errors(LOCAL, {"n": 0, "who": 5}))
    assert errors == ["0 is less than the minimum of 1", '5 is not of type "string"']


@pytest.mark.parametrize(
    ("ref", "why"),
    [
        ("http://127.0.0.1:9/s.json", "points outside the schema"),
        ("file:///etc/passwd", "points outside the schema"),
        ("other.json#/x", "points outside the schema"),
        ("#/$defs/missing", "does not resolve inside the schema"),
        ("#NoSuchAnchor", "does not resolve inside the schema"),
    ],
)
def test_other_references_are_refused(ref, why):
    with pytest.raises(UserSchemaError, match=why):
        check_user_schema({"type": "object", "properties": {"x": {"$ref": ref}}})


def test_a_nested_id_is_refused():
    # "#/$defs/q" would resolve against "sub.json", not the whole schema, and never validate
    schema = {"$defs": {"q": {"type": "string"}}, "properties": {"y": {"$id": "sub.json", "$ref": "#/$defs/q"}}}
    with pytest.raises(UserSchemaError, match="allowed only at the top"):
        check_user_schema(schema)
    check_user_schema(
        {"$id": "https://example.com/params.json", "$defs": {"q": {}}, "properties": {"y": {"$ref": "#/$defs/q"}}}
    )


def test_validating_never_fetches(schema_url):
    url, hits = schema_url
    schema = {"type": "object", "properties": {"x": {"$ref": url}}}
    # a stored schema is checked again before validating: the remote reference is refused unread
    with pytest.raises(UserSchemaError, match=r"points outside the schema|does not resolve"):
        list(iter_user_schema_errors(schema, {"x": 5}))
    assert hits == []


def _template_zip(parameters_yaml: bytes) -> bytes:
    manifest = b"slug: refs\nname: Refs\nversion: '1.0.0'\nparameters:\n" + parameters_yaml
    return make_zip(
        [
            ("template.yaml", manifest, stat.S_IFREG | 0o644),
            ("README.md", b"{{ x }}\n", stat.S_IFREG | 0o644),
        ]
    )


@pytest.mark.django_db
def test_template_upload_with_a_remote_reference_is_400_and_fetches_nothing(api, cast, schema_url):
    url, hits = schema_url
    payload = _template_zip(f"  type: object\n  properties:\n    x: {{$ref: '{url}', default: a}}\n".encode())
    response = upload(api(cast.alice), payload)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "template_invalid"
    assert "points outside the schema" in response.json()["message"]
    assert hits == []
    assert not ProjectTemplate.objects.filter(slug="refs").exists()


@pytest.mark.django_db
def test_template_defaults_are_checked_through_local_references(api, cast):
    payload = _template_zip(
        b"  type: object\n  $defs: {small: {type: integer, maximum: 3}}\n"
        b"  properties:\n    x: {$ref: '#/$defs/small', default: 7}\n"
    )
    response = upload(api(cast.alice), payload)
    assert response.status_code == 400, response.content
    assert "default of parameter 'x'" in response.json()["message"]


@pytest.mark.django_db
@pytest.mark.parametrize("dry_run", [True, False])
def test_a_stored_schema_with_a_bad_reference_is_400_not_500(api, cast, make_template, schema_url, dry_run):
    url, hits = schema_url
    template = make_template({"README.md": "x\n"}, slug="stored-refs")
    # as a row saved before references were checked at upload
    stored = {"type": "object", "properties": {"x": {"$ref": url}, "y": {"$ref": "#/$defs/missing"}}}
    ProjectTemplate.objects.filter(pk=template.pk).update(parameters=stored)
    TemplateVersion.objects.filter(template=template).update(parameters=stored)  # generations read the version
    response = api(cast.dave).post(
        f"/api/v1/projects/{cast.project.pk}/generated/",
        {"template": "stored-refs", "parameters": {"x": "a"}, "dry_run": dry_run},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "template_invalid"
    assert hits == []


@pytest.mark.django_db
def test_workflow_inputs_schema_with_a_remote_reference_is_400(api, cast, schema_url):
    url, hits = schema_url
    body = {
        "name": "refs",
        "inputs_schema": {"type": "object", "properties": {"x": {"$ref": url}}},
        "steps": [{"id": "a", "type": "api_call", "input": {"operation": "projects_list"}}],
    }
    response = api(cast.alice).post("/api/v1/workflows/", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "validation_error"
    assert "inputs_schema" in response.json()["extra"]["fields"]
    assert hits == []


def test_messages_name_values_in_json_spelling():
    schema = {
        "type": "object",
        "required": ["a b"],
        "additionalProperties": False,
        "properties": {
            "n": {"type": ["integer", "null"], "minimum": 1},
            "flag": {"const": True},
            "items": {"type": "array", "minItems": 2, "uniqueItems": True},
            "word": {"type": "string", "maxLength": 3, "not": {"enum": ["and"]}},
            "mail": {"type": "string", "format": "email"},
            "nested": {"type": "object", "required": ["inner"]},
        },
    }
    value = {"n": 0.5, "flag": None, "items": [None], "word": "and", "mail": "x", "nested": {}, "zz": False}
    found = {(".".join(map(str, e.absolute_path)), e.message) for e in iter_user_schema_errors(schema, value)}
    assert found == {
        ("", '"a b" is a required property'),
        ("", 'Additional properties are not allowed ("zz" was unexpected)'),
        ("n", '0.5 is not of type "integer" or "null"'),
        ("n", "0.5 is less than the minimum of 1"),
        ("flag", "true was expected, not null"),
        ("items", "[null] is too short (at least 2 items)"),
        ("word", '"and" is not allowed (a reserved value)'),
        ("mail", '"x" is not a valid "email"'),
        ("nested", '"inner" is a required property'),
    }
    (missing,) = [e for e in iter_user_schema_errors(schema, {"a b": 1, "nested": {}}) if e.validator == "required"]
    assert (
        isinstance(missing, MissingProperty) and missing.name == "inner" and list(missing.absolute_path) == ["nested"]
    )
    long = {"type": "string", "pattern": "^x$", "description": "word " * 200}
    (error,) = iter_user_schema_errors(long, "y")
    assert error.message.startswith('"y" does not match the expected form: word word') and len(error.message) < 400
