"""The case model of the hostile-input corpus: one frozen record per attack.

A case says what is sent (a template to render, an archive to upload, an HTTP request, an
export target, a provider URL, an `api_call` step, or a named multi-request scenario), what
must come back (HTTP status, or the job's terminal state, plus the error `code` and a
fragment of the human-readable message) and, for inputs that exposed a defect, the `bug`
note that marks the case `xfail(strict=False)` until the code is fixed.

Placeholders filled in per test (see `harness.substitute`):

* `{PWN}`       an absolute path under the test's tmp_path that must never be created;
* `{PWN_NAME}`  its file name; `{UP}` the `..` chain that would reach it from the output;
* `{SENTINEL}`  the sentinel file beside the output root (must keep its content);
* `{CANARY}`    a secret-shaped string that must never be echoed back;
* `{project}`, `{generated}`, `{file}`, `{export}`, `{workflow}`, `{run}`, `{agent}`,
  `{connection}`, `{member}`, `{other_project}`, `{gh_conn}`, `{gl_conn}`: ids of objects
  the harness creates on demand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Parameter schema used by template cases unless a case brings its own: one free string.
NAME_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"name": {"type": "string", "default": "demo"}}}


@dataclass(frozen=True)
class Expect:
    """What a case must produce.

    `status`: the HTTP status of the (first) response. For job kinds (`generate`,
    `api_call`) it is the 202 of the submission and `state` is the terminal job status.
    `code`: the error code (a tuple accepts any of several). `fragment`: a piece of the
    message, compared case-insensitively. `None` skips the comparison.
    """

    status: int
    code: str | tuple[str, ...] | None = None
    fragment: str | None = None
    state: str | None = None


@dataclass(frozen=True)
class Case:
    id: str
    category: str
    kind: str
    spec: dict[str, Any]
    expect: Expect
    settings: dict[str, Any] = field(default_factory=dict)
    bug: str | None = None

    def __str__(self) -> str:  # pytest ids
        return self.id


# --- constructors: keep the tables short ------------------------------------------------------


def gen(
    case_id: str,
    category: str,
    files: dict[str, Any],
    code: str | tuple[str, ...] | None,
    fragment: str | None = None,
    *,
    params: dict[str, Any] | None = None,
    schema: dict[str, Any] | None = None,
    plant: list[dict[str, Any]] | None = None,
    state: str = "failed",
    settings: dict[str, Any] | None = None,
    bug: str | None = None,
    check_files: dict[str, Any] | None = None,
) -> Case:
    """A template rendered by a real (eager) generation job: POST 202, then the job's end state."""
    spec = {
        "files": files,
        "params": params or {},
        "schema": schema or NAME_SCHEMA,
        "plant": plant or [],
        "check_files": check_files,
    }
    return Case(case_id, category, "generate", spec, Expect(202, code, fragment, state), settings or {}, bug)


def dry(
    case_id: str,
    category: str,
    source: str,
    code: str | tuple[str, ...] | None,
    fragment: str | None = None,
    *,
    status: int = 422,
    settings: dict[str, Any] | None = None,
    bug: str | None = None,
    params: dict[str, Any] | None = None,
) -> Case:
    """One template file `a.txt` rendered by a dry run (synchronous: 422 with the render error)."""
    spec = {"files": {"a.txt": source}, "params": params or {}, "schema": NAME_SCHEMA, "plant": []}
    return Case(case_id, category, "dry_run", spec, Expect(status, code, fragment), settings or {}, bug)


def upload(
    case_id: str,
    entries: list[dict[str, Any]] | None,
    code: str | tuple[str, ...],
    fragment: str | None = None,
    *,
    fmt: str = "zip",
    raw: bytes | None = None,
    status: int = 400,
    field_name: str = "archive",
    patch: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    bug: str | None = None,
) -> Case:
    """A template archive POSTed to /templates/ (multipart)."""
    spec = {"entries": entries or [], "fmt": fmt, "raw": raw, "field": field_name, "patch": patch or {}}
    return Case(case_id, "archive", "upload", spec, Expect(status, code, fragment), settings or {}, bug)


def http(
    case_id: str,
    category: str,
    method: str,
    path: str,
    status: int,
    code: str | tuple[str, ...] | None,
    fragment: str | None = None,
    *,
    body: Any = None,
    user: str = "alice",
    raw: bytes | str | None = None,
    content_type: str | None = None,
    auth_header: str | None = None,
    unchanged: tuple[str, ...] = (),
    absent: tuple[str, ...] = (),
    headers: dict[str, str] | None = None,
    settings: dict[str, Any] | None = None,
    bug: str | None = None,
    fmt: str = "json",
) -> Case:
    """One HTTP request. `unchanged` names objects whose DB row must not change; `absent`
    lists strings that must not appear in the response body (besides the global canaries).
    `body` is sent encoded as `fmt`: "json", or "multipart" (an HTML form's fields)."""
    spec = {
        "method": method,
        "path": path,
        "body": body,
        "format": fmt,
        "user": user,
        "raw": raw,
        "content_type": content_type,
        "auth_header": auth_header,
        "unchanged": unchanged,
        "absent": absent,
        "headers": headers or {},
    }
    return Case(case_id, category, "http", spec, Expect(status, code, fragment), settings or {}, bug)


def export(
    case_id: str,
    category: str,
    body: dict[str, Any],
    code: str | tuple[str, ...] | None,
    fragment: str | None = None,
    *,
    status: int = 400,
    state: str | None = None,
    remote: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    bug: str | None = None,
) -> Case:
    """An export of a completed generation; `remote` prepares a bare git repository first."""
    spec = {"body": body, "remote": remote}
    return Case(case_id, category, "export", spec, Expect(status, code, fragment, state), settings or {}, bug)


def connection(
    case_id: str,
    base_url: str,
    code: str | tuple[str, ...],
    fragment: str | None = None,
    *,
    provider: str = "github",
    private_networks: bool = False,
    status: int = 400,
    bug: str | None = None,
) -> Case:
    """POST /connections/ with a hostile base URL (private networks off unless stated)."""
    spec = {"base_url": base_url, "provider": provider}
    settings = {"KILN_ALLOW_PRIVATE_NETWORKS": private_networks}
    return Case(case_id, "ssrf", "connection", spec, Expect(status, code, fragment), settings, bug)


def api_call(
    case_id: str,
    step_input: dict[str, Any],
    code: str | tuple[str, ...],
    fragment: str | None = None,
    *,
    category: str = "api-call",
    inputs: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    bug: str | None = None,
) -> Case:
    """A one-step workflow (`api_call`) run through the API; the run must end `failed`."""
    spec = {"input": step_input, "inputs": inputs or {}}
    return Case(case_id, category, "api_call", spec, Expect(202, code, fragment, "failed"), settings or {}, bug)


def scenario(
    case_id: str,
    category: str,
    name: str,
    code: str | tuple[str, ...] | None,
    fragment: str | None = None,
    *,
    status: int = 0,
    settings: dict[str, Any] | None = None,
    bug: str | None = None,
    **spec: Any,
) -> Case:
    """A multi-request flow implemented by `harness.SCENARIOS[name]`."""
    return Case(
        case_id, category, "scenario", {"name": name, **spec}, Expect(status, code, fragment), settings or {}, bug
    )
