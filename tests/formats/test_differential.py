"""Kiln renders every fixture of the corpus byte for byte as the real tool does.

The corpus (tests/formats/corpus, written for these tests) has at least one fixture per
feature of the Cookiecutter and Copier formats Kiln supports (tests/formats/cases.py names
them); each is rendered by the pinned tool and by Kiln with the same answers, defaults and
non-defaults, and the trees must be equal: same file paths, same bytes, same executable bit.
Where the tool fails, Kiln must fail too, with the coded error the case names.
"""

from __future__ import annotations

import pytest

from apps.templates.services.formats import _engine
from tests.formats.cases import ALL, Case
from tests.formats.conftest import RealRun
from tests.formats.harness import differences, render_with_kiln


@pytest.mark.parametrize("case", ALL, ids=lambda case: case.id)
def test_kiln_renders_as_the_tool(case: Case, real_run: RealRun) -> None:
    real = real_run.results[case.id]
    kiln = render_with_kiln(case, real_run.templates[case.id], real_run.work)
    if case.error:
        assert not real.ok, f"{case.format} succeeded where Kiln is expected to fail ({case.feature})"
        assert not kiln.ok, f"Kiln rendered a template {case.format} refuses ({real.error})"
        assert kiln.code == case.error, f"{kiln.code}: {kiln.error}"
        return
    assert real.ok, f"{case.format} failed on the fixture: {real.error}"
    assert kiln.ok, f"Kiln failed ({kiln.code}): {kiln.error}"
    assert real.tree is not None and kiln.tree is not None
    found = differences(real.tree, kiln.tree)
    assert not found, f"{case.feature}:\n" + "\n".join(found)
    # A warm generation in a new process works from the version's plan and compiled code only.
    _engine.clear_cache()
    warm = render_with_kiln(case, real_run.templates[case.id], real_run.work, label="kiln-warm")
    assert warm.ok and warm.tree is not None, f"{warm.code}: {warm.error}"
    assert not differences(real.tree, warm.tree), "the warm render (from the plan) differs"
