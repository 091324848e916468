"""Runs one corpus case: builds what it needs, sends it, and checks the universal rules.

Universal rules (checked for every case, whatever its kind):

* never a 5xx; the status (or the job's terminal state) and the error `code` are the expected ones;
* the error has a human-readable `message` (words, no raw control characters, no Python internals);
* no "Traceback", `File "/`, object reprs, server folders, tokens or the case's canary in the body;
* nothing was written outside the output roots (a snapshot of tmp_path outside them is
  unchanged, the sentinel keeps its content, and the case's `{PWN}` path does not exist).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import struct
import subprocess
import tarfile
import uuid
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.forms.models import model_to_dict
from rest_framework.test import APIClient

from tests.badinput.cases import Case

API = "/api/v1"
# Folders below tmp_path that the application legitimately writes to.
OUTPUT_ROOTS = frozenset({"generated-projects", "templates", "template-cache", "remotes"})
FORBIDDEN_FRAGMENTS = ("Traceback", 'File "/', "object at 0x", "<class '", "kiln_u_", "kiln_a_")
CONTROL = re.compile(r"[\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


# --- placeholders -----------------------------------------------------------------------------


def substitute(value: Any, names: dict[str, str]) -> Any:
    """Replace `{NAME}` placeholders in every string (and bytes) inside `value`."""
    if isinstance(value, str):
        for key, replacement in names.items():
            value = value.replace("{" + key + "}", replacement)
        return value
    if isinstance(value, bytes):
        for key, replacement in names.items():
            value = value.replace(("{" + key + "}").encode(), replacement.encode())
        return value
    if isinstance(value, dict):
        return {substitute(k, names): substitute(v, names) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(substitute(v, names) for v in value)
    return value


# --- the world: objects a case may refer to, created on first use ------------------------------


@dataclass
class World:
    cast: Any
    tmp_path: Path
    make_template: Callable[..., Any]
    run_jobs: Callable[[], Any]
    canary: str = field(default_factory=lambda: f"CANARY-badinput-{uuid.uuid4().hex}")
    pwn: Path = field(init=False)

    def __post_init__(self) -> None:
        self.pwn = self.tmp_path / f"kiln-pwn-{uuid.uuid4().hex[:12]}"

    def client(self, user: str) -> APIClient:
        client = APIClient()
        if user != "anon":
            client.force_authenticate(user=getattr(self.cast, user))
        return client

    # objects ---------------------------------------------------------------------------------

    @cached_property
    def template(self) -> Any:
        return self.make_template(
            {"README.md": "# {{ name }}\n", "src/app.py": "print('hi')\n"},
            slug="world",
            parameters={"type": "object", "properties": {"name": {"type": "string", "default": "demo"}}},
        )

    @cached_property
    def generated(self) -> Any:
        from apps.projects.services.generation import generated_project_execute, generated_project_start

        row = generated_project_start(
            project=self.cast.project,
            template_slug=self.template.slug,
            parameters={},
            actor=self.cast.alice,
            enqueue=False,
        )
        done = generated_project_execute(generated_id=row.pk, owner="badinput:1:world").generated
        assert done.status == "completed", done.error
        return done

    @cached_property
    def file(self) -> Any:
        from apps.projects.models import ProjectFile

        return ProjectFile.objects.filter(generated=self.generated).order_by("path").first()

    @cached_property
    def export(self) -> Any:
        from apps.projects.services.exports import repository_export_execute, repository_export_start

        row = repository_export_start(
            generated=self.generated, data={"provider": "zip"}, actor=self.cast.alice, enqueue=False
        )
        export, _ = repository_export_execute(export_id=row.pk, owner="badinput:1:export")
        assert export.status == "completed", export.error
        return export

    @cached_property
    def workflow(self) -> Any:
        from apps.workflows.services.workflow_executor import workflow_create

        steps = [{"id": "peek", "type": "api_call", "input": {"operation": "projects_list"}}]
        return workflow_create(actor=self.cast.alice, name="World", steps=steps, project=self.cast.project.pk)

    @cached_property
    def run(self) -> Any:
        from apps.workflows.services.workflow_executor import workflow_run_start

        with self.run_jobs():
            run = workflow_run_start(workflow=self.workflow, inputs={}, actor=self.cast.alice)
        run.refresh_from_db()
        return run

    @cached_property
    def agent(self) -> Any:
        from apps.agents.services.agents import agent_create

        return agent_create(owner=self.cast.alice, name="World agent", projects=[self.cast.project.pk])

    def _connection(self, provider: str) -> Any:
        from apps.projects.services.connections import connection_create

        return connection_create(owner=self.cast.alice, provider=provider, name=f"world-{provider}", token=self.canary)

    @cached_property
    def gh_conn(self) -> Any:
        return self._connection("github")

    @cached_property
    def gl_conn(self) -> Any:
        return self._connection("gitlab")

    @cached_property
    def member(self) -> Any:
        from apps.projects.models import ProjectMembership

        return ProjectMembership.objects.get(project=self.cast.project, user=self.cast.victor)

    @cached_property
    def other_project(self) -> Any:
        from apps.projects.services.projects import project_create

        return project_create(owner=self.cast.charlie, name="Charlie's")

    def _token(self, *, revoked: bool) -> str:
        from datetime import timedelta

        from django.utils import timezone

        from apps.accounts.services import user_token_issue, user_token_revoke

        row, token = user_token_issue(user=self.cast.alice, name="badinput")
        if revoked:
            user_token_revoke(token=row)
        else:
            row.expires_at = timezone.now() - timedelta(minutes=1)
            row.save(update_fields=["expires_at"])
        return token

    # placeholders ------------------------------------------------------------------------------

    def names(self, text: str) -> dict[str, str]:
        """The placeholder values `text` needs (objects are created only when referenced)."""
        names = {
            "PWN": str(self.pwn),
            "PWN_NAME": self.pwn.name,
            "UP": "../../..",
            "SENTINEL": str(self.tmp_path / "sentinel.txt"),
            "TMP": str(self.tmp_path),
            "CANARY": self.canary,
            "REMOTE": str(self.tmp_path / "remotes" / "target.git"),
            "project": str(self.cast.project.pk),
        }
        lazy: dict[str, Callable[[], Any]] = {
            "generated": lambda: self.generated.pk,
            "file": lambda: self.file.pk,
            "export": lambda: self.export.pk,
            "workflow": lambda: self.workflow.pk,
            "run": lambda: self.run.pk,
            "agent": lambda: self.agent.pk,
            "gh_conn": lambda: self.gh_conn.pk,
            "gl_conn": lambda: self.gl_conn.pk,
            "member": lambda: self.member.pk,
            "other_project": lambda: self.other_project.pk,
            "template": lambda: self.template.slug,
            "revoked_token": lambda: self._token(revoked=True),
            "expired_token": lambda: self._token(revoked=False),
        }
        for key, make in lazy.items():
            if "{" + key + "}" in text:
                names[key] = str(make())
        return names

    def fill(self, value: Any) -> Any:
        return substitute(value, self.names(repr(value)))

    # what must never change or appear ----------------------------------------------------------

    def outside_snapshot(self) -> dict[str, str]:
        """Every file and link under tmp_path outside the output roots, with a content digest."""
        found: dict[str, str] = {}
        for dirpath, dirnames, filenames in os.walk(self.tmp_path, followlinks=False):
            rel_dir = Path(dirpath).relative_to(self.tmp_path)
            if rel_dir == Path("."):
                dirnames[:] = [d for d in dirnames if d not in OUTPUT_ROOTS]
            for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                path = Path(dirpath) / name
                st = os.lstat(path)
                if stat.S_ISREG(st.st_mode):
                    found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
                else:
                    found[str(path)] = f"mode:{st.st_mode:o}"
        return found

    def secrets(self) -> tuple[str, ...]:
        return (self.canary, str(settings.GENERATED_PROJECTS_DIR), str(settings.KILN_TEMPLATES_DIR))


# --- assertions ---------------------------------------------------------------------------------


def _matches(code: str | None, expected: str | tuple[str, ...] | None) -> bool:
    if expected is None:
        return True
    return code in (expected if isinstance(expected, tuple) else (expected,))


def assert_readable(message: Any, where: str) -> None:
    assert isinstance(message, str) and message.strip(), f"{where}: no message"
    assert re.search(r"[A-Za-z]{3,}", message) and " " in message.strip(), f"{where}: not human-readable: {message!r}"
    assert not CONTROL.search(message), f"{where}: raw control/bidi characters in the message: {message!r}"


def assert_hygiene(text: str, world: World, where: str, absent: tuple[str, ...] = ()) -> None:
    for fragment in (*FORBIDDEN_FRAGMENTS, *world.secrets(), *absent):
        assert fragment not in text, f"{where}: {fragment!r} leaked into the response: {text[:500]}"


def assert_error_body(response: Any, case: Case, world: World, absent: tuple[str, ...] = ()) -> dict[str, Any]:
    """The universal checks on a synchronous HTTP answer."""
    text = response.content.decode("utf-8", errors="replace")
    where = f"{case.id} ({response.status_code})"
    assert response.status_code < 500, f"{where}: server error: {text[:500]}"
    assert_hygiene(text, world, where, absent)
    assert response.status_code == case.expect.status, f"{where}: expected {case.expect.status}: {text[:500]}"
    body: dict[str, Any] = {}
    if response.get("Content-Type", "").startswith("application/json") and text:
        body = json.loads(text)
    if response.status_code >= 400:
        assert isinstance(body, dict) and {"message", "code"} <= set(body), (
            f"{where}: not a Kiln error body: {text[:300]}"
        )
        assert_readable(body["message"], where)
        assert _matches(body["code"], case.expect.code), (
            f"{where}: code {body['code']!r}, expected {case.expect.code!r}"
        )
        if case.expect.fragment:
            assert case.expect.fragment.lower() in body["message"].lower(), (
                f"{where}: {case.expect.fragment!r} not in {body['message']!r}"
            )
    return body


def assert_job_error(job: dict[str, Any], case: Case, world: World, kind: str) -> None:
    where = f"{case.id} ({kind} {job.get('id')})"
    assert_hygiene(json.dumps(job), world, where)
    assert job["status"] == case.expect.state, (
        f"{where}: ended {job['status']}, expected {case.expect.state}: {job.get('error')}"
    )
    if case.expect.state == "failed":
        error = job["error"]
        assert error and _matches(error.get("code"), case.expect.code), (
            f"{where}: error {error!r}, expected {case.expect.code!r}"
        )
        assert_readable(error.get("message"), where)
        if case.expect.fragment:
            assert case.expect.fragment.lower() in error["message"].lower(), (
                f"{where}: {case.expect.fragment!r} not in {error['message']!r}"
            )


# --- archive building ----------------------------------------------------------------------------

_TYPE_MODES = {
    "file": stat.S_IFREG | 0o644,
    "dir": stat.S_IFDIR | 0o755,
    "symlink": stat.S_IFLNK | 0o777,
    "hardlink": stat.S_IFREG | 0o644,
    "chr": stat.S_IFCHR | 0o666,
    "blk": stat.S_IFBLK | 0o660,
    "fifo": stat.S_IFIFO | 0o644,
}
_TAR_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "chr": tarfile.CHRTYPE,
    "blk": tarfile.BLKTYPE,
    "fifo": tarfile.FIFOTYPE,
}


def _data(entry: dict[str, Any]) -> bytes:
    data = entry.get("data", b"")
    return data.encode() if isinstance(data, str) else data


def build_zip(entries: list[dict[str, Any]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for entry in entries:
            kind = entry.get("type", "file")
            info = zipfile.ZipInfo(entry["name"] + ("/" if kind == "dir" and not entry["name"].endswith("/") else ""))
            info.create_system = 3
            info.external_attr = _TYPE_MODES[kind] << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            payload = entry.get("target", "").encode() if kind == "symlink" else _data(entry)
            with warnings.catch_warnings():  # duplicate names are the point of some cases
                warnings.simplefilter("ignore", UserWarning)
                archive.writestr(info, payload)
    raw = bytearray(buffer.getvalue())
    for entry in entries:
        _patch_zip_central(raw, entry)
    return bytes(raw)


def _patch_zip_central(raw: bytearray, entry: dict[str, Any]) -> None:
    """Lie in the central directory: a declared size, a wrong CRC or the 'encrypted' flag."""
    wanted = entry["name"].encode()
    index = raw.find(b"PK\x01\x02")
    while index != -1:
        name_len = struct.unpack("<H", raw[index + 28 : index + 30])[0]
        if raw[index + 46 : index + 46 + name_len] == wanted:
            if "declared_size" in entry:
                raw[index + 24 : index + 28] = struct.pack("<I", entry["declared_size"])
            if entry.get("bad_crc"):
                crc = struct.unpack("<I", raw[index + 16 : index + 20])[0]
                raw[index + 16 : index + 20] = struct.pack("<I", crc ^ 0xFFFFFFFF)
            if entry.get("encrypted"):
                flags = struct.unpack("<H", raw[index + 8 : index + 10])[0]
                raw[index + 8 : index + 10] = struct.pack("<H", flags | 0x1)
        index = raw.find(b"PK\x01\x02", index + 4)


def build_tar(entries: list[dict[str, Any]], *, gz: bool) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gz else "w", format=tarfile.GNU_FORMAT) as archive:
        for entry in entries:
            kind = entry.get("type", "file")
            info = tarfile.TarInfo(entry["name"])
            info.type = _TAR_TYPES[kind]
            info.mode = 0o755 if kind == "dir" else 0o644
            data = _data(entry) if kind == "file" else b""
            if kind in ("symlink", "hardlink"):
                info.linkname = entry["target"]
            if "declared_size" in entry:
                info.size = entry["declared_size"]
                archive.fileobj.write(info.tobuf(archive.format, archive.encoding, archive.errors))  # type: ignore[union-attr]
                archive.offset += tarfile.BLOCKSIZE
                continue
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data else None)
    return buffer.getvalue()


def build_archive(spec: dict[str, Any]) -> tuple[bytes, str]:
    if spec["raw"] is not None:
        return spec["raw"], "upload.zip"
    fmt = spec["fmt"]
    if fmt == "zip":
        raw, name = build_zip(spec["entries"]), "upload.zip"
    else:
        raw, name = build_tar(spec["entries"], gz=fmt == "tar.gz"), f"upload.{fmt}"
    if "truncate" in spec["patch"]:
        raw = raw[: int(len(raw) * spec["patch"]["truncate"])]
    return raw, name


# --- template planting --------------------------------------------------------------------------


def plant(folder: Path, items: list[dict[str, Any]]) -> None:
    """Put what make_template cannot (links, FIFOs, reserved names) into a registered template."""
    for item in items:
        path = folder / item["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        kind = item["type"]
        if kind == "symlink":
            os.symlink(item["target"], path)
        elif kind == "hardlink":
            os.link(item["target"], path)
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            path.write_text(item["data"])


# --- runners, one per case kind -------------------------------------------------------------------


@dataclass
class Run:
    """Shared per-test context handed to the runners."""

    case: Case
    world: World

    @property
    def cast(self) -> Any:
        return self.world.cast


def _template_for(run: Run) -> Any:
    spec = run.world.fill(run.case.spec)
    template = run.world.make_template(spec["files"], parameters=spec["schema"])
    if spec["plant"]:
        plant(Path(settings.KILN_TEMPLATES_DIR) / template.source_path, spec["plant"])
    return template, spec


def run_generate(run: Run) -> None:
    from apps.projects.models import ProjectFile
    from tests.trees import materialised

    template, spec = _template_for(run)
    url = f"{API}/projects/{run.cast.project.pk}/generated/"
    with run.world.run_jobs():
        response = run.world.client("alice").post(
            url, {"template": template.slug, "parameters": spec["params"]}, format="json"
        )
    created = assert_error_body(response, run.case, run.world)
    detail = run.world.client("alice").get(f"{url}{created['id']}/")
    assert detail.status_code == 200
    job = detail.json()
    assert_job_error(job, run.case, run.world, "generation")
    from apps.projects.models import GeneratedProject

    generated = GeneratedProject.objects.get(pk=created["id"])
    output = materialised(generated)  # the recorded files, read back from the blob store
    if run.case.expect.state == "failed":
        assert not any(output.iterdir()), f"{run.case.id}: a failed generation recorded files"
        assert ProjectFile.objects.filter(generated=generated).count() == 0
    if spec["check_files"]:
        written = {p.relative_to(output).as_posix(): p.read_bytes() for p in output.rglob("*") if p.is_file()}
        assert written == spec["check_files"], f"{run.case.id}: output {sorted(written)}"
        recorded = set(ProjectFile.objects.filter(generated=generated).values_list("path", flat=True))
        assert recorded == set(spec["check_files"])
    for path in output.rglob("*") if output.exists() else ():
        if path.is_file():
            assert b"untouched" not in path.read_bytes(), f"{run.case.id}: the sentinel's content leaked into {path}"


def run_dry_run(run: Run) -> None:
    from apps.projects.models import GeneratedProject

    template, spec = _template_for(run)
    url = f"{API}/projects/{run.cast.project.pk}/generated/"
    body = {"template": template.slug, "parameters": spec["params"], "dry_run": True}
    response = run.world.client("alice").post(url, body, format="json")
    assert_error_body(response, run.case, run.world)
    assert GeneratedProject.objects.count() == 0, "a dry run stored a generation"


def run_upload(run: Run) -> None:
    from apps.templates.models import ProjectTemplate

    spec = run.world.fill(run.case.spec)
    raw, filename = build_archive(spec)
    before = ProjectTemplate.objects.count()
    storage = Path(settings.KILN_TEMPLATES_DIR)
    listing = sorted(p.name for p in storage.iterdir()) if storage.exists() else []
    response = run.world.client("alice").post(
        f"{API}/templates/", {spec["field"]: SimpleUploadedFile(filename, raw)}, format="multipart"
    )
    assert_error_body(response, run.case, run.world)
    if run.case.expect.status >= 400:
        assert ProjectTemplate.objects.count() == before, f"{run.case.id}: a rejected upload was kept"
        after = sorted(p.name for p in storage.iterdir()) if storage.exists() else []
        assert after == listing, f"{run.case.id}: files kept after a rejected upload: {set(after) - set(listing)}"


def _init_remote(path: Path, hooks: list[str], pwn: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["git", "init", "--bare", "-q", str(path)], check=True, env={**os.environ, "GIT_CONFIG_GLOBAL": os.devnull}
    )
    for hook in hooks:
        script = path / "hooks" / hook
        script.write_text(f"#!/bin/sh\necho {hook} >> '{pwn}'\n")
        script.chmod(0o755)


def run_export(run: Run) -> None:
    from apps.projects.models import RepositoryExport

    spec = run.world.fill(run.case.spec)
    if spec["remote"] is not None:
        _init_remote(run.world.tmp_path / "remotes" / "target.git", spec["remote"]["hooks"], run.world.pwn)
    generated = run.world.generated
    url = f"{API}/projects/{run.cast.project.pk}/generated/{generated.pk}/exports/"
    body = dict(spec["body"])
    if isinstance(body.get("connection"), str):
        body["connection"] = int(body["connection"])
    before = RepositoryExport.objects.count()
    with run.world.run_jobs():  # alice: the connections in the world are hers
        response = run.world.client("alice").post(url, body, format="json")
    created = assert_error_body(response, run.case, run.world)
    if run.case.expect.status >= 400:
        assert RepositoryExport.objects.count() == before, f"{run.case.id}: a rejected export was recorded"
        return
    job = run.world.client("alice").get(f"{url}{created['id']}/").json()
    assert_job_error(job, run.case, run.world, "export")


def run_connection(run: Run) -> None:
    from apps.projects.models import ProviderConnection

    spec = run.world.fill(run.case.spec)
    body = {"provider": spec["provider"], "name": "hostile", "base_url": spec["base_url"], "token": run.world.canary}
    response = run.world.client("alice").post(f"{API}/connections/", body, format="json")
    assert_error_body(response, run.case, run.world)
    assert not ProviderConnection.objects.filter(name="hostile").exists()


def run_api_call(run: Run) -> None:
    spec = run.world.fill(run.case.spec)
    client = run.world.client("alice")
    steps = [{"id": "call", "type": "api_call", "input": spec["input"]}]
    created = client.post(f"{API}/workflows/", {"name": "Hostile call", "steps": steps}, format="json")
    assert created.status_code == 201, created.content
    with run.world.run_jobs():
        response = client.post(
            f"{API}/workflows/{created.json()['id']}/runs/", {"inputs": spec["inputs"]}, format="json"
        )
    started = assert_error_body(response, run.case, run.world)
    detail = client.get(f"{API}/runs/{started['id']}/").json()
    assert_job_error(detail, run.case, run.world, "run")
    step_error = detail["steps"][0]["error"]
    assert step_error and _matches(step_error["code"], run.case.expect.code), step_error
    assert_readable(step_error["message"], f"{run.case.id} step")
    logs = client.get(f"{API}/runs/{started['id']}/logs/")
    assert logs.status_code == 200
    assert_hygiene(logs.content.decode(), run.world, f"{run.case.id} logs")
    for step in logs.json()["steps"]:
        for line in step["logs"]:
            assert not CONTROL.search(line), f"{run.case.id}: raw control characters in a run log line: {line!r}"


def run_http(run: Run) -> None:
    spec = run.world.fill(run.case.spec)
    client = run.world.client(spec["user"])
    if spec["auth_header"] is not None:
        client.credentials(HTTP_AUTHORIZATION=spec["auth_header"])
    snapshots = {name: _row(run.world, name) for name in spec["unchanged"]}
    path = API + spec["path"]
    method = getattr(client, spec["method"].lower())
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in spec["headers"].items()}
    if spec["raw"] is not None:
        response = method(path, spec["raw"], content_type=spec["content_type"], **extra)
    elif spec["body"] is not None:
        response = method(path, spec["body"], format=spec["format"], **extra)
    else:
        response = method(path, **extra)
    assert_error_body(response, run.case, run.world, absent=tuple(spec["absent"]))
    if response.status_code == 401:
        assert response.get("WWW-Authenticate"), f"{run.case.id}: 401 without WWW-Authenticate"
    for name, before in snapshots.items():
        assert _row(run.world, name) == before, f"{run.case.id}: {name} changed"


def _row(world: World, name: str) -> dict[str, Any]:
    obj = world.cast.project if name == "project" else getattr(world, name)
    obj.refresh_from_db()
    return model_to_dict(obj)


# --- scenarios: flows of several requests -----------------------------------------------------------


def _gen_url(run: Run) -> str:
    return f"{API}/projects/{run.cast.project.pk}/generated/"


def _post_generation(run: Run, *, execute: bool) -> Any:
    body = {"template": run.world.template.slug, "parameters": {"name": "twice"}}
    client = run.world.client("dave")
    if execute:
        with run.world.run_jobs():
            return client.post(_gen_url(run), body, format="json")
    return client.post(_gen_url(run), body, format="json")


def scenario_double_generate(run: Run) -> None:
    first, second = _post_generation(run, execute=True), _post_generation(run, execute=True)
    ids = []
    for response in (first, second):
        body = assert_error_body(response, run.case, run.world)
        ids.append(body["id"])
        detail = run.world.client("dave").get(f"{_gen_url(run)}{body['id']}/").json()
        assert detail["status"] == "completed", detail
    assert len(set(ids)) == 2, "two submits must be two recorded jobs"
    first_sha = run.world.client("dave").get(f"{_gen_url(run)}{ids[0]}/").json()["content_sha256"]
    second_sha = run.world.client("dave").get(f"{_gen_url(run)}{ids[1]}/").json()["content_sha256"]
    assert first_sha == second_sha, "the same input must give the same output"


def scenario_double_export(run: Run) -> None:
    generated = run.world.generated
    url = f"{API}/projects/{run.cast.project.pk}/generated/{generated.pk}/exports/"
    ids = []
    for _ in range(2):
        with run.world.run_jobs():
            response = run.world.client("mia").post(url, {"provider": "zip"}, format="json")
        body = assert_error_body(response, run.case, run.world)
        ids.append(body["id"])
        assert run.world.client("mia").get(f"{url}{body['id']}/").json()["status"] == "completed"
    assert len(set(ids)) == 2


def scenario_double_run(run: Run) -> None:
    url = f"{API}/workflows/{run.world.workflow.pk}/runs/"
    ids = []
    for _ in range(2):
        with run.world.run_jobs():
            response = run.world.client("alice").post(url, {"inputs": {}}, format="json")
        body = assert_error_body(response, run.case, run.world)
        ids.append(body["id"])
        assert run.world.client("alice").get(f"{API}/runs/{body['id']}/").json()["status"] == "completed"
    assert len(set(ids)) == 2


def _assert_429(response: Any, run: Run) -> None:
    assert_error_body(response, run.case, run.world)
    retry_after = response.get("Retry-After")
    assert retry_after and retry_after.isdigit() and int(retry_after) > 0, f"Retry-After: {retry_after!r}"


def scenario_generation_cap(run: Run) -> None:
    from apps.projects.models import GeneratedProject

    first = _post_generation(run, execute=False)  # stays pending: its enqueue never runs
    assert first.status_code == 202, first.content
    _assert_429(_post_generation(run, execute=False), run)
    assert GeneratedProject.objects.count() == 1


def scenario_export_cap(run: Run) -> None:
    from apps.projects.models import RepositoryExport

    generated = run.world.generated
    url = f"{API}/projects/{run.cast.project.pk}/generated/{generated.pk}/exports/"
    first = run.world.client("mia").post(url, {"provider": "zip"}, format="json")
    assert first.status_code == 202, first.content
    _assert_429(run.world.client("mia").post(url, {"provider": "tar.gz"}, format="json"), run)
    assert RepositoryExport.objects.count() == 1


def scenario_retry_cap(run: Run) -> None:
    broken = run.world.make_template({"a.txt": "{{ missing }}"}, slug="broken")
    with run.world.run_jobs():
        failed = run.world.client("dave").post(_gen_url(run), {"template": broken.slug}, format="json").json()
    assert run.world.client("dave").get(f"{_gen_url(run)}{failed['id']}/").json()["status"] == "failed"
    assert _post_generation(run, execute=False).status_code == 202  # now the cap is reached
    _assert_429(run.world.client("dave").post(f"{_gen_url(run)}{failed['id']}/retry/"), run)


def scenario_retry_completed(run: Run) -> None:
    generated = run.world.generated
    response = run.world.client("dave").post(f"{_gen_url(run)}{generated.pk}/retry/")
    assert_error_body(response, run.case, run.world)


def scenario_cancel_twice(run: Run) -> None:
    created = _post_generation(run, execute=False).json()
    first = run.world.client("dave").post(f"{_gen_url(run)}{created['id']}/cancel/")
    assert first.status_code == 200 and first.json()["status"] == "cancelled", first.content
    assert_error_body(run.world.client("dave").post(f"{_gen_url(run)}{created['id']}/cancel/"), run.case, run.world)


def scenario_verify_private_connection(run: Run) -> None:
    """A base URL accepted while private networks were allowed is checked again at use."""
    from apps.projects.services.connections import connection_create

    settings.KILN_ALLOW_PRIVATE_NETWORKS = True
    conn = connection_create(
        owner=run.cast.alice,
        provider="github",
        name="stale",
        token=run.world.canary,
        base_url="https://127.0.0.1:9/api",
    )
    settings.KILN_ALLOW_PRIVATE_NETWORKS = False
    response = run.world.client("alice").post(f"{API}/connections/{conn.pk}/verify/")
    assert_error_body(response, run.case, run.world)


def scenario_self_spawning_run(run: Run) -> None:
    """A workflow whose steps start the workflow again: one run must not fan out."""
    from apps.workflows.models import WorkflowRun
    from apps.workflows.services.workflow_executor import workflow_run_advance

    client = run.world.client("alice")
    call = {"operation": "workflow_runs_create", "path_params": {"id": "${{ inputs.me }}"}, "body": {"inputs": {}}}
    steps = [{"id": "a", "type": "api_call", "input": call}, {"id": "b", "type": "api_call", "input": call}]
    body = {"name": "Fork", "project": run.cast.project.pk, "steps": steps}
    workflow = client.post(f"{API}/workflows/", body, format="json").json()
    # started without executing its enqueue: the steps are driven by hand below, and the runs they
    # start are recorded but never executed (their on-commit enqueues are dropped with the test)
    started = client.post(f"{API}/workflows/{workflow['id']}/runs/", {"inputs": {"me": workflow["id"]}}, format="json")
    assert started.status_code == 202, started.content
    for _ in range(5):
        if not workflow_run_advance(run_id=started.json()["id"], owner="badinput:1:fork"):
            break
    detail = client.get(f"{API}/runs/{started.json()['id']}/").json()
    assert_hygiene(json.dumps(detail), run.world, run.case.id)
    spawned = WorkflowRun.objects.exclude(pk=started.json()["id"]).count()
    assert spawned == 0, f"one run of a self-starting workflow started {spawned} more runs: {detail['steps']}"
    assert detail["status"] == "failed" and _matches(detail["error"]["code"], run.case.expect.code), detail


def scenario_generated_bare_repo_hook(run: Run) -> None:
    """A template renders a bare git repository with a hook; the project is then pushed into it."""
    from apps.projects.models import GeneratedProject
    from tests.trees import materialised

    hook = f"#!/bin/sh\necho hook-ran >> '{run.world.pwn}'\n"
    template = run.world.make_template(
        {
            "HEAD": "ref: refs/heads/main\n",
            "config": "[core]\n\trepositoryformatversion = 0\n\tbare = true\n",
            "description": "looks like a bare repository\n",
            "objects/.keep": "",
            "refs/.keep": "",
            "hooks/pre-receive": (hook, 0o755),
            "hooks/post-receive": (hook, 0o755),
        },
        slug="bare-repo",
    )
    url = f"{API}/projects/{run.cast.project.pk}/generated/"
    with run.world.run_jobs():
        created = run.world.client("alice").post(url, {"template": template.slug}, format="json")
    assert created.status_code == 202, created.content
    target = GeneratedProject.objects.get(pk=created.json()["id"])
    assert target.status == "completed", target.error
    source = run.world.generated
    export_url = f"{API}/projects/{run.cast.project.pk}/generated/{source.pk}/exports/"
    body = {"provider": "git", "remote_url": f"file://{materialised(target)}"}
    with run.world.run_jobs():
        response = run.world.client("alice").post(export_url, body, format="json")
    # the answer echoes the remote URL the client sent, which names the output folder: only the
    # always-forbidden fragments and the canary are checked here
    assert response.status_code == 202, response.content
    job = run.world.client("alice").get(f"{export_url}{response.json()['id']}/").json()
    for fragment in (*FORBIDDEN_FRAGMENTS, run.world.canary):
        assert fragment not in json.dumps(job), f"{fragment!r} leaked: {job}"
    assert job["status"] in ("completed", "failed"), job
    print("export of the generated bare repository:", job["status"], job["error"])
    assert not run.world.pwn.exists(), f"a hook of the pushed-to repository ran: {run.world.pwn.read_text()!r}"


SCENARIOS: dict[str, Callable[[Run], None]] = {
    "generated_bare_repo_hook": scenario_generated_bare_repo_hook,
    "double_generate": scenario_double_generate,
    "double_export": scenario_double_export,
    "double_run": scenario_double_run,
    "generation_cap": scenario_generation_cap,
    "export_cap": scenario_export_cap,
    "retry_cap": scenario_retry_cap,
    "retry_completed": scenario_retry_completed,
    "cancel_twice": scenario_cancel_twice,
    "verify_private_connection": scenario_verify_private_connection,
    "self_spawning_run": scenario_self_spawning_run,
}


# --- issue 21, harden-render: membership and agent scenarios (items 9, 10, 20) ---------------------


def _client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=user)
    return client


def _members_url(run: Run, membership: Any) -> str:
    return f"{API}/projects/{run.cast.project.pk}/members/{membership.pk}/"


def scenario_owners_remove_each_other(run: Run) -> None:
    """alice removes mia (both owners); mia's removal of alice, sent after, finds her no member: 404."""
    from apps.projects.models import ProjectMembership, Role

    project = run.cast.project
    ProjectMembership.objects.filter(project=project, user=run.cast.mia).update(role=Role.OWNER)
    mia = ProjectMembership.objects.get(project=project, user=run.cast.mia)
    alice = ProjectMembership.objects.get(project=project, user=run.cast.alice)
    assert run.world.client("alice").delete(_members_url(run, mia)).status_code == 204
    assert_error_body(run.world.client("mia").delete(_members_url(run, alice)), run.case, run.world)
    assert ProjectMembership.objects.filter(project=project, role=Role.OWNER).count() == 1


