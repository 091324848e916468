"""Item 2: whole-process generation — Kiln's CLI (cold and warm), Copier, Cookiecutter and `cp -r`.

Every measurement is the wall time of a whole process, start-up included. Inside a round the tools
run one after the other (A B C D E), after one warm-up round. `kiln cold` runs with the template's
compiled-code store and Kiln's blob store emptied (the first generation of that template version:
every file is stored); `kiln warm` runs right after it, with the compiled code and the blobs the cold
run stored (the same parameters: every file is found in the blob index and not stored again). Every output is compared with Kiln's (relative
path → sha256 + executable bit) before anything is reported; a difference fails the section.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from bench import synth
from bench.common import (
    PYTHON,
    REPO,
    WORK,
    BenchError,
    Samples,
    TreeDigest,
    clear_dir,
    diff_digests,
    discard,
    kiln_side,
    log,
    ratio,
    remove,
    settle,
    single_child,
    timed,
    tool,
    tree_digest,
)
from bench.report import SectionResult, Table, Target, fmt_rate, fmt_ratio, fmt_seconds, stat_cells
from bench.sections import BenchContext

KILN_COLD = "kiln cold"
KILN_WARM = "kiln warm"
COPIER = "copier"
COOKIECUTTER = "cookiecutter"
FLOOR = "cp -r (floor)"

# (tool, baseline, minimum ratio tool/baseline) at the reference size
GOALS = (
    (COPIER, KILN_WARM, 12.0),
    (COOKIECUTTER, KILN_WARM, 5.0),
    (COPIER, KILN_COLD, 3.0),
    (COOKIECUTTER, KILN_COLD, 1.5),
)


def _kiln_cmd(slug: str, out: Path) -> list[str]:
    return [PYTHON, "manage.py", "generate_project", "--template", slug, "--output", str(out), "--no-sync"]


class _SizeBench:
    """All tools on the N-file template, round after round."""

    def __init__(self, ctx: BenchContext, n: int, tools: list[str]) -> None:
        self.ctx = ctx
        self.n = n
        self.tools = tools
        self.slug = synth.slug_for(n)
        self.templates = synth.ensure_templates(n)
        self.work = ctx.paths.run_dir / f"gen-n{n}"
        clear_dir(self.work)
        self.cache = ctx.code_store(self.slug)
        self.floor_source = self.work / "reference"
        self.reference: TreeDigest | None = None
        self.cc_config = self.work / "cookiecutter.yaml"
        self.cc_config.write_text(
            f"cookiecutters_dir: {self.work / 'cc-cookiecutters'}\nreplay_dir: {self.work / 'cc-replay'}\n"
        )
        self.env = ctx.env()

    def command(self, name: str, out: Path) -> tuple[list[str], Callable[[], Path]]:
        """The command of `name` writing to `out`, and where its files end up."""
        if name in (KILN_COLD, KILN_WARM):
            return _kiln_cmd(self.slug, out), lambda: out
        if name == COPIER:
            cmd = [str(tool("copier")), "copy", "--defaults", "--quiet", str(self.templates / "copier"), str(out)]
            return cmd, lambda: out
        if name == COOKIECUTTER:
            cmd = [str(tool("cookiecutter")), "--no-input", "--config-file", str(self.cc_config)]
            return [*cmd, "--output-dir", str(out), str(self.templates / "cookiecutter")], lambda: single_child(out)
        if name == FLOOR:
            return ["cp", "-r", str(self.floor_source), str(out)], lambda: out
        raise ValueError(name)

    def once(self, name: str, label: str) -> float:
        out = self.work / f"out-{label}"
        discard(out)
        if name == KILN_COLD:
            remove(self.cache)
            forget_blobs(self.ctx)  # the first generation of a version: none of its files stored yet
        elif name == KILN_WARM and not self.cache.is_file():
            raise BenchError(f"the compiled-code store {self.cache} is missing before a warm run")
        cmd, files_at = self.command(name, out)
        settle()  # the previous tool's writes are flushed before this clock starts
        seconds = timed(cmd, cwd=REPO, env=self.env)
        self.check(name, files_at())
        discard(out)  # deleted after the section: see `discard`
        return seconds

    def check(self, name: str, root: Path) -> None:
        digest = tree_digest(root)
        if self.reference is None:
            expected = synth.expected_output_count(self.n)
            if len(digest) != expected:
                raise BenchError(f"{name} wrote {len(digest)} files at N={self.n}, expected {expected}")
            self.reference = digest
            shutil.copytree(root, self.floor_source)
            return
        problems = diff_digests(self.reference, digest)
        if problems:
            raise BenchError(f"{name} output differs from Kiln's at N={self.n}: " + "; ".join(problems))

    def run(self) -> dict[str, Samples]:
        samples = {name: Samples(name) for name in self.tools}
        for round_no in range(self.ctx.runs + 1):
            this_round = {name: self.once(name, f"{round_no}-{name.split()[0]}") for name in self.tools}
            if round_no > 0:  # round 0 is the warm-up
                for name, seconds in this_round.items():
                    samples[name].values.append(seconds)
            what = "warm-up" if round_no == 0 else f"round {round_no}/{self.ctx.runs}"
            log(f"gen N={self.n} {what}: " + ", ".join(f"{k} {v:.2f}s" for k, v in this_round.items()))
        discard(self.work)
        return samples


def _size_table(n: int, samples: dict[str, Samples], files: int) -> Table:
    table = Table(
        f"Whole-process generation, N={n} template files ({files} written), seconds",
        ["tool", "median", "min", "max", "files/s", "÷ kiln warm", "÷ kiln cold"],
    )
    warm = samples[KILN_WARM].median
    cold = samples[KILN_COLD].median
    for name, values in samples.items():
        table.rows.append(
            [
                name,
                *stat_cells(values),
                fmt_rate(files / values.median),
                fmt_ratio(ratio(values.median, warm)),
                fmt_ratio(ratio(values.median, cold)),
            ]
        )
    table.notes.append(
        "outputs checked identical in every round (relative path → sha256 + executable bit): " + ", ".join(samples)
    )
    return table


def forget_blobs(ctx: BenchContext) -> None:
    """Empty Kiln's blob store (the filesystem backend under GENERATED_PROJECTS_DIR) and its index."""
    discard(ctx.paths.generated_dir / "blobs")
    database = ctx.paths.data_dir / "kiln.sqlite3"
    if database.exists():
        with contextlib.closing(sqlite3.connect(database)) as db, db:
            db.execute("DELETE FROM storage_blob")


