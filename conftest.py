"""Shared fixtures: the cast of users, API clients and throwaway templates."""

from __future__ import annotations

import http.server
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from rest_framework.test import APIClient

pytest_plugins = ["tests.forge.fixtures", "tests.integration.harness", "tests.s3.fixtures"]

REQUIRE_SERVICES = os.environ.get("KILN_REQUIRE_SERVICES") == "1"


@dataclass
class Listener:
    """A loopback HTTP server that records every GET (path and headers) and answers `body` as JSON."""

    base: str
    body: bytes = b"{}"
    hits: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"


@pytest.fixture
def listener() -> Iterator[Listener]:
    """For checking that Kiln does (or, mostly, does not) send a request somewhere."""
    state = Listener(base="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits.append((self.path, dict(self.headers)))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _no_leases_kept_after_the_test() -> Iterator[None]:
    """A job a test claimed and never finished is not renewed into the next test (or past the
    test database's teardown) by the lease keeper's thread (issue 21 item 3)."""
    yield
    from core.jobs import lease_keeper

    lease_keeper.clear()


@pytest.fixture(autouse=True)
def _isolated_storage(request: pytest.FixtureRequest, settings: Any, tmp_path: Path) -> None:
    """Each test writes generated files and uploaded templates into its own folder.

    Integration tests keep the session-wide folders, which their worker process shares.
    """
    if request.node.get_closest_marker("integration"):
        return
    settings.GENERATED_PROJECTS_DIR = tmp_path / "generated-projects"
    settings.KILN_TEMPLATES_DIR = tmp_path / "templates"
    settings.KILN_TEMPLATE_CACHE_DIR = tmp_path / "template-cache"


@dataclass
class Cast:
    """alice owns the project; one member per role; charlie is an outsider."""

    alice: Any
    mia: Any
    dave: Any
    victor: Any
    charlie: Any
    project: Any

    def by_role(self, role: str) -> Any:
        return {"owner": self.alice, "maintainer": self.mia, "developer": self.dave, "viewer": self.victor}[role]


@pytest.fixture
def cast(db: Any) -> Cast:
    from apps.projects.models import ProjectMembership, Role
    from apps.projects.services.projects import project_create
    from apps.projects.tests.factories import UserFactory

    alice = UserFactory(username="alice")
    mia = UserFactory(username="mia")
    dave = UserFactory(username="dave")
    victor = UserFactory(username="victor")
    charlie = UserFactory(username="charlie")
    project = project_create(owner=alice, name="Alpha")
    ProjectMembership.objects.create(project=project, user=mia, role=Role.MAINTAINER)
    ProjectMembership.objects.create(project=project, user=dave, role=Role.DEVELOPER)
    ProjectMembership.objects.create(project=project, user=victor, role=Role.VIEWER)
    return Cast(alice=alice, mia=mia, dave=dave, victor=victor, charlie=charlie, project=project)


@pytest.fixture
def api() -> Callable[[Any], APIClient]:
    """`api(user)` → an APIClient authenticated as `user` (None: anonymous)."""

    def make(user: Any = None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user=user)
        return client

    return make


TemplateFiles = dict[str, "str | bytes | tuple[str | bytes, int]"]


@pytest.fixture
def make_template(db: Any, settings: Any) -> Callable[..., Any]:
    """`make_template(files, slug=..., parameters=..., **manifest)` → a catalog template.

    `files` maps template-relative paths to contents (str or bytes) or (contents, mode).
    """
    from apps.templates.models import TemplateSource
    from apps.templates.services.catalog import _upsert, scan_template

    counter = {"n": 0}

    def make(
        files: TemplateFiles, *, slug: str | None = None, parameters: dict[str, Any] | None = None, **manifest: Any
    ) -> Any:
        counter["n"] += 1
        slug = slug or f"t{counter['n']}"
        version = str(manifest.get("version", "1.0.0"))
        folder = Path(settings.KILN_TEMPLATES_DIR) / slug / version  # one folder per version
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        body = {
            "slug": slug,
            "name": slug.title(),
            "version": "1.0.0",
            "parameters": parameters or {"type": "object", "properties": {}},
        }
        body.update(manifest)
        (folder / "template.yaml").write_text(yaml.safe_dump(body))
        for rel, content in files.items():
            mode = 0o644
            if isinstance(content, tuple):
                content, mode = content
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, str):
                target.write_text(content)
            else:
                target.write_bytes(content)
            target.chmod(mode)
        return _upsert(scan_template(folder), source=TemplateSource.UPLOAD, source_path=f"{slug}/{version}", user=None)

    return make


@pytest.fixture
def run_jobs(django_capture_on_commit_callbacks: Any) -> Callable[[], Any]:
    """Run the on-commit enqueues of the block (tasks execute eagerly in unit tests)."""

    def context() -> Any:
        return django_capture_on_commit_callbacks(execute=True)

    return context


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[Path]:
    """A file beside the output root whose content must never change."""
    path = tmp_path / "sentinel.txt"
    path.write_text("untouched")
    yield path
    assert path.read_text() == "untouched", "a file outside the output folder was modified"
