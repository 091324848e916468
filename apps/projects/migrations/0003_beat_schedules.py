"""Formerly installed the periodic jobs in django-celery-beat; now a no-op.

Kiln's two periodic jobs are a static celery beat schedule (`core/celery.py`, configured with
KILN_REAPER_INTERVAL_SECONDS and KILN_CLEANUP_CRONTAB). Kept so that the migration graph of
existing databases stays the same; the django_celery_beat tables such a database may still
have are no longer used and can be dropped.
"""

from __future__ import annotations

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("projects", "0002_exports")]

    operations: list[migrations.operations.base.Operation] = []
