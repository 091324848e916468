"""Kiln's benchmark suite (issue 6). See bench/README.md.

    .venv/bin/python bench/run.py --sizes 100,1000 --runs 5       # the reference run
    .venv/bin/python bench/run.py --smoke                         # CI: N=100, one run, every section
    .venv/bin/python bench/run.py --sections gen --sizes 1000 --profile

Sections: gen (whole-process generation vs Copier/Cookiecutter/cp), export (git/zip/tar.gz vs the CLIs),
throughput (warm in-process files/s), memory (peak RSS at --memory-sizes), api (query counts and
POST → completed on PostgreSQL + Redis + a worker), storage (filesystem vs S3 blob stores), formats
(Copier and Cookiecutter templates rendered by Kiln vs by copier/cookiecutter, whole process and API),
updates (the same template update of a 1,000-file project by Kiln and by copier update, same tree). Prints the tables and writes them as Markdown to
bench/results/<date>-<host>.md and bench/results/latest.md (smoke runs: bench/work/smoke.md).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # `python bench/run.py`: make `bench` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import synth
from bench.common import (
    RESULTS,
    WORK,
    KilnPaths,
    byte_compile_kiln,
    empty_trash,
    kiln_revision,
    kiln_side,
    load_average,
    log,
    machine_info,
    remove,
    wait_for_quiet_disk,
)
from bench.report import SectionResult, render_markdown, render_text
from bench.sections import BenchContext
from bench.sections.api import run_api
from bench.sections.exports import run_exports
from bench.sections.formats import FOREIGN, run_formats
from bench.sections.generation import run_generation
from bench.sections.inprocess import run_memory, run_throughput
from bench.sections.storage import run_storage
from bench.sections.updates import run_updates

SECTIONS: dict[str, Callable[[BenchContext], SectionResult]] = {
    "gen": run_generation,
    "export": run_exports,
    "throughput": run_throughput,
    "memory": run_memory,
    "api": run_api,
    "storage": run_storage,
    "formats": run_formats,
    "updates": run_updates,
}
TITLES = {
    "gen": "Whole-process generation (item 2)",
    "export": "Exports (item 3)",
    "throughput": "In-process throughput, warm (item 4)",
    "memory": "Peak memory of a generation job (item 4)",
    "api": "API (item 5)",
    "storage": "Blob storage: filesystem and S3 (issue 18)",
    "formats": "Cookiecutter and Copier templates on Kiln (issue 15)",
    "updates": "Template updates: Kiln vs copier update (issue 16)",
}


def _ints(text: str) -> list[int]:
    values = sorted({int(part) for part in text.split(",") if part.strip()})
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=_ints, help="template file counts (default 100,1000)")
    parser.add_argument("--runs", type=int, help="measured runs after one warm-up round (default 5)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated: " + ", ".join(SECTIONS))
    parser.add_argument("--memory-sizes", type=_ints, help="file counts of the memory section (default 1000,10000)")
    parser.add_argument("--api-runs", type=int, help="measured POST → completed runs (default: --runs)")
    parser.add_argument("--profile", action="store_true", help="always profile a warm Kiln CLI run (gen)")
    parser.add_argument("--quick", action="store_true", help="3 runs, memory at 100 and 1000 files")
    parser.add_argument("--smoke", action="store_true", help="CI: N=100, 1 run, memory at 100 and 1000; < 2 min")
    parser.add_argument(
        "--settle-max",
        type=float,
        default=300,
        help="seconds to wait at most for the work disk to be quiet after earlier deletions (default 300; smoke: 0)",
    )
    parser.add_argument("--keep-work", action="store_true", help="keep bench/work/run-* (databases, logs)")
    parser.add_argument("--out", type=Path, help="Markdown output (default bench/results/<date>-<host>.md)")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections: {', '.join(unknown)}")
    args.sections = sections
    if args.smoke:
        defaults = {"sizes": [100], "runs": 1, "memory_sizes": [100, 1000]}
    elif args.quick:
        defaults = {"sizes": [100], "runs": 3, "memory_sizes": [100, 1000]}
    else:
        defaults = {"sizes": [100, 1000], "runs": 5, "memory_sizes": [1000, 10000]}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.api_runs is None:
        args.api_runs = args.runs
    if args.runs < 1 or args.api_runs < 1:
        parser.error("--runs and --api-runs must be at least 1")
    return args


def prepare(ctx: BenchContext, sections: list[str]) -> None:
    """Write the synthetic templates and register them in this run's own SQLite database."""
    # Like the Docker image (and like pip did for Copier and Cookiecutter at install), so no
    # Kiln process pays for compiling its own modules, even with PYTHONDONTWRITEBYTECODE set.
    byte_compile_kiln()
    native: set[int] = set()
    if {"gen", "export", "throughput", "storage"} & set(sections):
        native |= set(ctx.sizes)
        for n in ctx.sizes:
            formats = synth.FORMATS if "gen" in sections else ("native",)
            log(f"synthetic template N={n}: {', '.join(formats)}")
            synth.ensure_templates(n, formats)
    if "memory" in sections:
        native |= set(ctx.memory_sizes)
        for n in ctx.memory_sizes:
            synth.ensure_templates(n, ("native",))
    if "api" in sections:
        synth.ensure_templates(100, ("native",))
    foreign: list[str] = []
    if "formats" in sections:
        for n in ctx.sizes:
            synth.ensure_templates(n, FOREIGN)
            foreign += [synth.source_path(n, fmt) for fmt in FOREIGN]
    if not native and not foreign:
        return
    log(f"registering {len(native) + len(foreign)} template(s) in {ctx.paths.data_dir}")
    paths = [synth.native_source_path(n) for n in sorted(native)] + foreign
    result = kiln_side("setup", *paths, env=ctx.env())
    ctx.checksums = {slug: info["checksum"] for slug, info in result["templates"].items()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started))
    run_dir = WORK / f"run-{stamp}-{os.getpid()}"
    paths = KilnPaths(run_dir=run_dir, templates_dir=synth.templates_root())
    ctx = BenchContext(
        paths=paths,
        sizes=args.sizes,
        runs=args.runs,
        memory_sizes=args.memory_sizes,
        api_runs=args.api_runs,
        profile=args.profile,
        smoke=args.smoke,
    )
    header = machine_info()
    header = {"date": time.strftime("%Y-%m-%d %H:%M", time.localtime(started)), **header}
    header["sizes"] = ", ".join(map(str, args.sizes))
    header["runs"] = f"{args.runs} measured after 1 warm-up (API: {args.api_runs})"
    command = "bench/run.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    results: list[SectionResult] = []
    try:
        empty_trash()  # left by an interrupted run
        run_dir.mkdir(parents=True)
        prepare(ctx, args.sections)
        header["work disk at start"] = wait_for_quiet_disk(0 if args.smoke else args.settle_max)
        for key in args.sections:
            log(f"section {key}")
            revision = kiln_revision()
            began = time.perf_counter()
            try:
                result = SECTIONS[key](ctx)
            except Exception as exc:
                result = SectionResult(key, TITLES[key], status="failed")
                result.notes.append(f"FAILED: {type(exc).__name__}: {exc}".replace("\n", " | "))
                traceback.print_exc()
            result.seconds = time.perf_counter() - began
            if kiln_revision() != revision:
                result.notes.append(f"Kiln's code changed during this section ({revision} → {kiln_revision()}); rerun")
            results.append(result)
    finally:
        empty_trash()
        if not args.keep_work:
            remove(run_dir)
    header["load average at end"] = load_average()
    if kiln_revision() != header["kiln commit"]:
        header["kiln commit"] += f" at start, {kiln_revision()} at end: Kiln CHANGED during the run (see sections)"
    header["duration"] = f"{time.time() - started:.0f} s"
    sys.stdout.write(render_text(header, results))
    markdown = render_markdown(header, results, command=command)
    if args.out:
        targets = [args.out]
    elif args.smoke:
        targets = [WORK / "smoke.md"]
    else:
        targets = [RESULTS / f"{time.strftime('%Y-%m-%d', time.localtime(started))}-{header['host']}.md"]
        targets.append(RESULTS / "latest.md")
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(markdown)
        log(f"wrote {target}")
    return 1 if any(r.status == "failed" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
