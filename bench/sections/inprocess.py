"""Item 4: warm in-process throughput of the generator and peak memory of a whole generation job.

Throughput (`bench.kiln_side throughput`): after django.setup(), the template is prepared and
rendered once, then rendered again `runs` times into Kiln's NullSink (render + hash only) and into
a directory through Kiln's SafeWriter (render + write — what the generation service does).

Memory (`bench.kiln_side memory`): each size in a fresh process that runs one whole generation job
in-process (service, eager task, SQLite rows), then reads ru_maxrss. Twice per size: first with the
template's compiled-code store removed (cold), then with the store that run wrote (warm).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from bench import synth
from bench.common import Samples, kiln_side, log, ratio, remove
from bench.report import SectionResult, Table, Target, fmt_rate, fmt_ratio, fmt_seconds
from bench.sections import BenchContext

THROUGHPUT_GOAL = 5000.0
MEMORY_GOAL = 1.2
MEMORY_SIZES = (1000, 10000)


def _rates(files: int, samples: Samples) -> str:
    return f"{fmt_rate(files / samples.median)} ({fmt_rate(files / samples.max)}-{fmt_rate(files / samples.min)})"


def run_throughput(ctx: BenchContext) -> SectionResult:
    section = SectionResult("throughput", "In-process throughput, warm (item 4)")
    table = Table(
        "Generator throughput in one process, warm (files/s: median (min-max))",
        [
            *("N", "files out", "prepare (fresh process)", "first render"),
            *("render only", "render + write, tmpfs", "render + write, work disk"),
        ],
    )
    rates: dict[str, dict[int, float]] = {"render only": {}, "tmpfs": {}, "disk": {}}
    fast_root = _tmpfs()
    for n in ctx.sizes:
        log(f"throughput N={n}")
        scratch = ctx.paths.run_dir / f"throughput-n{n}"
        extra = ["--fast-scratch", str(fast_root / f"kiln-bench-{os.getpid()}-n{n}")] if fast_root else []
        result = kiln_side(
            "throughput",
            *("--slug", synth.slug_for(n), "--runs", str(ctx.runs), "--scratch", str(scratch), *extra),
            env=ctx.env(),
        )
        files = int(result["files"])
        render = Samples("render", result["render_s"])
        write = Samples("render+write", result["render_write_s"])
        fast = Samples("render+write tmpfs", result["render_write_tmpfs_s"])
        rates["render only"][n] = files / render.median
        rates["disk"][n] = files / write.median
        rates["tmpfs"][n] = files / fast.median if fast.values else float("nan")
        table.rows.append(
            [
                str(n),
                str(files),
                fmt_seconds(result["prepare_s"]),
                fmt_seconds(result["first_render_s"]),
                _rates(files, render),
                _rates(files, fast) if fast.values else "no tmpfs",
                _rates(files, write),
            ]
        )
        if result["compiled_in_memory"] == 0:
            table.notes.append(
                f"N={n}: above KILN_TEMPLATE_MEMORY_CACHE_FILES={result['memory_cache_files']}, every render loads "
                "compiled code from the compiled-code store instead of keeping it in memory"
            )
    table.notes.append(
        "render only: Kiln's NullSink (render + sha256); render + write: Kiln's SafeWriter into a fresh folder, on a "
        f"tmpfs ({fast_root or 'none'}) and on the work disk ({ctx.paths.run_dir.parent})"
    )
    section.tables.append(table)
    ref = ctx.reference_size
    labels = (
        ("tmpfs", "render + write to tmpfs"),
        ("disk", "render + write to the work disk"),
        ("render only", "render only (NullSink)"),
    )
    for key, label in labels:
        value = rates[key][ref]
        section.targets.append(
            Target(
                f"throughput N={ref}: {label}, warm",
                ctx.at_reference(f"≥ {THROUGHPUT_GOAL:,.0f} files/s"),
                "-" if math.isnan(value) else f"{value:,.0f} files/s",
                None if math.isnan(value) else value >= THROUGHPUT_GOAL,
            )
        )
    return section


def _tmpfs() -> Path | None:
    """A RAM-backed folder for the write test without the disk (Linux /dev/shm), if there is one."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else None


def run_memory(ctx: BenchContext) -> SectionResult:
    section = SectionResult("memory", "Peak memory of a generation job (item 4)")
    table = Table(
        "Peak RSS of one fresh process running one generation job in-process (MiB)",
        ["N", "files out", "after django.setup", "peak, cold cache", "peak, warm cache", "job (warm)"],
    )
    peaks: dict[int, tuple[float, float]] = {}
    for n in ctx.memory_sizes:
        slug = synth.slug_for(n)
        log(f"memory N={n}: cold then warm compiled-code store")
        remove(ctx.code_store(slug))
        cold = kiln_side("memory", "--slug", slug, env=ctx.env())
        warm = kiln_side("memory", "--slug", slug, env=ctx.env())
        peaks[n] = (float(cold["peak_mib"]), float(warm["peak_mib"]))
        table.rows.append(
            [
                str(n),
                str(warm["files"]),
                f"{warm['baseline_rss_mib']:.1f}",
                f"{cold['peak_mib']:.1f}",
                f"{warm['peak_mib']:.1f}",
                fmt_seconds(warm["seconds"]),
            ]
        )
    section.tables.append(table)
    small, large = min(peaks), max(peaks)
    measured = set(MEMORY_SIZES) <= set(peaks)
    if measured:
        small, large = MEMORY_SIZES
    elif len(peaks) > 1:
        section.notes.append(f"the target compares 1,000 and 10,000 files; this run measured {sorted(peaks)}")
    for index, cache in ((1, "warm"), (0, "cold")):
        value = ratio(peaks[large][index], peaks[small][index])
        section.targets.append(
            Target(
                f"memory: peak RSS N={large} ÷ N={small}, {cache} cache",
                f"≤ {MEMORY_GOAL}x",
                fmt_ratio(value),
                (value <= MEMORY_GOAL) if measured else None,
            )
        )
    return section