def scenario_last_owner_leaves_with_agents(run: Run) -> None:
    """The only human owner's agent is the other owner: removing the human takes the agent too."""
    from apps.agents.services.agents import agent_create
    from apps.projects.models import ProjectMembership, Role

    project = run.cast.project
    agent = agent_create(owner=run.cast.alice, name="Co-owner")
    ProjectMembership.objects.create(project=project, user=agent.user, role=Role.OWNER)
    alice = ProjectMembership.objects.get(project=project, user=run.cast.alice)
    response = _client_for(agent.user).delete(_members_url(run, alice))
    assert_error_body(response, run.case, run.world)
    assert ProjectMembership.objects.filter(project=project, role=Role.OWNER).count() == 2


def scenario_agent_patch_projects(run: Run) -> None:
    """PATCH an agent's projects: its own project and its role elsewhere stay, the answer is fresh."""
    from apps.agents.services.agents import agent_create
    from apps.projects.models import ProjectMembership, Role

    agent = agent_create(owner=run.cast.alice, name="Patched", projects=[run.cast.project.pk], role=Role.MAINTAINER)
    own = _client_for(agent.user).post(f"{API}/projects/", {"name": "Agent made"}, format="json")
    assert own.status_code == 201, own.content
    response = run.world.client("alice").patch(
        f"{API}/agents/{agent.pk}/", {"projects": [run.cast.project.pk]}, format="json"
    )
    body = assert_error_body(response, run.case, run.world)
    assert sorted(body["projects"]) == sorted([run.cast.project.pk, own.json()["id"]]), body
    roles = dict(ProjectMembership.objects.filter(user=agent.user).values_list("project_id", "role"))
    assert roles == {run.cast.project.pk: Role.MAINTAINER, own.json()["id"]: Role.OWNER}, roles


ISSUE21_RENDER_SCENARIOS: dict[str, Callable[[Run], None]] = {
    "owners_remove_each_other": scenario_owners_remove_each_other,
    "last_owner_leaves_with_agents": scenario_last_owner_leaves_with_agents,
    "agent_patch_projects": scenario_agent_patch_projects,
}
SCENARIOS.update(ISSUE21_RENDER_SCENARIOS)


def run_scenario(run: Run) -> None:
    SCENARIOS[run.case.spec["name"]](run)


RUNNERS: dict[str, Callable[[Run], None]] = {
    "generate": run_generate,
    "dry_run": run_dry_run,
    "upload": run_upload,
    "export": run_export,
    "connection": run_connection,
    "api_call": run_api_call,
    "http": run_http,
    "scenario": run_scenario,
}
