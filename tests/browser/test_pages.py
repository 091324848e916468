"""The pages at / in a real browser, on a live server with a real Celery worker.

One person's whole path: log in, find a template in the gallery, fill the form built from
its JSON Schema (a field error shown, then corrected), preview the files, generate, watch
the status reach `completed` through the event stream, open a file, download the zip (its
bytes checked against the API's sha256), export to a local git remote and follow the link.
Every page gets an axe-core check (no serious or critical violations) and a screenshot in
test-artifacts/browser/. The README's screenshot of the generate page is taken here too
(KILN_UPDATE_SCREENSHOTS=1 writes it to docs/screenshots/).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import ARTIFACTS, CHROMIUM_ARGS, REQUIRE, ROOT, chromium_executable

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:
    if REQUIRE:
        raise
    pytest.skip("playwright is not installed: .venv/bin/pip install -r requirements/dev.txt", allow_module_level=True)

pytestmark = [pytest.mark.browser, pytest.mark.integration]

AXE_VERSION = "4.14.1"
AXE_DIR = ROOT / ".cache" / "axe"
AXE_JS = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
PASSWORD = "pages-Passw0rd!"
SCHEMA = {
    "type": "object",
    "required": ["service_name"],
    "properties": {
        "service_name": {
            "type": "string",
            "title": "Service name",
            "pattern": "^[a-z][a-z0-9-]*$",
            "default": "orders",
            "description": "Lowercase letters, digits and dashes; it names the package and the folder.",
        },
        "framework": {"type": "string", "enum": ["fastapi", "django", "flask"], "default": "fastapi"},
        "python_version": {"type": "string", "enum": ["3.11", "3.12", "3.13"], "default": "3.12"},
        "port": {"type": "integer", "minimum": 1024, "maximum": 65535, "default": 8000, "description": "HTTP port."},
        "features": {
            "type": "array",
            "items": {"type": "string", "enum": ["database", "auth", "metrics"]},
            "default": ["database"],
            "description": "What the service starts with.",
        },
        "include_docker": {"type": "boolean", "default": True, "title": "Include a Dockerfile"},
    },
}
FILES = {
    "README.md": "# {{ service_name }}\n\nA {{ framework }} service on port {{ port }}.\n",
    "pyproject.toml": '[project]\nname = "{{ service_name }}"\nrequires-python = ">={{ python_version }}"\n',
    "src/{{ service_name | replace('-', '_') }}/__init__.py": '"""{{ service_name }}."""\n',
    "src/{{ service_name | replace('-', '_') }}/app.py": (
        'FEATURES = {{ features | tojson }}\n\n\ndef create_app():\n    return {"port": {{ port }}}\n'
    ),
    "{% if include_docker %}Dockerfile{% endif %}": "FROM python:{{ python_version }}-slim\nEXPOSE {{ port }}\n",
}


def axe_source() -> str:
    """axe-core from the npm registry, installed once into the ignored .cache/ (as .ci/run does)."""
    if not AXE_JS.is_file():
        npm = shutil.which("npm")
        if npm is None:
            if REQUIRE:
                pytest.fail("npm is needed to install axe-core (apt-get install npm)")
            pytest.skip("npm not found: axe-core cannot be installed")
        subprocess.run(
            [
                npm,
                "install",
                "--no-save",
                "--no-package-lock",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(AXE_DIR),
                f"axe-core@{AXE_VERSION}",
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return AXE_JS.read_text()


class Person:
    """A browser tab of one logged-in person, with an accessibility check per page."""

    def __init__(self, page: Any, base_url: str, axe: str) -> None:
        self.page = page
        self.base_url = base_url
        self.axe = axe
        self.checked: dict[str, list[str]] = {}
        self.page_errors: list[str] = []
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    def shot(self, step: str) -> Path:
        path = ARTIFACTS / f"pages-{step}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def accessible(self, name: str) -> None:
        """axe-core on the page as it is now: no serious or critical violation."""
        self.page.add_script_tag(content=self.axe)
        result = self.page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
        bad = [
            f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
            for v in result["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        self.checked[name] = [v["id"] for v in result["violations"]]
        assert not bad, f"{name}: {bad}"


@pytest.fixture
def stack(live_stack, celery_worker, make_template, django_user_model) -> dict[str, Any]:
    from apps.projects.services.projects import project_create

    make_template(
        FILES,
        slug="service-starter",
        name="Service starter",
        parameters=SCHEMA,
        description="A small Python web service with tests, a Dockerfile and CI.",
    )
    user = django_user_model.objects.create_user("maria", "maria@example.test", PASSWORD)
    project = project_create(owner=user, name="Shop backend")
    return {"url": live_stack.url, "worker": celery_worker, "user": user, "project": project}


def test_a_person_generates_downloads_and_exports_from_the_pages(stack, tmp_path):
    from apps.projects.models import GeneratedProject, RepositoryExport

    executable = chromium_executable()
    if executable is None:
        if REQUIRE:
            pytest.fail("Chromium not found (KILN_REQUIRE_SERVICES=1)")
        pytest.skip("Chromium not found")
    axe = axe_source()
    expect.set_options(timeout=15_000)  # a loaded 2-core CI machine
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    worker = stack["worker"]
    remote = tmp_path / "published.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # ORM reads between browser steps (see conftest)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            # bypass_csp lets the test inject axe-core; the pages' own CSP is checked in apps/web/tests
            context = browser.new_context(
                viewport={"width": 1100, "height": 900}, accept_downloads=True, bypass_csp=True
            )
            context.set_default_timeout(20_000)
            context.route(
                "**/*", lambda route: route.continue_() if route.request.url.startswith(stack["url"]) else route.abort()
            )
            page = context.new_page()
            person = Person(page, stack["url"], axe)
            try:
                _walk(person, stack, remote)
            finally:
                os.killpg(worker.process.pid, signal.SIGCONT)  # never leave the shared worker stopped
                context.close()
                browser.close()
    assert not person.page_errors, person.page_errors
    assert set(person.checked) >= {"login", "gallery", "template", "generate", "generation", "file", "project"}
    generated = GeneratedProject.objects.get()
    assert generated.status == "completed"
    assert {e.provider: e.status for e in RepositoryExport.objects.all()} == {"zip": "completed", "git": "completed"}


def _walk(person: Person, stack: dict[str, Any], remote: Path) -> None:
    page = person.page
    base = stack["url"]

    # log in: the gallery asks for it
    page.goto(base + "/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    person.accessible("login")
    page.get_by_label("Username").fill("maria")
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Templates", level=1)).to_be_visible()

    # the gallery: search, then pick the template
    page.get_by_label("Search by name, description or format").fill("web service")
    page.get_by_role("button", name="Search").click()
    cards = page.locator("li.card.template")
    expect(cards).to_have_count(1)
    person.accessible("gallery")
    person.shot("01-gallery")
    page.get_by_role("link", name="Service starter", exact=True).click()
    expect(page.get_by_role("heading", name="Service starter")).to_be_visible()
    person.accessible("template")
    page.get_by_role("link", name="Generate a project").click()

    # the form from the JSON Schema: a wrong name is refused beside its field, then corrected
    expect(page.get_by_label("Framework")).to_have_value("fastapi")
    expect(page.get_by_label("Port")).to_have_value("8000")
    expect(page.get_by_label("Include a Dockerfile")).to_be_checked()
    page.get_by_label("Service name (required)").fill("Orders API")
    page.get_by_label("Port").fill("80")
    page.get_by_role("button", name="Preview files").click()
    expect(page.locator("#param-service_name-error")).to_have_text(SCHEMA["properties"]["service_name"]["description"])
    expect(page.locator("#param-port-error")).to_contain_text("less than the minimum of 1024")
    expect(page.get_by_label("Service name (required)")).to_have_attribute("aria-invalid", "true")
    person.accessible("generate-errors")
    person.shot("02-generate-field-errors")
    page.get_by_label("Service name (required)").fill("orders-api")
    page.get_by_label("Port").fill("8080")
    page.get_by_label("Framework").select_option("django")
    page.get_by_label("metrics").check()
    page.get_by_role("button", name="Preview files").click()
    preview = page.locator("#preview")
    expect(preview.get_by_role("heading")).to_have_text("Preview: 5 files, 235 bytes")
    expect(preview.locator("li code")).to_have_text(
        ["Dockerfile", "README.md", "pyproject.toml", "src/orders_api/__init__.py", "src/orders_api/app.py"]
    )
    person.accessible("generate")
    path = person.shot("03-generate-preview")
    if os.environ.get("KILN_UPDATE_SCREENSHOTS") == "1":
        target = ROOT / "docs" / "screenshots" / "generate.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)

    # generate with the worker paused, so the page meets the job pending and follows it live
    page.add_init_script(WATCH_STATUS)
    os.killpg(stack["worker"].process.pid, signal.SIGSTOP)
    with page.expect_response(lambda r: r.url.endswith("/events/") and "/exports/" not in r.url) as stream_info:
        page.get_by_role("button", name="Generate", exact=True).click()
        expect(page.locator("h2 [data-status]")).to_have_text("pending")
    stream = stream_info.value
    assert stream.status == 200 and stream.headers["content-type"].startswith("text/event-stream")
    person.shot("04-generation-pending")
    os.killpg(stack["worker"].process.pid, signal.SIGCONT)
    # kiln.js writes what the stream says into the page, then reloads it on the final status
    expect(page.locator("#files-title")).to_have_text("Files (5)")
    expect(page.locator("h2 [data-status]")).to_have_text("completed")
    seen = page.evaluate("JSON.parse(sessionStorage.getItem('kiln-test-seen') || '[]')")
    statuses = [value for kind, value in seen if kind == "status"]
    assert statuses[-1] == "completed" and "running" in statuses, seen
    assert ["progress", "5 / 5"] in seen, seen
    lines = page.locator("[data-log] li").all_text_contents()  # in a closed <details>
    assert any(line.startswith("INFO wrote 5 files") for line in lines), lines
    expect(page.locator("#files-title")).to_have_text("Files (5)")
    person.accessible("generation")
    person.shot("05-generation-completed")

    # open a file: highlighted on the server
    page.locator(".tree").get_by_role("link", name="app.py").click()
    expect(page.locator(".source td.code")).to_contain_text('FEATURES = ["database", "metrics"]')
    expect(page.locator(".source td.code span.n").first).to_be_visible()
    person.accessible("file")
    person.shot("06-file")
    page.go_back()

    # download the zip: the bytes are the ones whose sha256 the API reports
    page.get_by_role("button", name="Download zip").click()
    link = page.get_by_role("link", name="Download zip")
    expect(link).to_be_visible()
    with page.expect_download() as download_info:
        link.click()
    download = download_info.value
    assert download.suggested_filename == "orders-api-1.0.0.zip"
    data = Path(download.path()).read_bytes()
    api_url = link.get_attribute("href").removesuffix("download/")
    detail = page.request.get(base + api_url).json()
    assert detail["status"] == "completed"
    assert detail["archive"] == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    person.shot("07-zip-ready")

    # export to a git remote and follow the link
    page.get_by_label("Where").select_option("git")
    expect(page.get_by_label("Repository name")).to_be_hidden()
    page.get_by_label("Remote URL").fill(f"file://{remote}")
    page.get_by_label("Branch").fill("main")
    page.get_by_role("button", name="Export", exact=True).click()
    repository = page.locator("[data-repository]")
    expect(repository).to_have_attribute("href", f"file://{remote}")
    commit = subprocess.run(
        ["git", "--git-dir", str(remote), "rev-parse", "main"], capture_output=True, text=True, check=True
    ).stdout.strip()
    expect(page.locator("[data-commit]")).to_have_attribute("title", commit)  # what arrived is what the page says
    person.shot("08-exported")

    # the project page: members and roles
    page.get_by_role("link", name="Shop backend").click()
    expect(page.get_by_role("heading", name="Members")).to_be_visible()
    person.accessible("project")
    person.shot("09-project")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    page.goto(base + page.url.removeprefix(base))
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), (
        "the page scrolls sideways on a phone"
    )
    person.shot("10-project-phone")


def _wait_for(check: Any, what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_fleet_rollout_and_approval_pages(live_stack, settings, tmp_path, django_user_model):
    """The pages of a template's fleet (drift, a rollout followed live to completed) and of an
    approval (the plan, approved with its hash), each checked with axe-core, with the real worker."""
    from apps.approvals.models import Approval
    from apps.projects.services.projects import project_create
    from apps.updates.models import Rollout
    from apps.updates.tests.conftest import V1, V2, export_to, generate, publish
    from apps.workflows.models import WorkflowRun
    from apps.workflows.services.workflow_executor import workflow_create, workflow_run_start

    executable = chromium_executable()
    if executable is None:
        if REQUIRE:
            pytest.fail("Chromium not found (KILN_REQUIRE_SERVICES=1)")
        pytest.skip("Chromium not found")
    axe = axe_source()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    user = django_user_model.objects.create_user("maria", "maria@example.test", PASSWORD)
    project = project_create(owner=user, name="Shop backend")
    publish(settings, "svc", "1.0.0", V1)
    remote = tmp_path / "svc.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    export_to(generate(project, user, "svc"), user, {"provider": "git", "remote_url": f"file://{remote}"})
    publish(settings, "svc", "2.0.0", V2)
    gated = [
        {
            "id": "generate",
            "type": "file_generation",
            "requires_approval": True,
            "input": {"project": project.pk, "template": "svc", "parameters": {}},
        }
    ]
    run = workflow_run_start(
        workflow=workflow_create(actor=user, name="Gated", project=project.pk, steps=gated), inputs={}, actor=user
    )
    _wait_for(lambda: Approval.objects.filter(run=run, status="pending").exists(), "the run to wait for approval")
    base = live_stack.url

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # ORM reads between browser steps (see conftest)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1100, "height": 900}, bypass_csp=True)
            context.set_default_timeout(20_000)
            context.route(
                "**/*", lambda route: route.continue_() if route.request.url.startswith(base) else route.abort()
            )
            page = context.new_page()
            person = Person(page, base, axe)
            try:
                page.goto(base + "/login/")
                page.get_by_label("Username").fill("maria")
                page.get_by_label("Password").fill(PASSWORD)
                page.keyboard.press("Enter")
                expect(page.get_by_role("heading", name="Templates", level=1)).to_be_visible()

                # the version history and the generate form of an older version (the picker)
                page.goto(base + "/templates/svc/")
                expect(page.locator("tr[data-version]")).to_have_count(2)
                person.accessible("template-versions")
                page.get_by_role("link", name="Generate with version 1.0.0").click()
                expect(page.get_by_label("Version (the form follows its parameters)")).to_have_value("1.0.0")
                person.accessible("generate-version")

                # the fleet: one repository behind; a preview rollout followed live to completed
                page.goto(base + "/templates/svc/")
                page.get_by_role("link", name="Repositories and rollouts").click()
                expect(page.locator("[data-drift-row]")).to_contain_text("behind 2.0.0")
                person.accessible("fleet")
                person.shot("11-fleet")
                page.get_by_label("Mode").select_option("preview")
                page.get_by_role("button", name="Start the rollout").click()
                expect(page.get_by_role("heading", name=re.compile(r"^Rollout #\d+: svc to 2.0.0$"))).to_be_visible()
                expect(page.locator("h2 [data-status]")).to_have_text("completed")  # the stream, then a reload
                expect(page.locator("[data-item]")).to_contain_text("previewed")
                person.accessible("rollout")
                person.shot("12-rollout")

                # approvals: the plan and its hash, approved
                page.get_by_role("link", name="Approvals").click()
                page.locator("[data-approval] a").first.click()
                sha = Approval.objects.get(run=run).plan_sha256
                expect(page.locator("[data-plan-sha256]")).to_have_text(sha)
                person.accessible("approval")
                person.shot("13-approval")
                page.get_by_role("button", name="Approve this plan").click()
                expect(page.locator("[data-approval-status]")).to_have_text("approved")
            finally:
                context.close()
                browser.close()
    assert not person.page_errors, person.page_errors
    assert Rollout.objects.get().status == "completed"
    _wait_for(lambda: WorkflowRun.objects.get(pk=run.pk).status == "completed", "the approved run to complete")


# Injected by the test (not part of the pages): remembers, across the reload, each change that
# kiln.js made to the status and progress from the event stream.
WATCH_STATUS = """
document.addEventListener("DOMContentLoaded", () => {
  const seen = JSON.parse(sessionStorage.getItem("kiln-test-seen") || "[]");
  const watch = (selector, kind) => {
    const node = document.querySelector(selector);
    if (!node) return;
    new MutationObserver(() => {
      seen.push([kind, node.textContent.trim()]);
      sessionStorage.setItem("kiln-test-seen", JSON.stringify(seen));
    }).observe(node, {childList: true, characterData: true, subtree: true});
  };
  watch("h2 [data-status]", "status");
  watch("[data-progress-text]", "progress");
});
"""
