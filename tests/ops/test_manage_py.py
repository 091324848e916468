"""`manage.py`: the garbage collector is off only during start-up, never for a command's own work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_commands_run_with_the_collector_on_and_start_up_frozen(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(DJANGO_SETTINGS_MODULE="core.settings.local", KILN_DATA_DIR=str(tmp_path / "data"))
    code = "import gc; print(gc.isenabled(), gc.get_freeze_count() > 10000)"
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    # on for the command; the objects of Django's start-up moved out of its way
    assert done.stdout.strip().splitlines()[-1].split() == ["True", "True"]
