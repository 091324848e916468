"""Issue 21 item 15: workflow step references must be literal step ids.

`${{ steps['b' ~ ''].output }}` passed save-time validation (a regular expression looked
for `steps.x` and `steps['x']` only) and read a later step's (empty) output at run time.
The references are now taken from the expression's syntax tree: `steps.<id>` and
`steps['<id>']` only, every id an earlier step.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "default": "x"}}}


def call(operation: str, **extra: object) -> dict[str, object]:
    return {"type": "api_call", "input": {"operation": operation, **extra}}


def save(api, user, steps):
    body = {"name": "Refs", "inputs_schema": SCHEMA, "steps": steps}
    return api(user).post("/api/v1/workflows/", body, format="json")


@pytest.mark.parametrize(
    "expression",
    [
        "steps['b' ~ ''].output",
        "steps['b' ~ ''].output.x",
        "steps[inputs.name].output",
        "steps|attr('b')",
        "steps",
        "steps.items()|list",
        "[steps][0].b.output",
        "(steps|dictsort)[0]",
        "steps['a':'z']",
        "steps.a.output if true else steps[inputs.name]",
    ],
)
def test_computed_step_references_are_refused_at_save(api, cast, expression):
    steps = [
        {"id": "a", **call("projects_list")},
        {"id": "b", **call("projects_list", query={"q": "${{ " + expression + " }}"})},
    ]
    response = save(api, cast.alice, steps)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid_reference", body
    assert "steps.b" in body["extra"]["fields"], body


@pytest.mark.parametrize(
    "expression",
    [
        "steps.a.output",
        "steps['a'].output.body",
        "steps.a.output.body.id ~ '-' ~ inputs.name",
        "inputs",
        "inputs['name']",
    ],
)
def test_literal_references_to_earlier_steps_pass(api, cast, expression):
    steps = [
        {"id": "a", **call("projects_list")},
        {"id": "b", **call("projects_list", query={"q": "${{ " + expression + " }}"})},
    ]
    response = save(api, cast.alice, steps)
    assert response.status_code == 201, response.content


def test_a_literal_reference_to_a_later_step_is_refused(api, cast):
    steps = [
        {"id": "a", "if": "${{ steps['b'].status == 'completed' }}", **call("projects_list")},
        {"id": "b", **call("projects_list")},
    ]
    response = save(api, cast.alice, steps)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_reference"


def test_references_inside_strings_are_not_references(api, cast):
    steps = [{"id": "a", **call("projects_list", query={"q": "${{ 'steps.zzz and inputs.undeclared' }}"})}]
    assert save(api, cast.alice, steps).status_code == 201


def test_an_expression_nested_too_deeply_is_a_400(api, cast):
    deep = "(" * 3000 + "1" + ")" * 3000
    response = save(api, cast.alice, [{"id": "a", **call("projects_list", query={"q": "${{ " + deep + " }}"})}])
    assert response.status_code == 400, response.content[:300]
    assert response.json()["code"] == "expression_error"
