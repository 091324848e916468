"""Existing generations point at the version they rendered: their template's version with the
recorded label and checksum (versions replaced before versions existed stay unlinked)."""

from django.db import migrations


def forwards(apps, schema_editor):
    GeneratedProject = apps.get_model("projects", "GeneratedProject")
    TemplateVersion = apps.get_model("templates", "TemplateVersion")
    for version in TemplateVersion.objects.order_by("pk").iterator():
        GeneratedProject.objects.filter(
            template_id=version.template_id,
            template_version=version.version,
            template_checksum=version.checksum,
            template_version_ref__isnull=True,
        ).update(template_version_ref_id=version.pk)


def backwards(apps, schema_editor):
    apps.get_model("projects", "GeneratedProject").objects.update(template_version_ref=None)


class Migration(migrations.Migration):
    dependencies = [
        ("projects", "0010_generated_template_version_ref"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
