"""Result tables, target checks and their rendering as plain text (terminal) and Markdown (results/)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.common import Samples


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Target:
    name: str
    goal: str
    measured: str
    met: bool | None  # None: not measured in this run

    @property
    def verdict(self) -> str:
        return {True: "met", False: "MISSED", None: "not measured"}[self.met]


@dataclass
class SectionResult:
    key: str
    title: str
    status: str = "ok"  # ok | skipped | failed
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def fmt_seconds(value: float) -> str:
    if math.isnan(value):
        return "-"
    if value < 1:
        return f"{value * 1000:.1f} ms"
    return f"{value:.3f} s"


def fmt_ratio(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}x"


def fmt_rate(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.0f}"


def stat_cells(samples: Samples) -> list[str]:
    """Median, min and max of timings, for a table row."""
    return [fmt_seconds(samples.median), fmt_seconds(samples.min), fmt_seconds(samples.max)]


# --- rendering -------------------------------------------------------------------------------------


def _widths(table: Table) -> list[int]:
    columns = [table.headers, *table.rows]
    return [max(len(row[i]) if i < len(row) else 0 for row in columns) for i in range(len(table.headers))]


def table_text(table: Table) -> str:
    widths = _widths(table)

    def line(cells: list[str]) -> str:
        padded = [
            (cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]))
            for i, cell in enumerate(cells + [""] * (len(widths) - len(cells)))
        ]
        return "  ".join(padded).rstrip()

    out = [table.title, line(table.headers), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in table.rows]
    out += [f"  * {note}" for note in table.notes]
    return "\n".join(out)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def table_markdown(table: Table) -> str:
    out = [f"**{table.title}**", ""]
    out.append("| " + " | ".join(_md_cell(h) for h in table.headers) + " |")
    out.append("|" + "|".join(["---"] + ["---:"] * (len(table.headers) - 1)) + "|")
    for row in table.rows:
        cells = row + [""] * (len(table.headers) - len(row))
        out.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    if table.notes:
        out.append("")
        out += [f"- {note}" for note in table.notes]
    return "\n".join(out)


def targets_table(sections: list[SectionResult]) -> Table:
    table = Table("Targets (issue 6)", ["target", "goal", "measured", "verdict"])
    for section in sections:
        for target in section.targets:
            table.rows.append([target.name, target.goal, target.measured, target.verdict])
    return table


def render_text(header: dict[str, str], sections: list[SectionResult]) -> str:
    parts = ["Kiln benchmark", *(f"  {k}: {v}" for k, v in header.items()), ""]
    for section in sections:
        parts.append(f"== {section.title} [{section.status}, {section.seconds:.0f} s]")
        parts += [f"  * {note}" for note in section.notes]
        for table in section.tables:
            parts += [table_text(table), ""]
    parts.append(table_text(targets_table(sections)))
    return "\n".join(parts) + "\n"


def render_markdown(header: dict[str, str], sections: list[SectionResult], *, command: str) -> str:
    parts = [
        f"# Kiln benchmark — {header.get('date', '')}",
        "",
        f"Command: `{command}`",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {k} | {_md_cell(v)} |" for k, v in header.items()),
        "",
        "Timings are median / min / max over the measured runs, after one warm-up round; the tools",
        "alternate inside every round. Ratios are median(tool) / median(Kiln) for each pair.",
        "",
        "## " + "Targets",
        "",
        table_markdown(targets_table(sections)),
        "",
    ]
    for section in sections:
        parts += [f"## {section.title}", "", f"Status: {section.status} ({section.seconds:.0f} s)", ""]
        parts += [f"- {note}" for note in section.notes]
        if section.notes:
            parts.append("")
        for table in section.tables:
            parts += [table_markdown(table), ""]
    return "\n".join(parts)
