"""What the API accepts as input, whatever the media type: the parsers, the strict input fields,
and the JSON answers of the plain Django views (CSRF failures, /healthz).

* NUL characters and non-finite numbers are a 400 `parse_error` in JSON bodies, form and
  multipart fields, and JSON text inside form fields (PostgreSQL cannot store them: 500 before).
* JSON values of the wrong type are a 400 naming the field, not coerced (5 -> "5", "yes" -> true);
  HTML forms, whose values are all text, keep working.
* A CSRF failure is a JSON 403 `csrf_failed` (the admin keeps Django's page); /healthz answers
  other methods with a JSON 405.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.test import Client
from rest_framework import serializers

from apps.projects.models import GeneratedProject, Project, ProviderConnection
from apps.workflows.models import Workflow, WorkflowRun
from core.exceptions import CSRF_FAILED_MESSAGE
from core.parsers import NON_FINITE_MESSAGE, NUL_MESSAGE
from core.serializers import StrictBooleanMixin, StrictInputSerializer, StrictJSONMixin, StrictStringMixin

pytestmark = pytest.mark.django_db

API = "/api/v1"
FORM = "application/x-www-form-urlencoded"
TEXT_SCHEMA = {"type": "object", "properties": {"text": {"type": "string", "default": "x"}}}


@pytest.fixture
def template(make_template: Any) -> Any:
    return make_template({"a.txt": "{{ text }}\n"}, slug="texts", parameters=TEXT_SCHEMA)


@pytest.fixture
def workflow(cast: Any) -> Workflow:
    from apps.workflows.services.workflow_executor import workflow_create

    return workflow_create(
        actor=cast.alice,
        name="Strict",
        project=cast.project.pk,
        inputs_schema={"type": "object", "properties": {"pname": {"type": "string"}}},
        steps=[{"id": "peek", "type": "api_call", "input": {"operation": "projects_list"}}],
    )


def send_form(client: Any, method: str, path: str, data: dict[str, str], encoding: str) -> Any:
    """`data` as an HTML form would send it: urlencoded, or multipart (as the template upload is)."""
    send = getattr(client, method.lower())
    if encoding == "urlencoded":
        return send(path, urlencode(data), content_type=FORM)
    return send(path, data, format="multipart")


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    return body


# --- 1. NUL characters and non-finite numbers, in every media type ---------------------------------

# A NUL as the raw byte (%00 in the form value) or as the JSON escape inside the field's JSON text
NULS = {"raw-byte": "a\x00b", "json-escape": "a\\u0000b"}


def _form_requests(project: Any, template: Any, workflow: Workflow) -> dict[str, Any]:
    """name -> (method, path, form fields with {nul} to fill, a function counting what was stored)"""
    return {
        "generate": (
            "POST",
            f"{API}/projects/{project.pk}/generated/",
            {"template": template.slug, "parameters": '{"text": "{nul}"}'},
            lambda: GeneratedProject.objects.count(),
        ),
        "generate-dry-run": (
            "POST",
            f"{API}/projects/{project.pk}/generated/",
            {"template": template.slug, "parameters": '{"text": "{nul}"}', "dry_run": "true"},
            lambda: GeneratedProject.objects.count(),
        ),
        "run-inputs": (
            "POST",
            f"{API}/workflows/{workflow.pk}/runs/",
            {"inputs": '{"pname": "ok", "extra": "{nul}"}'},
            lambda: WorkflowRun.objects.count(),
        ),
        "workflow-inputs-schema": (
            "PATCH",
            f"{API}/workflows/{workflow.pk}/",
            {"inputs_schema": '{"type": "object", "description": "{nul}"}'},
            lambda: json.dumps(Workflow.objects.get(pk=workflow.pk).inputs_schema),
        ),
    }


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
@pytest.mark.parametrize("nul", sorted(NULS))
@pytest.mark.parametrize("name", ["generate", "generate-dry-run", "run-inputs", "workflow-inputs-schema"])
def test_nul_in_json_text_of_a_form_field_is_a_parse_error(api, cast, template, workflow, name, nul, encoding):
    method, path, fields, stored = _form_requests(cast.project, template, workflow)[name]
    before = stored()
    data = {key: value.replace("{nul}", NULS[nul]) for key, value in fields.items()}
    body = assert_error(send_form(api(cast.alice), method, path, data, encoding), 400, "parse_error")
    assert body["message"] == NUL_MESSAGE
    assert stored() == before


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
@pytest.mark.parametrize(
    "fields",
    [
        {"name": "a\x00b"},  # a plain text field: refused by the parser, before any serializer
        {"name": "ok", "description": "\x00"},
        {"name": "ok", "x\x00y": "1"},  # in a field name
    ],
)
def test_nul_in_any_form_field_is_a_parse_error(api, cast, fields, encoding):
    body = assert_error(send_form(api(cast.alice), "POST", f"{API}/projects/", fields, encoding), 400, "parse_error")
    assert body["message"] == NUL_MESSAGE
    assert Project.objects.count() == 1


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1E999"])
def test_out_of_range_number_in_a_form_fields_json_is_a_parse_error(api, cast, template, number):
    data = {"template": template.slug, "parameters": f'{{"text": "x", "n": {number}}}', "dry_run": "true"}
    response = send_form(api(cast.alice), "POST", f"{API}/projects/{cast.project.pk}/generated/", data, "urlencoded")
    assert assert_error(response, 400, "parse_error")["message"] == NON_FINITE_MESSAGE


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants_in_a_form_fields_json_are_invalid_json(api, cast, template, number):
    data = {"template": template.slug, "parameters": f'{{"text": "x", "n": {number}}}', "dry_run": "true"}
    response = send_form(api(cast.alice), "POST", f"{API}/projects/{cast.project.pk}/generated/", data, "urlencoded")
    assert assert_error(response, 400, "validation_error")["extra"]["fields"] == {
        "parameters": ["Value must be valid JSON."]
    }


@pytest.mark.parametrize(
    "raw",
    [
        '{"name": 1e400}',
        '{"name": -1e400}',
        '{"name": "ok", "description": 1E999}',
        '{"name": Infinity}',
        '{"name": -Infinity}',
        '{"name": NaN}',
    ],
)
def test_non_finite_numbers_in_json_bodies_are_parse_errors(api, cast, raw):
    response = api(cast.alice).generic("POST", f"{API}/projects/", raw, content_type="application/json")
    assert_error(response, 400, "parse_error")
    assert Project.objects.count() == 1


def test_out_of_range_number_deep_in_json_parameters_is_a_parse_error(api, cast, template):
    raw = '{"template": "texts", "dry_run": true, "parameters": {"text": "x", "deep": [[{"n": 1e400}]]}}'
    path = f"{API}/projects/{cast.project.pk}/generated/"
    body = assert_error(api(cast.alice).generic("POST", path, raw, content_type="application/json"), 400, "parse_error")
    assert body["message"] == NON_FINITE_MESSAGE


def _session_client(user: Any) -> tuple[Client, str]:
    """A logged-in browser: session cookie plus the CSRF token a page of the browsable API hands out."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get(f"{API}/projects/", HTTP_ACCEPT="text/html")
    return client, client.cookies["csrftoken"].value


