"""The scaffold engine: a parsed blueprint → the files of a project that installs, runs and passes its tests."""

from __future__ import annotations

from apps.blueprints.services.scaffold.engine import Scaffold, ScaffoldFile, scaffold

__all__ = ["Scaffold", "ScaffoldFile", "scaffold"]
