"""Words an update leaves behind: the commit message (with provenance trailers), the pull/merge
request title and body (every file's outcome, conflicts first)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from apps.projects.services.repository_exporter import provenance_trailers
from apps.updates.services.merge import REPORT_ORDER, Outcome

# GitHub's pull request bodies are limited to 65,536 characters; GitLab's descriptions to 1,048,576.
MAX_BODY = 60_000

ICONS = {
    Outcome.CONFLICT: "⚠️ conflict",
    Outcome.MERGED: "merged",
    Outcome.UPDATED: "updated",
    Outcome.ADDED: "added",
    Outcome.DELETED: "deleted",
    Outcome.KEPT: "kept (your change)",
    Outcome.KEPT_DELETED: "kept deleted",
    Outcome.UNCHANGED: "unchanged",
}


def title(*, slug: str, version: str) -> str:
    return f"Update template {slug} to {version}"


def commit_message(
    *, slug: str, old: str, new: str, generation: int, counts: dict[str, int], conflicts: Sequence[str]
) -> str:
    summary = ", ".join(f"{counts[str(o)]} {o}" for o in REPORT_ORDER if counts.get(str(o)) and o != Outcome.UNCHANGED)
    lines = [title(slug=slug, version=new), "", f"From {slug} {old} to {new}: {summary or 'no file changes'}."]
    if conflicts:
        lines += ["", "Conflicts left in (resolve the markers before merging):", *[f"  {path}" for path in conflicts]]
    return "\n".join(lines) + "\n\n" + provenance_trailers(slug=slug, version=new, generation=generation, previous=old)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def body(
    *,
    slug: str,
    old: str,
    new: str,
    files: Sequence[dict[str, Any]],
    update_id: int,
    base_generation: int,
    new_generation: int,
    limit: int = MAX_BODY,
) -> str:
    """Markdown: what the update does, then every file's outcome, conflicts first."""
    conflicts = [f for f in files if f["outcome"] == Outcome.CONFLICT]
    changed = [f for f in files if f["outcome"] != Outcome.UNCHANGED]
    unchanged = [f for f in files if f["outcome"] == Outcome.UNCHANGED]
    head = [
        f"Kiln updates this repository from template **{slug}** {old} to **{new}**, merging the template's changes "
        "with this repository's own (a 3-way merge per file).",
        "",
    ]
    if conflicts:
        head += [
            f"**{len(conflicts)} file{'s' if len(conflicts) != 1 else ''} with conflicts.** Resolve the markers "
            "(`<<<<<<< before updating` / `=======` / `>>>>>>> after updating`) before merging; a file the "
            "template deleted but this repository changed is kept as it is.",
            "",
        ]
    tail = [
        "",
        f"Kiln-Update: {update_id} (generation {base_generation} → {new_generation})",
    ]
    rows = ["| File | Outcome |", "| --- | --- |"]
    details: list[str] = []
    used = sum(len(line) + 1 for line in head + tail) + 200
    for item in changed:
        label = ICONS.get(Outcome(item["outcome"]), str(item["outcome"]))
        note = item.get("reason") or ""
        if item.get("renamed_from"):
            note = f"renamed from `{item['renamed_from']}`" + (f"; {note}" if note else "")
        row = f"| `{_cell(item['path'])}` | {label}{' — ' + _cell(note) if note else ''} |"
        if used + len(row) > limit:
            rows.append(f"| … | {len(changed) - (len(rows) - 2)} more files (see the update in Kiln) |")
            break
        rows.append(row)
        used += len(row) + 1
    if unchanged and used < limit:
        details = ["", f"<details><summary>{len(unchanged)} files unchanged</summary>", ""]
        for item in unchanged:
            line = f"- `{item['path']}`"
            if used + len(line) > limit:
                details.append(f"- … {len(unchanged) - (len(details) - 3)} more")
                break
            details.append(line)
            used += len(line) + 1
        details += ["", "</details>"]
    if not changed:
        rows = ["No file changes."]
    return "\n".join(head + rows + details + tail) + "\n"
