"""Every built-in schemathesis check, plus Kiln's own, with the few narrow exceptions written down.

An exception ("tolerance") swallows one check's failure for one precisely described kind of
request/response. There are two sorts:

* `D*` design conflicts: the check's assumption does not hold for this API by design (the
  reason is in the table). They stay.
* `F*` known findings (schema bugs, see test_findings.py where each one is reproduced as an
  `xfail(strict=False)` test with "BUG:"). They are tolerated here only so that the fuzz run
  keeps looking for *other* problems in the same operations; remove the tolerance when the
  finding's repro test starts to XPASS.

Server errors (5xx) are never tolerated.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from jsonschema import Draft4Validator
from schemathesis.checks import CHECKS, load_all_checks

from tests.fuzz.schema_loader import RAW

load_all_checks()
BUILTIN_CHECK_NAMES = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "ignored_auth",
    "use_after_free",  # stateful-only: no-op without the stateful phase
    "ensure_resource_availability",  # stateful-only
    "object_level_authorization",  # needs a second identity: no-op with one
]
assert set(BUILTIN_CHECK_NAMES) == set(CHECKS.get_all_names()), CHECKS.get_all_names()

FORM_MEDIA_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
NOT_ACCEPTED = "This field is not accepted here."

# --- request/response helpers ------------------------------------------------------------------


def body_json(response: Any) -> Any:
    try:
        return json.loads(response.content)
    except (ValueError, TypeError):
        return None


def error_code(response: Any) -> str | None:
    body = body_json(response)
    return body.get("code") if isinstance(body, dict) else None


def field_errors(response: Any) -> dict[str, Any]:
    body = body_json(response)
    if isinstance(body, dict) and isinstance(body.get("extra"), dict):
        fields = body["extra"].get("fields")
        if isinstance(fields, dict):
            return fields
    return {}


def is_kiln_error(response: Any) -> bool:
    body = body_json(response)
    return isinstance(body, dict) and isinstance(body.get("message"), str) and isinstance(body.get("code"), str)


def operation_of(case: Any) -> dict[str, Any]:
    return RAW["paths"][case.operation.path][case.method.lower()]


def operation_id(case: Any) -> str:
    return operation_of(case).get("operationId", "")


def negative_locations(case: Any) -> set[str]:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_negative:
        return set()
    return {location.name.lower() for location, info in meta.components.items() if info.mode.is_negative}


def _resolve(node: Any, depth: int = 0) -> Any:
    if depth > 30:
        return {}
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            return _resolve(RAW["components"]["schemas"][ref.rsplit("/", 1)[1]], depth + 1)
        return {key: _resolve(value, depth + 1) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(item, depth + 1) for item in node]
    return node


def body_violations(case: Any) -> list[Any]:
    """JSON Schema errors of the request body against the operation's declared schema."""
    content = operation_of(case).get("requestBody", {}).get("content", {})
    declared = content.get(case.media_type or "application/json")
    if declared is None:
        return []
    return list(Draft4Validator(_resolve(declared["schema"])).iter_errors(case.body))


_INTEGER = re.compile(r"^-?\d+$")


def invalid_query_parameters(case: Any) -> set[str]:
    """Query parameters whose value breaks the declared schema (or that are not declared)."""
    declared = {p["name"]: p.get("schema", {}) for p in operation_of(case).get("parameters", []) if p["in"] == "query"}
    bad: set[str] = set()
    for name, value in (case.query or {}).items():
        schema = declared.get(name)
        values = value if isinstance(value, list) else [value]
        if schema is None:
            bad.add(name)
            continue
        for item in values:
            text = item if isinstance(item, str) else json.dumps(item)
            not_integer = schema.get("type") == "integer" and not _INTEGER.match(text)
            if not_integer or ("enum" in schema and item not in schema["enum"]):
                bad.add(name)
    return bad


def _empty(case: Any, name: str) -> bool:
    """Every value given for query parameter `name` goes on the wire empty (`name=`): '', {} or []."""
    value = (case.query or {}).get(name)
    values = value if isinstance(value, list) and value else [value]
    return all(item in ("", {}, []) for item in values)


def drf_coerces(schema_type: Any, value: Any) -> bool:
    """Whether DRF's field for `schema_type` accepts this JSON scalar of another type, by design.

    Only integer fields do ('5' and 5.0 are 5); string and boolean fields of JSON bodies are strict
    (core.serializers.StrictInputSerializer), so a number for a string or "yes" for a boolean must be a 400.
    """
    if schema_type == "integer":
        if isinstance(value, str):
            return bool(_INTEGER.match(value.strip()))
        return isinstance(value, float) and value.is_integer()
    return False


# --- tolerances ------------------------------------------------------------------------------------

