"""Fixtures of the fuzz suite: a small world of real objects (ids start at 1) and a real token."""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

# Hypothesis keeps caches (and, unless disabled, an example database) below ./.hypothesis; keep
# them out of the checkout. The example database itself is off (schema_loader.CONFIG).
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "kiln-fuzz-hypothesis")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give each schemathesis item its own node id.

    With pytest 9, schemathesis 4.32 builds every item's node id from the bare function name
    (`test_api`), so all operations would report as one; append the operation label instead.
    """
    for item in items:
        label = getattr(item, "operation_label", None)
        node_id = getattr(item, "_id", None)
        if label and node_id is not None and node_id.params is None:
            item._id = node_id.with_params(label)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Which narrow exceptions of checks.py fired, and how often (empty when the fuzz tests did not run)."""
    checks = sys.modules.get("tests.fuzz.checks")
    tolerated = getattr(checks, "TOLERATED", None)
    if tolerated:
        terminalreporter.section("schemathesis tolerances (tests/fuzz/checks.py)")
        examples = getattr(checks, "TOLERATED_EXAMPLES", {})
        for reason, count in sorted(tolerated.items()):
            terminalreporter.write_line(f"{count:6d}  {reason}")
            for (example_reason, detail), seen in sorted(examples.items(), key=lambda item: -item[1]):
                if example_reason == reason:
                    terminalreporter.write_line(f"          {seen:4d}  {detail}")


@dataclass
class FuzzWorld:
    token: str
    agent_token: str
    forge_token: str
    user: Any
    project: Any

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"}

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.token, self.agent_token, self.forge_token)


@pytest.fixture
def fuzz_world(django_db_reset_sequences: None, settings: Any, make_template: Any, github_forge: Any) -> FuzzWorld:
    """One of each object, so that the id 1 the coverage phase draws names something real.

    user 1 `fuzzer` owns project 1 (member 1; user 2 is member 2, a viewer), generation 1 of
    template `world` (files 1-2), zip export 1, GitHub connection 1 (to the local forge, so
    `verify` can succeed), project workflow 1 with run 1, agent 1 with a token.
    """
    from apps.accounts.services import user_token_issue
    from apps.agents.services.agents import agent_create, agent_token_issue
    from apps.projects.models import ProjectMembership, Role
    from apps.projects.services.connections import connection_create
    from apps.projects.services.exports import repository_export_execute, repository_export_start
    from apps.projects.services.generation import generated_project_execute, generated_project_start
    from apps.projects.services.projects import project_create
    from apps.projects.tests.factories import UserFactory
    from apps.templates.models import ProjectTemplate
    from apps.workflows.services.workflow_executor import workflow_create, workflow_run_start

    # rows committed before this test (the built-in templates synced when the test database was
    # created) would collide with the ids the reset sequences hand out again
    ProjectTemplate.objects.all().delete()
    from tests.forge.fixtures import ALICE_TOKEN

    settings.KILN_ALLOW_FILE_REMOTES = False  # production default: fuzzed remote URLs never reach local paths
    settings.KILN_PROVIDER_MAX_ATTEMPTS = 1  # an unreachable provider answers at once instead of backing off

    user = UserFactory(username="fuzzer")
    viewer = UserFactory(username="vic")
    project = project_create(owner=user, name="Fuzz")
    ProjectMembership.objects.create(project=project, user=viewer, role=Role.VIEWER)
    template = make_template(
        {"README.md": "# {{ name }}\n", "src/app.py": "print('hi')\n"},
        slug="world",
        parameters={"type": "object", "properties": {"name": {"type": "string", "default": "demo"}}},
    )
    row = generated_project_start(
        project=project, template_slug=template.slug, parameters={}, actor=user, enqueue=False
    )
    generated = generated_project_execute(generated_id=row.pk, owner="fuzz:1:world").generated
    assert generated.status == "completed", generated.error
    export = repository_export_start(generated=generated, data={"provider": "zip"}, actor=user, enqueue=False)
    assert repository_export_execute(export_id=export.pk, owner="fuzz:1:export")[0].status == "completed"
    connection_create(owner=user, provider="github", name="forge", token=ALICE_TOKEN, base_url=github_forge.api_url)
    steps = [{"id": "peek", "type": "api_call", "input": {"operation": "projects_list"}}]
    workflow = workflow_create(actor=user, name="World", steps=steps, project=project.pk)
    workflow_run_start(workflow=workflow, inputs={}, actor=user)  # transactional db: runs at commit (eager)
    agent = agent_create(owner=user, name="Builder", projects=[project.pk])
    _, agent_token = agent_token_issue(agent=agent, name="fuzz")
    _, token = user_token_issue(user=user, name="fuzz")
    return FuzzWorld(token=token, agent_token=agent_token, forge_token=ALICE_TOKEN, user=user, project=project)