def _profile(ctx: BenchContext, n: int, median: float, *, cold: bool) -> Table:
    """One whole-process generation under pyinstrument (cold: compiled-code and blob stores emptied); its main parts."""
    slug = synth.slug_for(n)
    kind = "cold" if cold else "warm"
    out = ctx.paths.run_dir / f"profile-out-n{n}"
    remove(out)
    if cold:
        remove(ctx.code_store(slug))
        forget_blobs(ctx)
    text_out = WORK / "profiles" / f"kiln-{kind}-n{n}.txt"
    cli = ["--template", slug, "--output", str(out), "--no-sync"]
    started = time.perf_counter()
    result = kiln_side("profile-cli", "--text-out", str(text_out), "--cli-args", json.dumps(cli), env=ctx.env())
    wall = time.perf_counter() - started
    discard(out)
    profiled = float(result["profiled_s"])
    table = Table(
        f"Profile of one {kind} `generate_project` process, N={n} (pyinstrument, inclusive time)",
        ["part", "seconds", "% of process"],
    )
    wall -= float(result.get("report_s", 0.0))  # pyinstrument writing its report is not Kiln's time
    outside = max(wall - profiled, 0.0)
    table.rows.append(
        ["outside the profiled call (interpreter + profiler start-up, exit)", fmt_seconds(outside), _pct(outside, wall)]
    )
    for label, seconds in result["buckets"]:
        table.rows.append([label, fmt_seconds(float(seconds)), _pct(float(seconds), wall)])
    table.notes.append(
        f"profiled process: {fmt_seconds(wall)} wall without writing the report (unprofiled median "
        f"{fmt_seconds(median)}; the profiler slows the process down); "
        f"full profile: {text_out.relative_to(REPO) if text_out.is_relative_to(REPO) else text_out}"
    )
    return table


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f} %" if whole > 0 else "-"


def run_generation(ctx: BenchContext) -> SectionResult:
    section = SectionResult("gen", "Whole-process generation (item 2)")
    tools = [KILN_COLD, KILN_WARM]
    for name in (COPIER, COOKIECUTTER):
        if tool(name):
            tools.append(name)
        else:
            section.notes.append(f"skipped {name}: not installed (pip install -r requirements/bench.txt)")
    tools.append(FLOOR)
    by_size: dict[int, dict[str, Samples]] = {}
    for n in ctx.sizes:
        by_size[n] = _SizeBench(ctx, n, tools).run()
        section.tables.append(_size_table(n, by_size[n], synth.expected_output_count(n)))

    ref = ctx.reference_size
    samples = by_size[ref]
    missed = False
    for name, base, goal in GOALS:
        label = f"generation N={ref}: {name} ÷ {base}"
        if name not in samples:
            section.targets.append(Target(label, f"≥ {goal:g}x", "tool not installed", None))
            continue
        value = ratio(samples[name].median, samples[base].median)
        met = value >= goal
        missed |= not met
        section.targets.append(Target(label, ctx.at_reference(f"≥ {goal:g}x"), fmt_ratio(value), met))
    if ctx.profile or (missed and not ctx.smoke):
        for name, cold in ((KILN_WARM, False), (KILN_COLD, True)):
            log(f"profiling a {name} whole-process generation at N={ref}")
            try:
                section.tables.append(_profile(ctx, ref, samples[name].median, cold=cold))
            except Exception as exc:  # diagnostics only: the timings stand without the profile
                section.notes.append(f"profile failed: {exc}".replace("\n", " | "))
    return section