# positive_data_acceptance, D4: schema-valid input whose acceptance depends on database state or on
# content the schema cannot describe. operationId -> (status, error codes, the only fields the error may
# name (prefixes; None: any field)).
_TARGET_CODES = frozenset(
    {
        "validation_error",
        "connection_not_found",
        "invalid_repo_name",
        "invalid_owner",
        "invalid_namespace",
        "invalid_branch_name",
        "remote_url_not_allowed",
        "remote_host_not_allowed",
    }
)
_STEP_CODES = frozenset({"validation_error", "expression_error", "invalid_reference"})
_BLUEPRINT_CODES = frozenset({"blueprint_invalid", "blueprint_too_large"})
# a git source: the URL and ref must pass git's rules and name a readable repository holding a template
_GIT_SOURCE_CODES = frozenset(
    {
        "remote_url_not_allowed",
        "remote_host_not_allowed",
        "invalid_ref",
        "connection_not_found",
        "git_unreachable",
        "ref_not_found",
        "invalid_token",
        "template_too_large",
        "symlink_not_allowed",
    }
)
D4_DEPENDS_ON_STATE: dict[str, tuple[int, frozenset[str], tuple[str, ...] | None]] = {
    # the username must name an existing user
    "members_create": (400, frozenset({"validation_error"}), ("username",)),
    # the binary must be a real zip/tar.gz holding a valid template; a blueprint's document must hold a tree
    # (below), its slug must not be another user's template, its version label not one holding another document;
    # a git source's URL must pass git's rules and name a readable repository with a template
    "templates_create": (
        400,
        frozenset(
            {
                "archive_invalid",
                "template_invalid",
                "archive_unsafe_entry",
                "archive_too_large",
                "validation_error",
                *_BLUEPRINT_CODES,
                *_GIT_SOURCE_CODES,
                "template_exists",
                "template_version_exists",
            }
        ),
        None,
    ),
    # a structure document must hold a directory tree (or headings naming files and folders) that is safe and
    # within the caps: a rule on the text's content, which a JSON Schema string cannot express ("00" is a string)
    "blueprints_preview": (400, _BLUEPRINT_CODES, ()),
    # random credentials are wrong credentials
    "auth_token_create": (400, frozenset({"invalid_credentials"}), ()),
    # target fields depend on `provider` (the schema has no oneOf per provider) and on the caller's connections
    "exports_create": (400, _TARGET_CODES, None),
    # each step's input is validated against its step type at save time (API.md); steps are free JSON in the
    # schema; `project` must be one of the caller's
    "workflows_create": (400, _STEP_CODES, None),
    "workflows_partial_update": (400, _STEP_CODES, None),
    # run inputs are validated against the workflow's own inputs_schema; the agent/workflow must be the caller's
    "workflow_runs_create": (400, frozenset({"validation_error", "agent_not_found"}), ("inputs", "agent")),
    "agent_runs_create": (400, frozenset({"validation_error", "workflow_not_found"}), ("inputs", "workflow")),
    # `projects` must be projects the caller belongs to
    "agents_create": (400, frozenset({"validation_error"}), ("projects",)),
    "agents_partial_update": (400, frozenset({"validation_error"}), ("projects",)),
    # tokens must look like tokens; base URLs must be public https URLs (server-side safety rules)
    "connections_create": (
        400,
        frozenset({"validation_error", "invalid_base_url", "remote_host_not_allowed"}),
        ("token", "base_url"),
    ),
    # git connections cannot be verified
    "connections_verify": (400, frozenset({"verify_unsupported"}), ()),
    # the template's own parameter schema decides
    "generated_create": (400, frozenset({"validation_error"}), ("parameters.",)),
    # the new version's parameter schema decides; `export` must be one of the project's exports
    "updates_create": (400, frozenset({"validation_error", "export_not_found"}), ("parameters.", "export")),
    # the target's fields depend on `provider` and the caller's connections, as for exports
    "adoptions_create": (400, _TARGET_CODES, None),
}

# F3: JSON fields the schema declares as "any value" but the API requires to be objects.
F3_OBJECT_FIELDS = {"parameters", "inputs", "inputs_schema"}


def _fields_within(fields: dict[str, Any], prefixes: tuple[str, ...] | None) -> bool:
    if prefixes is None:
        return True
    for name in fields:
        if not any(
            name.startswith(p) if p.endswith(".") else (name == p or name.startswith((p + ".", p + "[")))
            for p in prefixes
        ):
            return False
    return True


def _form_limited(case: Any, fields: dict[str, Any]) -> bool:
    """Every rejected field is one an HTML form cannot carry: an object, a list, free JSON, or a key of a
    nested object that the form encoding flattened to the top level."""
    content = operation_of(case).get("requestBody", {}).get("content", {})
    declared = content.get((case.media_type or "").split(";")[0])
    properties = _resolve(declared["schema"]).get("properties", {}) if declared else {}
    for name in fields:
        schema = properties.get(name)
        if schema is not None and schema.get("type") not in (None, "object", "array"):
            return False
    return bool(fields)