@pytest.mark.parametrize("nul", sorted(NULS))
def test_session_authenticated_multipart_post_is_checked_too(cast, template, nul):
    """The browsable API's HTML form: a multipart POST with the session cookie and csrfmiddlewaretoken
    (DRF's CSRF check reads the token from the form, through the parsers, before the view does)."""
    client, token = _session_client(cast.alice)
    parameters = '{"text": "{nul}"}'.replace("{nul}", NULS[nul])
    data = {"csrfmiddlewaretoken": token, "template": template.slug, "parameters": parameters}
    response = client.post(f"{API}/projects/{cast.project.pk}/generated/", data)
    body = assert_error(response, 400, "parse_error")
    assert body["message"] == NUL_MESSAGE
    assert GeneratedProject.objects.count() == 0


def test_browsable_api_html_form_post_works(cast, template):
    """The HTML form posts Django's csrfmiddlewaretoken with the fields: not an unknown field."""
    client, token = _session_client(cast.alice)
    data = {"csrfmiddlewaretoken": token, "template": template.slug, "parameters": '{"text": "hi"}', "dry_run": "true"}
    response = client.post(f"{API}/projects/{cast.project.pk}/generated/", data)
    assert response.status_code == 200, response.content
    created = client.post(f"{API}/projects/", {"csrfmiddlewaretoken": token, "name": "Browser"})
    assert created.status_code == 201, created.content


