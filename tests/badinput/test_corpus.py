"""The hostile-input corpus (tests/badinput/corpus.py), one test per case.

Every case must end in a clean 4xx or a `failed` job with the expected code and a
human-readable message, leak nothing and write nothing outside the output folders.
Cases marked with a `bug` note are known defects: `xfail(strict=False)` until fixed.
"""

from __future__ import annotations

import pytest

from tests.badinput.corpus import ALL_CASES, counts_by_category
from tests.badinput.harness import RUNNERS, Run, World

pytestmark = pytest.mark.django_db

MIN_CASES = 60


def _param(case):
    # `case.bug` records the defect a case exposed; every one of them is fixed, so each case
    # is a plain regression test now (a new defect gets a note and an xfail until fixed)
    return pytest.param(case, id=case.id)


def test_corpus_size():
    counts = counts_by_category()
    print(f"\nbad-input corpus: {len(ALL_CASES)} cases")
    for category, count in counts.items():
        print(f"  {category:<18} {count}")
    ids = [case.id for case in ALL_CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    assert all(case.kind in RUNNERS for case in ALL_CASES)
    assert len(ALL_CASES) >= MIN_CASES


@pytest.mark.parametrize("case", [_param(case) for case in ALL_CASES])
def test_bad_input(case, cast, make_template, run_jobs, sentinel, tmp_path, settings):
    for name, value in case.settings.items():
        setattr(settings, name, value)
    world = World(cast=cast, tmp_path=tmp_path, make_template=make_template, run_jobs=run_jobs)
    before = world.outside_snapshot()
    RUNNERS[case.kind](Run(case=case, world=world))
    assert not world.pwn.exists(), f"{case.id}: the attack target {world.pwn} was created"
    assert world.outside_snapshot() == before, f"{case.id}: something was written outside the output folders"
