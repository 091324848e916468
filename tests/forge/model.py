"""Shared state types and git helpers of the local forge.

The forge keeps its whole state in these plain objects (under `LocalForge._lock`); the
HTTP layers only render them. Everything git-related runs the real `git` binary with a
scrubbed environment, so the test process's own git configuration never leaks in.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GIT = shutil.which("git") or "/usr/bin/git"

# Fixed identity for commits the forge itself makes (seed commits, initialize_with_readme).
FORGE_IDENT = "Local Forge <forge@forge.invalid>"


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso_github(moment: datetime) -> str:
    """GitHub's timestamp format: `2011-01-26T19:01:12Z`."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_gitlab(moment: datetime) -> str:
    """GitLab's timestamp format: `2020-05-07T04:27:17.016Z`."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def node_id(kind: str, ident: int) -> str:
    """GitHub's legacy global node ids: base64 of `0<len>:<Type><id>` (e.g. `MDQ6VXNlcjE=`)."""
    return base64.b64encode(f"0{len(kind)}:{kind}{ident}".encode()).decode()


@dataclass
class User:
    id: int
    login: str
    name: str
    email: str
    created_at: datetime
    namespace_id: int


@dataclass
class Namespace:
    """A GitHub user/organisation or a GitLab user namespace/group.

    `kind` is `"user"` (personal namespace), `"org"` (GitHub organisation) or `"group"`
    (GitLab group). `members` holds lower-cased logins of *direct* members; GitLab
    membership is inherited down the group tree.
    """

    id: int
    full_path: str
    name: str
    kind: str
    parent_id: int | None
    members: set[str]
    visibility: str
    created_at: datetime
    description: str = ""

    @property
    def path(self) -> str:
        return self.full_path.rsplit("/", 1)[-1]

    @property
    def parent_path(self) -> str | None:
        return self.full_path.rsplit("/", 1)[0] if "/" in self.full_path else None


@dataclass
class Repo:
    """A GitHub repository or GitLab project with its bare repository on disk."""

    id: int
    namespace: Namespace
    name: str
    path: str
    description: str | None
    visibility: str
    creator: str
    created_at: datetime
    updated_at: datetime
    pushed_at: datetime
    default_branch: str | None
    bare_path: Path
    topics: list[str] = field(default_factory=list)
    has_issues: bool = True
    has_projects: bool = True
    has_wiki: bool = True
    archived: bool = False
    kiln_marker: str | None = None
    create_params: dict[str, Any] = field(default_factory=dict)
    #: Pull requests (GitHub) or merge requests (GitLab), oldest first (see `reviews.py`).
    changes: list[Any] = field(default_factory=list)

    @property
    def full_name(self) -> str:
        return f"{self.namespace.full_path}/{self.path}"

    @property
    def private(self) -> bool:
        return self.visibility != "public"


@dataclass(frozen=True)
class Recorded:
    """One API request as the forge saw it.

    `path` is the raw request path without the query (percent-encoding kept, e.g.
    `/api/v4/groups/acme%2Fplatform`); `query` maps each name to its value, or to a list
    when repeated; `headers` has lower-cased names; `json` is the parsed request body
    (form bodies become a dict, an empty body is `None`); `status` is what was answered
    and `response` the JSON (or text) body that was sent back.
    """

    method: str
    path: str
    query: dict[str, Any]
    headers: dict[str, str]
    json: Any
    status: int
    response: Any = None


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    query_string: str = ""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    @property
    def flat_query(self) -> dict[str, Any]:
        return {k: (v[0] if len(v) == 1 else list(v)) for k, v in self.query.items()}


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    payload: Any = None  # what gets recorded as `Recorded.response`

    def has_header(self, name: str) -> bool:
        lname = name.lower()
        return any(k.lower() == lname for k, _ in self.headers)

    def add_default(self, name: str, value: str) -> None:
        if not self.has_header(name):
            self.headers.append((name, value))


def json_response(status: int, payload: Any, headers: list[tuple[str, str]] | None = None, *, ctype: str) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Response(status, body, [("Content-Type", ctype), *(headers or [])], payload)


def text_response(status: int, text: str, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, text.encode(), [("Content-Type", "text/plain; charset=utf-8"), *(headers or [])], text)


@dataclass
class Fault:
    method: str | None
    pattern: Any  # compiled regex
    status: int
    body: Any
    headers: dict[str, str]
    times: int | None
    run_handler: bool
    hits: int = 0


@dataclass
class Delay:
    method: str | None
    pattern: Any
    seconds: float
    times: int | None
    hits: int = 0


def git_env(home: Path) -> dict[str, str]:
    """Environment for server-side git: nothing inherited but PATH."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "LANG": "C",
        "LC_ALL": "C",
    }


def run_git(
    args: list[str], *, home: Path, git_dir: Path | None = None, stdin: bytes | None = None, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    cmd = [GIT]
    if git_dir is not None:
        cmd.append(f"--git-dir={git_dir}")
    cmd.extend(args)
    result = subprocess.run(cmd, input=stdin, capture_output=True, env=git_env(home), timeout=60, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.decode(errors='replace').strip()}")
    return result


def read_refs(bare: Path, home: Path) -> dict[str, str]:
    out = run_git(["for-each-ref", "--format=%(objectname) %(refname)"], home=home, git_dir=bare).stdout.decode()
    refs: dict[str, str] = {}
    for line in out.splitlines():
        sha, _, ref = line.partition(" ")
        refs[ref] = sha
    return refs


def fast_import_commit(
    bare: Path,
    home: Path,
    *,
    branch: str,
    files: dict[str, bytes],
    message: str,
    parent: str | None,
    when: datetime,
) -> str:
    """Write one commit onto `branch` of the bare repo with `git fast-import` (one process)."""

    def data(blob: bytes) -> bytes:
        return f"data {len(blob)}\n".encode() + blob + b"\n"

    stamp = f"{int(when.timestamp())} +0000"
    stream = f"commit refs/heads/{branch}\n".encode()
    stream += f"author {FORGE_IDENT} {stamp}\ncommitter {FORGE_IDENT} {stamp}\n".encode()
    stream += data(message.encode())
    if parent:
        stream += f"from {parent}\n".encode()
    for name, content in sorted(files.items()):
        stream += f"M 100644 inline {name}\n".encode() + data(content)
    stream += b"\ndone\n"
    run_git(["fast-import", "--quiet", "--done"], home=home, git_dir=bare, stdin=stream)
    return run_git(["rev-parse", f"refs/heads/{branch}"], home=home, git_dir=bare).stdout.decode().strip()
