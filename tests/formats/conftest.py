"""Fixtures of the format tests: the corpus rendered once per session by the real tools."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from apps.templates.services.formats import _engine
from tests.formats.cases import ALL
from tests.formats.harness import Rendered, copy_fixture, job_for, run_real_tools


@dataclass
class RealRun:
    work: Path
    templates: dict[str, Path]
    results: dict[str, Rendered]


@pytest.fixture(scope="session")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> RealRun:
    """Every corpus case copied out of the repository and rendered by cookiecutter / copier."""
    work = tmp_path_factory.mktemp("formats-differential")
    templates: dict[str, Path] = {}
    jobs = []
    for case in ALL:
        template = copy_fixture(case.format, case.fixture, work / "templates" / case.id)
        templates[case.id] = template
        jobs.append(job_for(case, template, work))
    return RealRun(work=work, templates=templates, results=run_real_tools(jobs, work))


@pytest.fixture(autouse=True)
def _isolation_scratch(settings: Any) -> Iterator[None]:
    """A scratch root the sandbox's own uid can pass through (pytest's tmp_path is private)."""
    folder = Path(tempfile.mkdtemp(prefix="kiln-isolation-test-"))
    folder.chmod(0o711)
    settings.KILN_ISOLATION_DIR = folder
    _engine.clear_cache()
    yield
    shutil.rmtree(folder, ignore_errors=True)
