"""The catalog's migrations on a database that holds rows written before them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE_MOVE = [("projects", "0005_export_create_requested_at"), ("templates", None)]

pytestmark = pytest.mark.django_db(transaction=True)


def _migrate(targets: list[tuple[str, str | None]]) -> Any:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state([target for target in targets if target[1] is not None]).apps


def _latest() -> list[tuple[str, str | None]]:
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


@pytest.fixture
def old_apps() -> Iterator[Any]:
    """The apps registry as it was before the move, on a database migrated back to it."""
    try:
        yield _migrate(BEFORE_MOVE)
    finally:
        _migrate(_latest())


def _tables() -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.table_names(cursor))


def test_the_move_keeps_template_rows_ids_and_the_generations_pointing_at_them(old_apps):
    user = old_apps.get_model("auth", "User").objects.create(username="olduser")
    old_template_model = old_apps.get_model("projects", "ProjectTemplate")
    template = old_template_model.objects.create(
        slug="legacy",
        name="Legacy",
        version="1.0.0",
        parameters={"type": "object", "properties": {"name": {"type": "string", "default": "x"}}},
        source="upload",
        source_path="legacy/abc",
        checksum="c" * 64,
        file_count=3,
        total_bytes=120,
        uploaded_by=user,
    )
    project = old_apps.get_model("projects", "Project").objects.create(name="P", slug="p", owner=user)
    generated = old_apps.get_model("projects", "GeneratedProject").objects.create(
        project=project,
        template=template,
        template_version="1.0.0",
        template_checksum="c" * 64,
        parameters={"name": "x"},
        status="completed",
        content_sha256="d" * 64,
    )
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects.filter(model="projecttemplate").delete()  # as on a database that never saw the move
    content_type = ContentType.objects.create(app_label="projects", model="projecttemplate")
    assert "projects_projecttemplate" in _tables()

    _migrate(_latest())

    from apps.projects.models import GeneratedProject
    from apps.templates.models import ProjectTemplate

    tables = _tables()
    assert "templates_projecttemplate" in tables and "projects_projecttemplate" not in tables
    moved = ProjectTemplate.objects.get(pk=template.pk)
    assert (moved.slug, moved.version, moved.checksum, moved.source_path) == ("legacy", "1.0.0", "c" * 64, "legacy/abc")
    assert moved.uploaded_by_id == user.pk
    row = GeneratedProject.objects.get(pk=generated.pk)
    assert row.template_id == template.pk and row.content_sha256 == "d" * 64
    # the model's content type (and the permissions hanging from it) followed the model
    content_type.refresh_from_db()
    assert content_type.app_label == "templates"
    # the foreign key still protects a template that generations were made from
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError):
        moved.delete()
    # new rows get new ids after the renamed table's sequence
    fresh = ProjectTemplate.objects.create(
        slug="fresh", name="Fresh", version="1", source="upload", source_path="fresh/x", checksum="e" * 64
    )
    assert fresh.pk > template.pk
