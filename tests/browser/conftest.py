"""Real-browser fixtures: Debian's headless Chromium driven by Playwright for Python.

Playwright's own browser download needs the internet, so the tests drive the system
Chromium (`apt-get install chromium`, which `.ci/run` does) through `executable_path`;
KILN_CHROMIUM names another binary. Without Chromium or the `playwright` package the tests
skip, unless KILN_REQUIRE_SERVICES=1 (CI), where that is a failure.

The browser talks to the live server only: a request to any other origin is aborted and
recorded in `BrowserPage.blocked`, so no result depends on the network. Screenshots go to
test-artifacts/browser/<test>-<step>.png, plus <test>-failure.png when a test fails.

While Playwright's sync API is started it keeps an asyncio loop running in the main
thread, and Django then refuses ORM calls there (SynchronousOnlyOperation). The `chromium`
fixture is module-scoped and sets DJANGO_ALLOW_ASYNC_UNSAFE only while it runs; the tests
still call the ORM synchronously, from one thread, between browser actions.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Response, Route

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
REQUIRE = os.environ.get("KILN_REQUIRE_SERVICES") == "1"
MARKER = "browser: headless Chromium against a live server (skipped without Chromium, unless KILN_REQUIRE_SERVICES=1)"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "browser-Passw0rd!"
TEMPLATE_SLUG = "browser-demo"
TEMPLATE_FILES = {"README.md": "# {{ name }}\n", "src/{{ name }}.py": 'NAME = "{{ name }}"\n'}
TEMPLATE_PARAMETERS = {
    "type": "object",
    "properties": {"name": {"type": "string", "pattern": "^[a-z-]+$", "default": "browser-demo"}},
}

_CALL_REPORT = pytest.StashKey[pytest.TestReport]()


def pytest_configure(config: pytest.Config) -> None:
    """Register the `browser` marker until pytest.ini declares it (--strict-markers)."""
    if not any(str(line).startswith("browser:") for line in config.getini("markers")):
        config.addinivalue_line("markers", MARKER)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Keep the call-phase report so `browser_page` can screenshot a failure."""
    report = yield
    if report.when == "call":
        item.stash[_CALL_REPORT] = report
    return report


def chromium_executable() -> str | None:
    candidate = os.environ.get("KILN_CHROMIUM") or shutil.which("chromium")
    if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
        return candidate
    return None


def _unavailable(reason: str) -> NoReturn:
    if REQUIRE:
        pytest.fail(f"{reason} (KILN_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One headless Chromium per test module, each test in its own fresh context."""
    executable = chromium_executable()
    if executable is None:
        _unavailable("Chromium not found: apt-get install chromium, or set KILN_CHROMIUM to its path")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _unavailable("playwright is not installed: .venv/bin/pip install -r requirements/dev.txt")
    expect.set_options(timeout=10_000)  # the default 5 s is tight on a loaded CI machine
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            # launch() gives every run a fresh temporary user data dir.
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            try:
                yield browser
            finally:
                browser.close()


@dataclass
class Site:
    """The live server and the people and template the tests use."""

    url: str
    admin: Any
    builder: Any
    template: Any
    password: str = PASSWORD


@pytest.fixture
def kiln_site(live_server: Any, transactional_db: Any, make_template: Callable[..., Any]) -> Site:
    """Committed data for the live server thread: a superuser, a plain user, a template."""
    from django.contrib.auth import get_user_model

    from apps.templates.services.catalog import template_sync_builtin

    template_sync_builtin()  # transactional tests flush the catalog between tests
    template = make_template(TEMPLATE_FILES, slug=TEMPLATE_SLUG, parameters=TEMPLATE_PARAMETERS)
    user_model = get_user_model()
    admin = user_model.objects.create_superuser("root-admin", "root-admin@example.test", PASSWORD)
    builder = user_model.objects.create_user("builder", "builder@example.test", PASSWORD)
    return Site(url=live_server.url, admin=admin, builder=builder, template=template)


@dataclass
class BrowserPage:
    """A page in a fresh browser context, with what went wrong on it so far."""

    page: Page
    base_url: str
    name: str
    blocked: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    bad_responses: list[str] = field(default_factory=list)

    def goto(self, path: str) -> Response:
        response = self.page.goto(self.base_url + path)
        assert response is not None, f"no response for {path}"
        return response

    def screenshot(self, step: str, *, full_page: bool = True) -> Path:
        path = ARTIFACTS / f"{self.name}-{step}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def same_origin(self, url: str) -> bool:
        return urlsplit(url)[:2] == urlsplit(self.base_url)[:2]

    def assert_clean(self) -> None:
        """Nothing left the live server, no script failed, no request came back 4xx/5xx."""
        assert not self.blocked, f"requests to other origins: {self.blocked}"
        assert not self.page_errors, f"JavaScript errors: {self.page_errors}"
        assert not self.bad_responses, f"failed requests: {self.bad_responses}"

    def api_response(self) -> tuple[str, Any]:
        """The browsable API's response panel: its status line and its JSON body."""
        text = self.page.locator(".response-info pre").inner_text()
        head, _, body = text.partition("\n\n")
        return head.splitlines()[0].strip(), json.loads(body)


@pytest.fixture
def browser_page(chromium: Browser, kiln_site: Site, request: pytest.FixtureRequest) -> Iterator[BrowserPage]:
    """A fresh context (no cookies) on the live server; screenshots the page if the test fails."""
    from playwright.sync_api import Error as PlaywrightError

    name = re.sub(r"[^\w.-]+", "_", request.node.name)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for stale in ARTIFACTS.glob(f"{name}-*.png"):
        stale.unlink()
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(10_000)
    page = context.new_page()
    state = BrowserPage(page=page, base_url=kiln_site.url, name=name)

    def only_live_server(route: Route) -> None:
        if state.same_origin(route.request.url):
            route.continue_()
        else:
            state.blocked.append(route.request.url)
            route.abort("blockedbyclient")

    def on_response(response: Response) -> None:
        if response.status >= 400:
            state.bad_responses.append(f"{response.status} {response.request.method} {response.url}")

    context.route("**/*", only_live_server)
    page.on("pageerror", lambda error: state.page_errors.append(str(error)))
    page.on("response", on_response)
    try:
        yield state
    finally:
        report = request.node.stash.get(_CALL_REPORT, None)
        if report is not None and report.failed:
            with contextlib.suppress(PlaywrightError):
                state.screenshot("failure")
        context.close()
