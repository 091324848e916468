"""A completed generation of Alpha for the approval tests."""

from __future__ import annotations

import pytest

from apps.projects.services.generation import generated_project_execute, generated_project_start


@pytest.fixture
def generated(cast, make_template):
    template = make_template(
        {"README.md": "# {{ name }}\n", "app/{{ name }}.py": "VALUE = 1\n"},
        slug="gated",
        parameters={"type": "object", "properties": {"name": {"type": "string", "default": "demo"}}},
    )
    row = generated_project_start(
        project=cast.project, template_slug=template.slug, parameters={}, actor=cast.alice, enqueue=False
    )
    return generated_project_execute(generated_id=row.pk, owner="t:1:gated").generated
