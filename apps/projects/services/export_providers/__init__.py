"""Export provider modules; importing this package registers each of them."""

from __future__ import annotations

from apps.projects.services.export_providers import archives, git_remote, github, gitlab  # noqa: F401
