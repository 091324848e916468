# ProjectTemplate now lives in the templates app (templates 0001 took over its state; the table
# is unchanged here). Only the migration state changes: the generation's foreign key points at
# the moved model, and the projects app forgets its copy.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("projects", "0005_export_create_requested_at"),
        ("templates", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="generatedproject",
                    name="template",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="generated_projects",
                        to="templates.projecttemplate",
                    ),
                ),
                migrations.DeleteModel(name="ProjectTemplate"),
            ],
            database_operations=[],
        ),
    ]
