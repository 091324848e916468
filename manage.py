#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

from __future__ import annotations

import gc
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings.local")
    # Start-up (imports, settings, the app registry) allocates a few hundred thousand objects
    # that all live until the process exits; collecting garbage while they are being made
    # only re-scans them (~40 ms of a ~0.4 s start-up, see bench/README.md). The collector
    # is off until the command is loaded, then those objects are frozen out of it and it
    # runs as usual for the command's own work.
    gc.disable()
    from django.core.management import BaseCommand, ManagementUtility

    class Utility(ManagementUtility):
        def fetch_command(self, subcommand: str) -> BaseCommand:
            command = super().fetch_command(subcommand)  # after django.setup()
            gc.freeze()
            gc.enable()
            return command

    try:
        Utility(sys.argv).execute()
    finally:
        gc.enable()
    # The command is done and the process exits next: move every object to the permanent
    # generation so that interpreter shutdown skips its full garbage collections over
    # Django's whole object graph (~0.3 s per command on a 2-core VM, see bench/README.md).
    # The operating system reclaims the memory either way.
    gc.freeze()


if __name__ == "__main__":
    main()
