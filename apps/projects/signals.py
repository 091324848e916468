"""Signal handlers for side concerns only (audit, counters). They never start work."""

from __future__ import annotations
