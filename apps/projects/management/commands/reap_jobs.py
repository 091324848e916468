from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from core.jobs import reap_jobs


class Command(BaseCommand):
    help = "Re-enqueue lost pending jobs and recover or fail running jobs with expired leases (the beat reaper)."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(json.dumps(reap_jobs().as_dict(), sort_keys=True))