# --- forms of the browsable API keep working -----------------------------------------------------------


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_html_forms_still_work(api, cast, template, encoding):
    client = api(cast.alice)
    created = send_form(client, "POST", f"{API}/projects/", {"name": "Form", "description": "d"}, encoding)
    assert created.status_code == 201, created.content
    assert created.json()["name"] == "Form"

    dry = {"template": template.slug, "parameters": '{"text": "hello"}', "dry_run": "true"}
    response = send_form(client, "POST", f"{API}/projects/{cast.project.pk}/generated/", dry, encoding)
    assert response.status_code == 200, response.content
    assert response.json()["file_count"] == 1
    assert GeneratedProject.objects.count() == 0  # "true" from a form is a true dry run

    from apps.agents.services.agents import agent_create

    agent = agent_create(owner=cast.alice, name="Formbot", projects=[cast.project.pk])
    patched = send_form(client, "PATCH", f"{API}/agents/{agent.pk}/", {"is_active": "false"}, encoding)
    assert patched.status_code == 200, patched.content
    assert patched.json()["is_active"] is False


def test_template_upload_is_multipart_and_still_works(api, cast):
    import io
    import zipfile

    from django.core.files.uploadedfile import SimpleUploadedFile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("template.yaml", "slug: up\nname: Up\nversion: 1.0.0\nparameters: {type: object}\n")
        archive.writestr("bin.dat", b"\x00\x01 NUL bytes in a file's content are data")
    client = api(cast.alice)
    nul_name = client.post(
        f"{API}/templates/", {"archive\x00": SimpleUploadedFile("up.zip", buffer.getvalue())}, format="multipart"
    )
    assert assert_error(nul_name, 400, "parse_error")["message"] == NUL_MESSAGE
    response = client.post(
        f"{API}/templates/", {"archive": SimpleUploadedFile("up.zip", buffer.getvalue())}, format="multipart"
    )
    assert response.status_code == 201, response.content
    assert response.json()["slug"] == "up"


# --- 2. JSON types are not coerced -----------------------------------------------------------------------


def _agent(cast: Any) -> Any:
    from apps.agents.services.agents import agent_create

    return agent_create(owner=cast.alice, name="Typed", projects=[cast.project.pk])


WRONG_TYPES = [
    # (id, method, path, body, the field named in the error, the message)
    ("project-name-int", "POST", "/projects/", {"name": 5}, "name", "Not a valid string."),
    ("project-name-float", "POST", "/projects/", {"name": 1.5}, "name", "Not a valid string."),
    ("project-description-int", "POST", "/projects/", {"name": "ok", "description": 5}, "description", None),
    ("project-patch-name-int", "PATCH", "/projects/{project}/", {"name": 5}, "name", "Not a valid string."),
    (
        "connection-token-int",
        "POST",
        "/connections/",
        {"provider": "github", "name": "x", "token": 12345},
        "token",
        "Not a valid string.",
    ),
    (
        "connection-base-url-int",
        "POST",
        "/connections/",
        {"provider": "github", "name": "x", "token": "t0ken-abc", "base_url": 1},
        "base_url",
        "Not a valid string.",
    ),
    (
        "member-username-int",
        "POST",
        "/projects/{project}/members/",
        {"username": 5, "role": "viewer"},
        "username",
        None,
    ),
    ("generate-template-int", "POST", "/projects/{project}/generated/", {"template": 5}, "template", None),
    (
        "generate-dry-run-yes",
        "POST",
        "/projects/{project}/generated/",
        {"template": "texts", "dry_run": "yes"},
        "dry_run",
        "Must be a valid boolean.",
    ),
    (
        "generate-dry-run-one",
        "POST",
        "/projects/{project}/generated/",
        {"template": "texts", "dry_run": 1},
        "dry_run",
        "Must be a valid boolean.",
    ),
    (
        "generate-dry-run-text-true",
        "POST",
        "/projects/{project}/generated/",
        {"template": "texts", "dry_run": "true"},
        "dry_run",
        None,
    ),
    (
        "workflow-name-int",
        "POST",
        "/workflows/",
        {"name": 7, "steps": [{"id": "a", "type": "api_call", "input": {"operation": "projects_list"}}]},
        "name",
        None,
    ),
    ("workflow-description-int", "PATCH", "/workflows/{workflow}/", {"description": 7}, "description", None),
    ("agent-description-int", "POST", "/agents/", {"name": "A", "description": 1}, "description", None),
    (
        "agent-is-active-text",
        "PATCH",
        "/agents/{agent}/",
        {"is_active": "false"},
        "is_active",
        "Must be a valid boolean.",
    ),
    ("agent-is-active-zero", "PATCH", "/agents/{agent}/", {"is_active": 0}, "is_active", None),
    ("agent-token-name-int", "POST", "/agents/{agent}/tokens/", {"name": 5}, "name", None),
    ("login-username-int", "POST", "/auth/token/", {"username": 5, "password": "x"}, "username", None),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "field", "message"),
    [pytest.param(*case[1:], id=case[0]) for case in WRONG_TYPES],
)
def test_wrong_json_types_are_refused_not_coerced(api, cast, template, workflow, method, path, body, field, message):
    agent = _agent(cast)
    path = path.format(project=cast.project.pk, workflow=workflow.pk, agent=agent.pk)
    projects, connections = Project.objects.count(), ProviderConnection.objects.count()
    response = getattr(api(cast.alice), method.lower())(API + path, body, format="json")
    error = assert_error(response, 400, "validation_error")
    assert field in error["extra"]["fields"], error
    if message:
        assert error["extra"]["fields"][field] == [message]
        assert error["message"] == f"Invalid input: {field}: {message}"
    assert (Project.objects.count(), ProviderConnection.objects.count()) == (projects, connections)
    cast.project.refresh_from_db()
    assert cast.project.name == "Alpha"
    agent.refresh_from_db()
    assert agent.is_active


