# The template catalog moves here from the projects app (state only: the table stays as it is
# until 0002 renames it). Content types and permissions of the model follow it.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def _relabel(apps, old, new):
    """The model's content type (and the permissions that point at it) follows the model,
    unless the new label already has one (created after an earlier migrate): then that one stays."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label=new, model="projecttemplate").exists():
        ContentType.objects.filter(app_label=old, model="projecttemplate").update(app_label=new)


def move_content_type(apps, schema_editor):
    _relabel(apps, "projects", "templates")


def move_content_type_back(apps, schema_editor):
    _relabel(apps, "templates", "projects")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("contenttypes", "0002_remove_content_type_name"),
        ("projects", "0005_export_create_requested_at"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ProjectTemplate",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        ("slug", models.SlugField(max_length=100, unique=True)),
                        ("name", models.CharField(max_length=200)),
                        ("description", models.TextField(blank=True, default="")),
                        ("version", models.CharField(max_length=50)),
                        (
                            "parameters",
                            models.JSONField(default=dict, help_text="JSON Schema of the template's parameters"),
                        ),
                        ("exclude", models.JSONField(blank=True, default=list)),
                        ("copy_without_render", models.JSONField(blank=True, default=list)),
                        (
                            "source",
                            models.CharField(
                                choices=[("builtin", "Built-in"), ("upload", "Uploaded archive")], max_length=16
                            ),
                        ),
                        (
                            "source_path",
                            models.CharField(
                                help_text="folder of the template, relative to its source root (built-in or upload storage)",
                                max_length=500,
                            ),
                        ),
                        ("checksum", models.CharField(help_text="sha256 over the template's files", max_length=64)),
                        ("file_count", models.PositiveIntegerField(default=0)),
                        ("total_bytes", models.PositiveBigIntegerField(default=0)),
                        ("is_active", models.BooleanField(default=True)),
                        (
                            "uploaded_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="uploaded_templates",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "ordering": ["slug"],
                        "db_table": "projects_projecttemplate",
                        "constraints": [
                            models.CheckConstraint(
                                condition=models.Q(("source__in", ["builtin", "upload"])),
                                name="template_source_valid",
                            )
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_type, move_content_type_back, elidable=True),
    ]
