# The catalog's table takes the templates app's name (projects_projecttemplate →
# templates_projecttemplate). Rows, ids, constraints and the foreign keys pointing at it stay.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("templates", "0001_initial"),
        ("projects", "0006_template_moved_to_templates_app"),
    ]

    operations = [
        migrations.AlterModelTable(name="projecttemplate", table=None),
    ]
