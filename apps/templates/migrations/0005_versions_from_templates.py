"""Every template becomes a template with one version: the one it holds today."""

from django.db import migrations

from apps.templates.versioning import version_sort_key


def forwards(apps, schema_editor):
    ProjectTemplate = apps.get_model("templates", "ProjectTemplate")
    TemplateVersion = apps.get_model("templates", "TemplateVersion")
    for template in ProjectTemplate.objects.order_by("pk").iterator():
        # every template before versions was a native one (blueprints register native templates)
        version = TemplateVersion.objects.create(
            template_id=template.pk,
            version=template.version,
            format="native",
            parameters=template.parameters,
            checksum=template.checksum,
            exclude=template.exclude,
            copy_without_render=template.copy_without_render,
            file_count=template.file_count,
            total_bytes=template.total_bytes,
            source_path=template.source_path,
            sort_key=version_sort_key(template.version, template.updated_at),
            created_by_id=template.uploaded_by_id,
        )
        # recorded when the template last changed (auto_now_add set "now" on create)
        TemplateVersion.objects.filter(pk=version.pk).update(created_at=template.updated_at)


def backwards(apps, schema_editor):
    apps.get_model("templates", "TemplateVersion").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("templates", "0004_template_versions"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
