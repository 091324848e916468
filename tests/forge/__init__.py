"""A local forge playing GitHub and GitLab for Kiln's tests (see `server.LocalForge`)."""

from __future__ import annotations

from tests.forge.model import Recorded
from tests.forge.server import LocalForge

__all__ = ["LocalForge", "Recorded"]