def test_nested_and_list_strings_are_strict():
    from apps.projects.serializers import RepositoryExportCreateSerializer

    serializer = RepositoryExportCreateSerializer(
        data={"provider": "github", "connection": 1, "repository": {"name": 5, "topics": ["ok", 6]}}
    )
    assert not serializer.is_valid()
    assert serializer.errors["repository"]["name"] == ["Not a valid string."]
    assert serializer.errors["repository"]["topics"] == {1: ["Not a valid string."]}


def test_json_booleans_and_strings_are_accepted(api, cast, template):
    response = api(cast.alice).post(
        f"{API}/projects/{cast.project.pk}/generated/",
        {"template": template.slug, "parameters": {"text": "5"}, "dry_run": True},
        format="json",
    )
    assert response.status_code == 200, response.content


def _input_serializers() -> list[type[StrictInputSerializer]]:
    import apps.accounts.serializers
    import apps.agents.serializers
    import apps.projects.serializers
    import apps.workflows.serializers  # noqa: F401 - every input serializer, registered as a subclass

    found: list[type[StrictInputSerializer]] = []
    pending: list[type[StrictInputSerializer]] = [StrictInputSerializer]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return [cls for cls in found if cls.__module__.startswith("apps.")]


def _writable_fields(serializer: serializers.Serializer, prefix: str = "") -> list[tuple[str, Any]]:
    result: list[tuple[str, Any]] = []
    for name, field in serializer.fields.items():
        if field.read_only:
            continue
        path = f"{prefix}{name}"
        if isinstance(field, serializers.Serializer):
            result.extend(_writable_fields(field, f"{path}."))
            continue
        result.append((path, field))
        child = getattr(field, "child", None)
        if child is not None:
            result.append((f"{path}[]", child))
    return result


def test_every_field_of_every_input_serializer_is_strict():
    """A field declared as DRF's CharField / BooleanField / JSONField in any input serializer is made strict."""
    classes = _input_serializers()
    assert len(classes) >= 15
    lenient = []
    for cls in classes:
        for path, field in _writable_fields(cls()):
            for base, mixin in (
                (serializers.CharField, StrictStringMixin),
                (serializers.BooleanField, StrictBooleanMixin),
                (serializers.JSONField, StrictJSONMixin),
            ):
                if isinstance(field, base) and not isinstance(field, mixin):
                    lenient.append(f"{cls.__name__}.{path}: {type(field).__name__}")
    assert not lenient, lenient