def tolerated(check: str, case: Any, response: Any) -> str | None:
    """The id and reason of the tolerance that covers this failure, or None."""
    status = response.status_code
    if status >= 500:
        return None
    op_id = operation_id(case)
    form = (case.media_type or "").split(";")[0] in FORM_MEDIA_TYPES and op_id != "templates_create"

    if check == "status_code_conformance" and 400 <= status < 500 and is_kiln_error(response):
        return "F1: the schema documents few of the 4xx answers the API gives (see test_findings.py)"

    if check == "content_type_conformance" and op_id == "exports_download":
        content_type = (response.headers.get("content-type") or [""])[0]
        if content_type in ("application/zip", "application/gzip"):
            return "F4: archives are served as application/zip|gzip; the schema says application/octet-stream"

    if check == "negative_data_rejection" and status == 413 and error_code(response) == "payload_too_large":
        return (
            "D5: a body over the request-size cap (KILN_MAX_REQUEST_BYTES) is refused with 413 "
            "payload_too_large before it is parsed: a rejection, though schemathesis does not list 413"
        )

    if check == "negative_data_rejection" and status < 400:
        if form:
            return "D2: HTML-form encodings follow DRF's browsable-API semantics ('' = omitted, all values text)"
        locations = negative_locations(case)
        invalid = invalid_query_parameters(case)
        declared = {p["name"] for p in operation_of(case).get("parameters", []) if p["in"] == "query"}
        if locations == {"query"} and all(
            name == "page_size" or (name in declared and _empty(case, name)) for name in invalid
        ):
            return (
                "D1: DRF's paginator falls back to PAGE_SIZE for a malformed page_size; an empty page or "
                "filter parameter means 'not given' (page 1, unfiltered), as DRF and django-filter define it"
            )
        if locations == {"body"}:
            errors = body_violations(case)
            if errors and all(e.validator == "type" and drf_coerces(e.schema.get("type"), e.instance) for e in errors):
                return "D3: DRF's integer fields read an integer-valued string or float as the integer ('5' -> 5)"

    if check == "positive_data_acceptance" and 400 <= status < 500:
        fields = field_errors(response)
        if fields and all(messages == [NOT_ACCEPTED] for messages in fields.values()):
            return "F2: request schemas omit additionalProperties: false, but unknown fields are rejected"
        if fields and set(fields) <= F3_OBJECT_FIELDS and not form:
            return "F3: JSON fields declared as any value must be objects"
        expected = D4_DEPENDS_ON_STATE.get(op_id)
        if (
            expected
            and status == expected[0]
            and error_code(response) in expected[1]
            and _fields_within(fields, expected[2])
        ):
            return f"D4: {op_id} accepts only input that matches database state or content rules"
        if form and _form_limited(case, fields):
            return "D2: objects, lists and free JSON cannot be sent as HTML-form fields"
    return None


# how often each tolerance fired in this session (printed in the terminal summary by conftest.py),
# and with KILN_FUZZ_DEBUG=1 which operation/status/code/fields each one covered
TOLERATED: Counter[str] = Counter()
TOLERATED_EXAMPLES: Counter[tuple[str, str]] = Counter()
DEBUG = os.environ.get("KILN_FUZZ_DEBUG") == "1"


def _tolerant(name: str) -> Callable[..., Any]:
    check = CHECKS.get_one(name)

    def wrapped(ctx: Any, response: Any, case: Any) -> Any:
        try:
            return check(ctx, response, case)
        except AssertionError:
            reason = tolerated(name, case, response)
            if reason:
                TOLERATED[f"{name}: {reason}"] += 1
                if DEBUG:
                    detail = f"{case.method} {case.operation.path} [{case.media_type}] -> {response.status_code} "
                    detail += f"{error_code(response)} {sorted(field_errors(response))}"
                    TOLERATED_EXAMPLES[(f"{name}: {reason}", detail[:200])] += 1
                return None
            raise

    wrapped.__name__ = name
    return wrapped


# --- Kiln's own checks -----------------------------------------------------------------------------


def kiln_error_body(ctx: Any, response: Any, case: Any) -> bool | None:
    """API.md: every 4xx/5xx body is JSON with a human-readable message and a stable code."""
    if response.status_code >= 400 and response.request.method != "HEAD":
        assert is_kiln_error(response), f"{response.status_code} without a Kiln error body: {response.content[:300]!r}"
        message = body_json(response)["message"]
        assert re.search(r"[A-Za-z]{3,}", message), f"unreadable message: {message!r}"
    return None


def make_no_leak_check(secrets: tuple[str, ...]) -> Callable[..., Any]:
    forbidden = ("Traceback (most recent call last)", 'File "/', *secrets)

    def no_leaks(ctx: Any, response: Any, case: Any) -> bool | None:
        """No traceback, token or provider token in any response."""
        text = response.content.decode("utf-8", errors="replace")
        for fragment in forbidden:
            assert fragment not in text, f"{fragment[:12]}... leaked into a {response.status_code} response"
        return None

    return no_leaks


def all_checks(secrets: tuple[str, ...]) -> list[Callable[..., Any]]:
    return [*(_tolerant(name) for name in BUILTIN_CHECK_NAMES), kiln_error_body, make_no_leak_check(secrets)]
