"""The agent tools over updates (preview_update, propose_update, get_update): the same service and errors as REST."""

from __future__ import annotations

from typing import Any

import pytest

from apps.agents.services.tools import call_tool, tools
from apps.updates.services.updates import update_execute

pytestmark = pytest.mark.django_db


def run(name: str, actor: Any, **arguments: Any) -> Any:
    return call_tool(tools()[name], actor=actor, arguments=arguments)


def test_preview_then_propose_through_the_tools(cast: Any, exported: Any) -> None:
    target = exported("github")
    where = {"project": target.project.pk, "generated": target.generated.pk}
    preview = run("preview_update", cast.dave, **where)  # a developer may preview
    assert not preview.is_error, preview.structured
    assert preview.structured["mode"] == "preview" and preview.structured["to_version"] == "2.0.0"
    update_execute(update_id=preview.structured["id"], owner="test:1:tools")
    detail = run("get_update", cast.victor, **where, update=preview.structured["id"])
    assert detail.structured["outcome"] == "previewed"
    assert detail.structured["conflicts"] == ["config.yaml"]

    refused = run("propose_update", cast.dave, **where)  # a pull request needs a maintainer, as over REST
    assert refused.is_error and refused.structured["code"] == "permission_denied"
    proposed = run("propose_update", cast.alice, **where)
    assert not proposed.is_error and proposed.structured["mode"] == "pull_request"
    update_execute(update_id=proposed.structured["id"], owner="test:2:tools")
    done = run("get_update", cast.alice, **where, update=proposed.structured["id"]).structured
    assert done["status"] == "completed" and done["pull_request"]["number"] >= 1


def test_the_update_tools_refuse_what_rest_refuses(cast: Any, exported: Any) -> None:
    target = exported("github")
    where = {"project": target.project.pk, "generated": target.generated.pk}
    wrong_mode = run("propose_update", cast.alice, **where, mode="preview")
    assert wrong_mode.is_error and "mode" in wrong_mode.structured["extra"]["fields"]
    unknown = run("preview_update", cast.alice, **where, to_version="9.9.9")
    assert unknown.is_error and unknown.structured["code"] == "version_not_found"  # the REST code
    outsider = run("get_update", cast.charlie, **where, update=1)
    assert outsider.is_error and outsider.structured["code"] == "not_found"
