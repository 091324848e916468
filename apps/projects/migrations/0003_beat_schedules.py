"""Install Kiln's periodic jobs in django-celery-beat (editable in the admin afterwards)."""

from __future__ import annotations

from django.db import migrations

SCHEDULES = [
    ("Kiln: reap stuck jobs", "projects.reap_jobs", {"every": 1, "period": "minutes"}, None),
    (
        "Kiln: clean up old generated projects",
        "projects.cleanup_old_generated_projects",
        None,
        {"minute": "17", "hour": "3"},
    ),
]


def install(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    for name, task, interval, crontab in SCHEDULES:
        if PeriodicTask.objects.filter(name=name).exists():
            continue
        kwargs = {}
        if interval:
            kwargs["interval"], _ = IntervalSchedule.objects.get_or_create(**interval)
        else:
            kwargs["crontab"], _ = CrontabSchedule.objects.get_or_create(
                minute=crontab["minute"],
                hour=crontab["hour"],
                day_of_week="*",
                day_of_month="*",
                month_of_year="*",
                timezone="UTC",
            )
        PeriodicTask.objects.create(name=name, task=task, **kwargs)


def uninstall(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for name, *_ in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("projects", "0002_exports"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
