#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

from __future__ import annotations

import gc
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings.local")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
    # The command is done and the process exits next: move every object to the permanent
    # generation so that interpreter shutdown skips its full garbage collections over
    # Django's whole object graph (~0.3 s per command on a 2-core VM, see bench/README.md).
    # The operating system reclaims the memory either way.
    gc.freeze()


if __name__ == "__main__":
    main()
