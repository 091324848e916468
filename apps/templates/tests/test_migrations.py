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


BEFORE_VERSIONS = [("projects", "0009_approvals_and_created_repositories"), ("templates", "0003_template_files")]


@pytest.fixture
def unversioned_apps() -> Iterator[Any]:
    """The apps registry as it was before template versions, on a database migrated back to it."""
    try:
        yield _migrate(BEFORE_VERSIONS)
    finally:
        _migrate(_latest())


def test_each_template_becomes_one_version_and_generations_point_at_it(unversioned_apps):
    old = unversioned_apps
    user = old.get_model("auth", "User").objects.create(username="versionsuser")
    template_model = old.get_model("templates", "ProjectTemplate")
    schema = {"type": "object", "properties": {"name": {"type": "string", "default": "x"}}}
    uploaded = template_model.objects.create(
        slug="legacy-up",
        name="Legacy",
        version="1.2.0",
        parameters=schema,
        exclude=["*.pyc"],
        copy_without_render=["static/**"],
        source="upload",
        source_path="legacy-up/abc",
        checksum="a" * 64,
        file_count=3,
        total_bytes=120,
        uploaded_by=user,
    )
    blueprint = template_model.objects.create(
        slug="legacy-bp",
        name="Blueprint",
        version="1.0.1",
        source="upload",
        source_path="legacy-bp/x",
        checksum="b" * 64,
        exclude=["blueprint.md"],
    )
    project = old.get_model("projects", "Project").objects.create(name="P", slug="pv", owner=user)
    generated_model = old.get_model("projects", "GeneratedProject")
    current = generated_model.objects.create(
        project=project,
        template=uploaded,
        template_version="1.2.0",
        template_checksum="a" * 64,
        parameters={"name": "x"},
        status="completed",
        content_sha256="d" * 64,
    )
    replaced = generated_model.objects.create(  # a version uploaded over before versions existed
        project=project,
        template=uploaded,
        template_version="1.1.0",
        template_checksum="9" * 64,
        parameters={"name": "y"},
        status="completed",
        content_sha256="e" * 64,
    )

    _migrate(_latest())

    from apps.projects.models import GeneratedProject
    from apps.templates.models import ProjectTemplate, TemplateVersion

    version = TemplateVersion.objects.get(template_id=uploaded.pk)
    assert (version.version, version.checksum, version.format, version.source_path) == (
        "1.2.0",
        "a" * 64,
        "native",
        "legacy-up/abc",
    )
    assert (
        version.parameters == schema and version.exclude == ["*.pyc"] and version.copy_without_render == ["static/**"]
    )
    assert (version.file_count, version.total_bytes, version.created_by_id) == (3, 120, user.pk)
    assert version.uses_code == [] and version.is_trusted is False and version.commit == ""
    assert version.created_at == ProjectTemplate.objects.get(pk=uploaded.pk).updated_at
    assert TemplateVersion.objects.get(template_id=blueprint.pk).version == "1.0.1"
    moved = GeneratedProject.objects.get(pk=current.pk)
    assert moved.template_version_ref_id == version.pk and moved.content_sha256 == "d" * 64
    kept = GeneratedProject.objects.get(pk=replaced.pk)
    assert kept.template_version_ref_id is None and kept.template_version == "1.1.0"
    assert kept.content_sha256 == "e" * 64
    # a version with generations cannot be deleted from under them
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError):
        version.delete()