def test_strict_fields_keep_their_declared_options():
    from apps.accounts.serializers import TokenLoginInputSerializer
    from apps.projects.serializers import ConnectionCreateSerializer, ProjectCreateSerializer

    fields = ProjectCreateSerializer().fields
    assert fields["name"].max_length == 100 and fields["name"].validators
    assert fields["description"].default == "" and fields["description"].allow_blank
    assert ConnectionCreateSerializer().fields["token"].write_only
    assert TokenLoginInputSerializer().fields["password"].trim_whitespace is False
    password = TokenLoginInputSerializer(data={"username": "u", "password": "  spaced  "})
    assert password.is_valid() and password.validated_data["password"] == "  spaced  "


def test_views_parse_only_with_kilns_parsers():
    """No view goes back to DRF's own form or multipart parser (which let NUL characters through)."""
    from django.urls import URLPattern, URLResolver, get_resolver

    from core.parsers import KilnFormParser, KilnJSONParser, KilnMultiPartParser

    kiln = (KilnJSONParser, KilnFormParser, KilnMultiPartParser)

    def views(patterns: list[Any]) -> list[Any]:
        found = []
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                found.extend(views(pattern.url_patterns))
            elif isinstance(pattern, URLPattern):
                found.append(getattr(pattern.callback, "cls", None))
        return [view for view in found if view is not None and hasattr(view, "parser_classes")]

    classes = views(get_resolver().url_patterns)
    assert len(classes) > 10
    for view in classes:
        assert all(issubclass(parser, kiln) for parser in view.parser_classes), view
    sources = [path for path in (Path(settings.BASE_DIR) / "apps").rglob("*.py") if "tests" not in path.parts]
    assert not [str(path) for path in sources if "rest_framework.parsers" in path.read_text()]


# --- 3. JSON from the plain Django views ------------------------------------------------------------------


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete", "options"])
def test_healthz_answers_other_methods_with_a_json_405(method):
    response = getattr(Client(enforce_csrf_checks=True), method)("/healthz")
    body = assert_error(response, 405, "method_not_allowed")
    assert method.upper() in body["message"]
    assert response["Allow"] == "GET, HEAD"


def test_healthz_get_and_head():
    assert Client().get("/healthz").json() == {"database": "ok", "broker": "ok", "storage": "ok"}
    assert Client().head("/healthz").status_code == 200


def test_csrf_failure_outside_drf_is_json(cast):
    """The login form of the browsable API is a plain Django view: Django's CSRF check, Kiln's answer."""
    client = Client(enforce_csrf_checks=True)
    response = client.post("/api-auth/login/", {"username": "alice", "password": "x"})
    body = assert_error(response, 403, "csrf_failed")
    assert body["message"] == CSRF_FAILED_MESSAGE
    assert "CSRF cookie not set" in body["extra"]["reason"]


def test_csrf_failure_view_answers_json_for_api_paths(rf):
    from core.exceptions import csrf_failure

    response = csrf_failure(rf.post(f"{API}/projects/"), reason="CSRF token missing.")
    assert response.status_code == 403
    assert json.loads(response.content) == {
        "message": CSRF_FAILED_MESSAGE,
        "code": "csrf_failed",
        "extra": {"reason": "CSRF token missing."},
    }


def test_admin_keeps_djangos_csrf_page():
    response = Client(enforce_csrf_checks=True).post("/admin/login/", {"username": "a", "password": "b"})
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")


def test_session_request_without_csrf_token_is_csrf_failed(cast):
    client = Client(enforce_csrf_checks=True)
    client.force_login(cast.alice)
    response = client.post(f"{API}/projects/", {"name": "Nope"}, content_type="application/json")
    body = assert_error(response, 403, "csrf_failed")
    assert body["message"].startswith(CSRF_FAILED_MESSAGE)
    assert Project.objects.count() == 1


def test_model_serializer_fields_are_made_strict_too():
    """Fields a ModelSerializer maps from model fields (CharField, TextField, SlugField) are swapped too."""

    class ProjectInput(StrictInputSerializer, serializers.ModelSerializer):
        class Meta:
            model = Project
            fields = ["name", "slug", "description"]

    serializer = ProjectInput(data={"name": 5, "slug": 6, "description": 7.5})
    assert not serializer.is_valid()
    assert serializer.errors == {
        "name": ["Not a valid string."],
        "slug": ["Not a valid string."],
        "description": ["Not a valid string."],
    }
    assert type(ProjectInput().fields["slug"]).__name__ == "StrictSlugField"
