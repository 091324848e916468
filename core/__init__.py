"""Kiln's Django project package: settings, the Celery app, URLs and the error hierarchy.

Importing a submodule (`core.sandbox`, `core.exceptions`, ...) runs this file first, so it
imports nothing: the Celery app (`core.celery`) is imported by the task modules that use
it (`apps/*/tasks.py`) and found by `celery -A core`, and processes that need neither
Celery nor Django — the template compile helpers — start without them.
"""
