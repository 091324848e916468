"""The agent tool registry against the REST operations its tools wrap.

A tool's arguments must mean what the REST operation's parameters and body mean: every path
parameter comes from a required argument of the same type, every request-body field is either
an argument (same type, same choices, same length limit, no less required) or fixed by the
tool, and no argument is invented. A field added to a REST body (say `version`) without the
tool learning it fails here, and so does a tool whose argument drifts from the serializer.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from apps.agents.services.api_discovery import Operation, registry
from apps.agents.services.tools import AgentTool, tools
from apps.agents.services.tools.registry import ToolCall, argument_errors, call_tool

pytestmark = pytest.mark.django_db

# Arguments the REST operation has no field for, on purpose: list paging maps to query parameters.
PAGING = {"page", "page_size"}


def _types(schema: dict[str, Any]) -> set[str]:
    kind = schema.get("type")
    if kind is None:
        return {"any"}
    return {kind} if isinstance(kind, str) else set(kind)


def _compare(where: str, tool: dict[str, Any], rest: dict[str, Any]) -> list[str]:
    """What `tool` (an argument's schema) lets through or refuses that `rest` does not."""
    problems = []
    if "any" not in _types(rest) and not _types(tool) <= _types(rest):
        problems.append(f"{where}: type {sorted(_types(tool))} is not among REST's {sorted(_types(rest))}")
    if "enum" in rest and not (tool.get("enum") and set(map(str, tool["enum"])) <= set(map(str, rest["enum"]))):
        # a tool may offer fewer choices (propose_update: no preview), never one REST refuses
        problems.append(f"{where}: choices {tool.get('enum')} are not among REST's {rest['enum']}")
    if rest.get("maxLength") != tool.get("maxLength") and "maxLength" in rest:
        problems.append(f"{where}: maxLength {tool.get('maxLength')} differs from REST's {rest['maxLength']}")
    if "minimum" in rest and tool.get("minimum", float("-inf")) < rest["minimum"]:
        problems.append(f"{where}: minimum {tool.get('minimum')} is below REST's {rest['minimum']}")
    if "properties" in rest and "object" in _types(tool):
        problems += _compare_object(where, tool, rest, fixed={})
    return problems


def _compare_object(where: str, tool: dict[str, Any], rest: dict[str, Any], *, fixed: dict[str, Any]) -> list[str]:
    problems = []
    tool_props, rest_props = tool.get("properties", {}), rest.get("properties", {})
    for name in sorted(set(tool_props) - set(rest_props)):
        problems.append(f"{where}.{name}: no such field in the REST body")
    for name in sorted(set(rest_props) - set(tool_props) - set(fixed)):
        problems.append(f"{where}.{name}: REST accepts it, the tool neither takes nor fixes it")
    for name in sorted(set(rest.get("required", [])) - set(tool.get("required", [])) - set(fixed)):
        problems.append(f"{where}.{name}: required by REST, optional in the tool")
    for name in sorted(set(tool_props) & set(rest_props)):
        problems += _compare(f"{where}.{name}", tool_props[name], rest_props[name])
    for name, value in fixed.items():
        if name not in rest_props:
            problems.append(f"{where}.{name}: fixed by the tool, unknown to REST")
        elif list(Draft202012Validator(rest_props[name]).iter_errors(value)):
            problems.append(f"{where}.{name}: the fixed value {value!r} is invalid for REST")
    return problems


def disagreements(tool: AgentTool, operation: Operation) -> list[str]:
    """Every way `tool`'s arguments disagree with `operation`; empty when they agree."""
    problems: list[str] = []
    args = tool.input_schema.get("properties", {})
    required = set(tool.input_schema.get("required", []))
    path = {p.name: p for p in operation.parameters if p.location == "path"}
    query = {p.name: p for p in operation.parameters if p.location == "query"}
    mapped = set(tool.path_arguments.values()) | set(tool.looked_up)
    if mapped != set(path):
        problems.append(f"path parameters {sorted(path)} but the tool maps {sorted(mapped)}")
    for argument, parameter in tool.path_arguments.items():
        if argument not in args or argument not in required:
            problems.append(f"{argument}: maps to path parameter {parameter} but is not a required argument")
        elif parameter in path:
            problems += _compare(argument, args[argument], path[parameter].schema)
    for argument, parameter in tool.query_arguments.items():
        if parameter not in query:
            problems.append(f"{argument}: maps to query parameter {parameter}, which REST does not have")
        elif argument in args:
            problems += _compare(argument, args[argument], query[parameter].schema)
    for argument in tool.looked_up.values():
        if argument not in args or argument not in required:
            problems.append(f"{argument}: looks up a path parameter but is not a required argument")
    body = {name: args[name] for name in tool.body_arguments}
    body_required = [name for name in tool.input_schema.get("required", []) if name in body]
    if operation.request_schema is None:
        if body or tool.fixed_body:
            problems.append(f"{sorted(body)}: the REST operation takes no JSON body")
    else:
        problems += _compare_object(
            "body", {"properties": body, "required": body_required}, operation.request_schema, fixed=tool.fixed_body
        )
    if tool.output != "own" and tool.response_status not in operation.responses:
        problems.append(f"REST has no JSON {tool.response_status} answer to take the output schema from")
    return problems


@pytest.mark.parametrize("name", sorted(tools()))
def test_tool_agrees_with_the_rest_operation_it_wraps(name):
    tool = tools()[name]
    operation = registry()[tool.operation_id]
    assert disagreements(tool, operation) == []
    Draft202012Validator.check_schema(tool.input_schema)
    Draft202012Validator.check_schema(tool.output_schema())


def test_the_check_catches_drift():
    """The comparison above is not vacuous: each kind of drift is reported."""
    export = tools()["export_generation"]
    operation = registry()[export.operation_id]
    schema = export.input_schema
    props = schema["properties"]

    def drifted(**properties: Any) -> AgentTool:
        return dataclasses.replace(export, input_schema={**schema, "properties": {**props, **properties}})

    wrong_type = drifted(connection={"type": "string"})
    assert any("connection: type" in p for p in disagreements(wrong_type, operation))
    wrong_choices = drifted(provider={"type": "string", "enum": ["github", "zip", "ftp"]})
    assert any("provider: choices" in p for p in disagreements(wrong_choices, operation))
    no_choices = drifted(provider={"type": "string"})
    assert any("provider: choices" in p for p in disagreements(no_choices, operation))
    invented = drifted(force_push={"type": "boolean"})
    assert any("force_push: no such field" in p for p in disagreements(invented, operation))
    nested = drifted(repository={**props["repository"], "properties": {"name": {"type": "string", "maxLength": 999}}})
    found = disagreements(nested, operation)
    assert any("repository.name: maxLength" in p for p in found)
    assert any("repository.visibility: REST accepts it" in p for p in found)
    missing = dataclasses.replace(
        export, input_schema={**schema, "properties": {k: v for k, v in props.items() if k != "branch"}}
    )
    assert any("body.branch: REST accepts it" in p for p in disagreements(missing, operation))
    unmapped = dataclasses.replace(export, path_arguments={"project": "project_id"})
    assert any("path parameters" in p for p in disagreements(unmapped, operation))
    preview = tools()["preview_generation"]
    bad_fixed = dataclasses.replace(preview, fixed_body={"dry_run": "yes"})
    assert any("fixed value" in p for p in disagreements(bad_fixed, registry()[preview.operation_id]))


def test_arguments_are_checked_and_named_before_the_handler_runs(cast):
    ran = []
    tool = dataclasses.replace(tools()["get_generation"], handler=lambda call: ran.append(call) or {})
    outcome = call_tool(tool, actor=cast.alice, arguments={"project": "one", "generated": 0, "colour": "red"})
    assert outcome.is_error and ran == []
    assert outcome.structured["code"] == "validation_error"
    assert set(outcome.structured["extra"]["fields"]) == {"project", "generated", "colour"}
    assert argument_errors(tool.input_schema, {}) == {
        "generated": ["'generated' is a required property"],
        "project": ["'project' is a required property"],
    }


def test_kiln_errors_become_tool_errors_with_the_rest_code(cast):
    outcome = call_tool(
        tools()["get_generation"], actor=cast.charlie, arguments={"project": cast.project.pk, "generated": 1}
    )
    assert outcome.is_error
    assert outcome.structured == {"code": "not_found", "message": "Project not found.", "extra": {}}
    # a viewer may read but not generate: the service's 403, as over REST
    outcome = call_tool(
        tools()["generate_project"],
        actor=cast.victor,
        arguments={"project": cast.project.pk, "template": "python-package"},
    )
    assert outcome.is_error and outcome.structured["code"] == "permission_denied"
    # the REST input serializer's checks apply too (a blank name passes the schema's minLength)
    outcome = call_tool(tools()["create_project"], actor=cast.alice, arguments={"name": "   "})
    assert outcome.is_error and outcome.structured["code"] == "validation_error"
    assert "name" in outcome.structured["extra"]["fields"]


def test_an_unexpected_failure_is_a_server_error_outcome_not_an_exception(cast, caplog):
    def boom(call: ToolCall) -> Any:
        raise RuntimeError("secret detail")

    tool = dataclasses.replace(tools()["list_projects"], handler=boom)
    outcome = call_tool(tool, actor=cast.alice, arguments={})
    assert outcome.is_error
    assert outcome.structured["code"] == "server_error"
    assert "secret detail" not in outcome.structured["message"]
    assert "agent tool list_projects failed" in caplog.text
