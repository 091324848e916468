"""Structure documents → a `Blueprint`: the entries of the tree, the stack, the warnings.

A structure document is Markdown or text describing a new service: a directory tree (in a
code block or bare; drawn with box characters, ASCII `|--`/`` `-- ``, indentation or
`tree` output), comments per entry, prose sections about folders and files, a stack named
in passing. This module is pure (no database, no settings): `parse_document(text)`.

Every reader of untrusted input is bounded: the document size, the number of lines, the
line length, the depth and the number of entries have caps; exceeding one is a coded 400
naming the line (`BlueprintTooLarge`). Paths that would escape the project (`..`, absolute
paths, `.git/`) are a `BlueprintInvalid` naming the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from apps.blueprints.services.errors import NO_TREE_HINT, BlueprintInvalid, BlueprintTooLarge
from apps.blueprints.services.roles import assign_role
from apps.blueprints.services.stack import Stack, detect_stack
from core.safe_paths import UnsafePath, clean_relative_path


@dataclass(frozen=True)
class Limits:
    max_chars: int = 256 * 1024
    max_lines: int = 5_000
    max_line_chars: int = 2_000
    max_depth: int = 16
    max_entries: int = 400


@dataclass
class Entry:
    path: str
    kind: str  # "file" | "dir"
    line: int
    comment: str = ""
    marker: str = ""  # "new" | "existing" | "enhanced" | ""
    prose: list[str] = field(default_factory=list)
    role: str = ""
    implied: bool = False  # a folder only named as part of a longer entry

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def description(self) -> str:
        """The tree's comment, else the first prose paragraph about the entry."""
        if self.comment:
            return self.comment
        return self.prose[0] if self.prose else ""

    @property
    def details(self) -> str:
        """Everything the document says about the entry: the comment, then its prose."""
        parts = [self.comment] if self.comment else []
        parts.extend(text for text in self.prose if text not in parts)
        return "\n\n".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "description": self.description,
            "role": self.role,
            "line": self.line,
            "marker": self.marker,
        }


@dataclass(frozen=True)
class Warning:
    line: int
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "code": self.code, "message": self.message}


@dataclass
class Blueprint:
    title: str
    root: str
    entries: list[Entry]
    stack: Stack
    warnings: list[Warning]
    intro: str  # the document's prose before/around the tree, for the README
    sections: list[tuple[str, str]]  # (heading, body) of the prose sections, in order
    repaired_encoding: bool = False

    def entry(self, path: str) -> Entry | None:
        for entry in self.entries:
            if entry.path == path:
                return entry
        return None

    @property
    def paths(self) -> list[str]:
        return [entry.path for entry in self.entries]


# --- encoding -------------------------------------------------------------------------------

_REVERSE: dict[str, int] = {}
for _encoding in ("cp1252", "cp1254", "latin-1"):
    for _byte in range(0x80, 0x100):
        try:
            _char = bytes([_byte]).decode(_encoding)
        except UnicodeDecodeError:
            continue
        _REVERSE.setdefault(_char, _byte)
_MOJIBAKE_RUN = re.compile("[" + re.escape("".join(sorted(_REVERSE))) + "]{2,}")


def _utf8_length(lead: int) -> int:
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 0


def _repair_run(run: str) -> str:
    data = bytes(_REVERSE[ch] for ch in run)
    out: list[str] = []
    index = 0
    while index < len(data):
        size = _utf8_length(data[index])
        if size and index + size <= len(data):
            try:
                out.append(data[index : index + size].decode("utf-8"))
                index += size
                continue
            except UnicodeDecodeError:
                pass
        out.append(run[index])
        index += 1
    return "".join(out)


def repair_encoding(text: str) -> tuple[str, int]:
    """Undo UTF-8 that was decoded as Windows-1252/1254 or Latin-1 (`â”œâ”€â”€` → `├──`).

    Only runs of such characters that form valid UTF-8 sequences are changed, so genuine
    accented text (`Café`) stays as it is. Returns the text and the number of runs repaired.
    """
    count = 0

    def fix(match: re.Match[str]) -> str:
        nonlocal count
        fixed = _repair_run(match.group(0))
        if fixed != match.group(0):
            count += 1
        return fixed

    return _MOJIBAKE_RUN.sub(fix, text), count


# --- lines of a tree ------------------------------------------------------------------------

_GLYPHS = "│├└─┃┣┗━┠┖┝┕╠╚═║"
_PREFIX_CHARS = set(" \t|`+\\-*•" + _GLYPHS)
_CONNECTOR_RE = re.compile(r"[├└┣┗┠┖┝┕╠╚]|\|--|\|__|`--|\+--|\\--|\|-(?=\s)|(?<!\S)[-*•](?=\s)")
_DRAWN_RE = re.compile(r"[├└│┣┗┃┠┖┝┕╠╚║]|\|--|\|__|`--|\+--")
# Windows `tree /F /A` draws folders with +--- and \--- and lists files indented by `|   ` and spaces
_WINDOWS_CONNECTOR_RE = re.compile(r"(?:^|[|\s])(?:\+---|\\---)\S")
_PIPED_RE = re.compile(r"^(?:[|│┃║] {3}| {4})*[|│┃║] {3}")
# icons drawn before names (📁 app/, 📄 main.py, ⚙️ config.py): pictographs, dingbats, variation selectors
_ICON_RE = re.compile("^(?:[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\ufe0f\u200d]+\\s*)+")
_BULLET_LINE_RE = re.compile(r"^\s*[-*]\s+\S")
_LAST_FOLDER_RE = re.compile(r"^(?:[|│┃║] {3}| {4})*\\---[\w.]")
_NAME_RE = re.compile(r"^[\w.@{}<>$~=+,\[\]\-]+(?:/[\w.@{}<>$~=+,\[\]\-]+)*/?$")
_MARKER_RE = re.compile(r"^[(\[]\s*(new|existing|enhanced|modified|updated|unchanged)\b([^)\]]*)[)\]]", re.IGNORECASE)
_COMMENT_SEPARATORS = ("#", "//", "<--", "<-", "←", "-", "–", "—", ":", "=>", "->")
_DRIVE_RE = re.compile(r"^[A-Za-z]:[\\/]")
_PLACEHOLDER_RE = re.compile(r"\{[^{}]*\}|<[^<>]+>")
_ELLIPSIS = {"...", "…", "..", "etc", "etc."}
_TREE_SUMMARY_RE = re.compile(r"^\d+ director(?:y|ies)(?:, \d+ files?)?$")
_FENCE_RE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
_HEADING_RE = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_TREE_LANGUAGES = {"", "text", "txt", "tree", "plain", "plaintext", "markdown", "md", "none", "bash", "sh", "console"}
_INDENT_LANGUAGES = {"", "text", "txt", "tree", "plain", "plaintext", "none"}
_KNOWN_FILES = {
    "dockerfile",
    "makefile",
    "procfile",
    "license",
    "licence",
    "readme",
    "changelog",
    "authors",
    "notice",
    "gemfile",
    "jenkinsfile",
    "vagrantfile",
    "caddyfile",
    "pipfile",
    "brewfile",
    "codeowners",
}


@dataclass
class _Item:
    line: int
    key: int  # the connector's column, or the indent when the line has none
    has_connector: bool
    name_col: int
    name: str
    comment: str
    marker: str
    bare: bool = False
    parent: int | None = None
    children: int = 0
    piped: bool = False  # indented by a tree's vertical bars only (`|   |   name`: Windows `tree /F /A` files)


@dataclass
class _Block:
    start: int  # 1-based line number of the first line
    lines: list[str]
    fenced: bool
    language: str = ""
    indented: bool = False  # a bare run of indented names (no fence, no connectors)
    flat: bool = False  # a bare run of paths, one a line (`find` output)
    windows: bool = False  # drawn with Windows `tree /F /A` connectors (+---, \\---)


def _split_rest(rest: str) -> tuple[str, str, bool]:
    """(marker, comment, bare) from what follows an entry's name; bare: words without a separator."""
    rest = rest.strip()
    marker = ""
    comment = ""
    while rest:
        found = _MARKER_RE.match(rest)
        if found:
            marker = marker or found.group(1).lower()
            note = found.group(2).strip()
            note = note[1:].strip() if note[:1] in {"-", "–", "—", ":", ","} else ""
            if note and not comment:
                comment = note
            rest = rest[found.end() :].strip()
            continue
        for separator in _COMMENT_SEPARATORS:
            if rest.startswith(separator):
                text = rest[len(separator) :].strip()
                found = re.search(r"\s[(\[]\s*(new|existing|enhanced)\b[^)\]]*[)\]]\s*$", text, re.IGNORECASE)
                if found:
                    marker = marker or found.group(1).lower()
                    text = text[: found.start()].strip()
                return marker, text or comment, False
        if rest.startswith("(") and rest.endswith(")"):
            return marker, rest[1:-1].strip(), False
        return marker, rest, True
    return marker, comment, False


def _parse_line(raw: str, number: int) -> _Item | str | None:
    """An `_Item`, or a reason the line is not an entry, or None for lines to skip silently."""
    line = raw.expandtabs(4).rstrip()
    if not line.strip():
        return None
    index = 0
    while index < len(line) and line[index] in _PREFIX_CHARS:
        index += 1
    marks = {mark for mark in "`*" if mark in line[index:]}
    for _ in range(2):  # the opening of `name` or **name** is not part of the drawing
        if index > 0 and line[index - 1] in marks:
            index -= 1
    prefix, body = line[:index], line[index:]
    # a prefix may swallow the dash of a name like "-x"; names never start with a glyph anyway
    if not body:
        return None  # a line of │ only: the drawing's spacing
    connectors = list(_CONNECTOR_RE.finditer(prefix))
    has_connector = bool(connectors)
    key = connectors[-1].start() if connectors else index
    if _DRIVE_RE.match(body):
        return _Item(number, key, has_connector, index, body.strip(), "", "")
    if body.startswith(("/", "~/")):
        # an absolute path: the tree's root when it is the first line, else an error when built
        return _Item(number, key, has_connector, index, body.split()[0].split("#")[0], "", "")
    body = _ICON_RE.sub("", body.replace("**", "").replace("`", ""))  # 📁 app/, 📄 main.py
    if not body:
        return None
    match = re.match(r"([^\s#]+)(.*)$", body)
    if match is None:
        return "unreadable"
    name, rest = match.group(1), match.group(2)
    if name.endswith(":") and len(name) > 1:
        name = name[:-1]
    if name.endswith(("*", "=", "|")) and len(name) > 1 and name[-2] not in "*=|":
        name = name[:-1]  # `tree -F` / `ls -F` type marks: executable, socket, FIFO
    if name.rstrip("/") in _ELLIPSIS or name.startswith("...") or name.startswith("…"):
        return None
    if _TREE_SUMMARY_RE.match(body.strip()):
        return None
    if not _NAME_RE.match(name.replace("\\", "/")) or (name.count(".") == len(name.rstrip("/")) and name != "."):
        return "not a file or folder name"
    marker, comment, bare = _split_rest(rest)
    piped = not has_connector and bool(_PIPED_RE.match(prefix))
    return _Item(number, key, has_connector, index, name, comment, marker, bare=bare, piped=piped)


def _blocks(lines: list[str]) -> list[_Block]:
    """Fenced code blocks, and runs of bare lines drawn with tree connectors."""
    blocks: list[_Block] = []
    index = 0
    bare: _Block | None = None
    while index < len(lines):
        line = lines[index]
        fence = _FENCE_RE.match(line)
        if fence:
            bare = None
            marker = fence.group(1)
            start = index + 1
            index += 1
            body: list[str] = []
            while index < len(lines) and not lines[index].strip().startswith(marker[:3]):
                body.append(lines[index])
                index += 1
            blocks.append(_Block(start + 1, body, True, fence.group(2).lower()))
            index += 1
            continue
        drawn = line.split("#", 1)[0]
        if _DRAWN_RE.search(drawn) or _windows_line(lines, index, bare):
            if bare is None:
                first = index
                # a root line right above the drawing ("backend/", ".", "D:\\x\\backend")
                if index > 0 and lines[index - 1].strip() and not _HEADING_RE.match(lines[index - 1]):
                    candidate = _parse_line(lines[index - 1], index)
                    if isinstance(candidate, _Item) and candidate.name_col == 0:
                        first = index - 1
                bare = _Block(first + 1, lines[first:index], False)
                blocks.append(bare)
            bare.lines.append(line)
            bare.windows = bare.windows or bool(_WINDOWS_CONNECTOR_RE.search(line))
        elif bare is not None and not line.strip():
            bare.lines.append(line)
        else:
            bare = None
        index += 1
    taken: set[int] = set()
    for block in blocks:
        first = block.start - 2 if block.fenced else block.start - 1  # the fence line itself too
        taken.update(range(first, block.start - 1 + len(block.lines) + 1))
    indented = _indented_runs(lines, taken)
    for block in indented:
        taken.update(range(block.start - 1, block.start - 1 + len(block.lines)))
    return blocks + indented + _bullet_runs(lines, taken) + _flat_runs(lines, taken)


def _pathlike(items: list[_Item]) -> int:
    """How many items look like paths: a suffix, a slash, a known file name, or a folder that holds
    the next, deeper item."""
    return sum(
        1
        for index, item in enumerate(items)
        if re.search(r"/$|\.\w+$", item.name)
        or item.name.lower() in _KNOWN_FILES
        or (index + 1 < len(items) and items[index + 1].key > item.key)
    )


def _runs(lines: list[str], taken: set[int], keep: Any) -> list[list[int]]:
    """Runs of consecutive lines outside `taken` for which `keep(line)` holds (a blank line inside
    continues a run when the next line is kept too)."""
    runs: list[list[int]] = []
    run: list[int] = []
    for index, line in enumerate(lines):
        if index in taken:
            run = []
            continue
        if not line.strip():
            following = index + 1 < len(lines) and index + 1 not in taken and keep(lines[index + 1])
            if run and not following:
                run = []
            continue
        if keep(line):
            if not run:
                runs.append(run)
            run.append(index)
        else:
            run = []
    return runs


def _bullet_runs(lines: list[str], taken: set[int]) -> list[_Block]:
    """A nested Markdown list of files and folders (`- app/` / `  - main.py — entry`) outside code
    blocks: nested, and most of its items look like paths, so a list of features is not a tree."""
    blocks = []
    for run in _runs(lines, taken, lambda line: bool(_BULLET_LINE_RE.match(line))):
        items = [item for index in run if isinstance(item := _parse_line(lines[index], index + 1), _Item)]
        if (
            len(items) >= 3
            and any(item.key > items[0].key for item in items)
            and any(
                item.name.endswith("/") or (i + 1 < len(items) and items[i + 1].key > item.key)
                for i, item in enumerate(items)
            )
            and _pathlike(items) >= 0.8 * len(run)
            and sum(1 for item in items if not item.bare) >= 0.7 * len(run)
        ):
            blocks.append(_Block(run[0] + 1, lines[run[0] : run[-1] + 1], False))
    return blocks


def _flat_runs(lines: list[str], taken: set[int]) -> list[_Block]:
    """A flat list of paths, one a line (`find . -type f` output: ./app/main.py) outside code blocks."""
    blocks = []

    def keep(line: str) -> bool:
        item = _parse_line(line, 0)
        return isinstance(item, _Item) and not item.has_connector and not item.bare and _indent(line) == 0

    for run in _runs(lines, taken, keep):
        items = [item for index in run if isinstance(item := _parse_line(lines[index], index + 1), _Item)]
        if _is_flat(items):
            blocks.append(_Block(run[0] + 1, lines[run[0] : run[-1] + 1], False, flat=True))
    return blocks


def _is_flat(items: list[_Item]) -> bool:
    """Paths at one level, most of them with a folder (`app/main.py`): a tree written as paths."""
    return (
        len(items) >= 3
        and all(not item.has_connector and not item.bare and item.key == items[0].key for item in items)
        and sum(1 for item in items if "/" in item.name.rstrip("/")) >= 0.8 * len(items)
    )


def _windows_line(lines: list[str], index: int, bare: _Block | None) -> bool:
    """A line of a Windows `tree /F /A` drawing without a connector: a file indented by `|   `
    (or by spaces below the last folder), or a `|` spacing line, where the drawing has +--- / \\---
    connectors (in the block so far, or within the next lines when it starts with the root's files)."""
    line = lines[index]
    if _LAST_FOLDER_RE.match(line):
        return True
    if not line.strip() or not (_PIPED_RE.match(line) or line.strip() == "|" or (bare is not None and line[:1] == " ")):
        return False
    if bare is not None and bare.windows:
        return True
    return any(_WINDOWS_CONNECTOR_RE.search(text) for text in lines[index + 1 : index + 40])


def _indent(line: str) -> int:
    expanded = line.expandtabs(4)
    return len(expanded) - len(expanded.lstrip(" "))


def _is_label(line: str, item: _Item) -> bool:
    """A line that introduces a tree ("Structure:", "Project layout") or prose, not an entry."""
    text = line.strip()
    return item.bare or (text.endswith(":") and not re.search(r"[/.]", text[:-1]))


def _indented_runs(lines: list[str], taken: set[int]) -> list[_Block]:
    """Bare indentation trees: runs of lines outside code blocks and drawings, each a name (with a
    separated comment at most) and no list bullet; blank lines inside continue a run only when the
    next line is indented. Whether a run is a tree is `_is_tree`'s decision."""
    blocks: list[_Block] = []
    run: list[int] = []

    def close() -> None:
        items = {index: _parse_line(lines[index], index + 1) for index in run}
        while run and (
            not lines[run[0]].strip() or not isinstance(items[run[0]], _Item) or _is_label(lines[run[0]], items[run[0]])  # type: ignore[arg-type]
        ):
            run.pop(0)
        while run and not lines[run[-1]].strip():
            run.pop()
        if len(run) >= 3 and any(_indent(lines[index]) > _indent(lines[run[0]]) for index in run):
            blocks.append(_Block(run[0] + 1, [lines[index] for index in run], False, indented=True))
        run.clear()

    for index, line in enumerate(lines):
        if index in taken or _HEADING_RE.match(line) or _FENCE_RE.match(line):
            close()
            continue
        if not line.strip():
            following = next((j for j in range(index + 1, min(len(lines), index + 3)) if lines[j].strip()), None)
            if run and following is not None and following not in taken and _indent(lines[following]) > 0:
                run.append(index)
            else:
                close()
            continue
        parsed = _parse_line(line, index + 1)
        if isinstance(parsed, _Item) and not parsed.has_connector:
            run.append(index)
        else:
            close()
    close()
    return blocks


def _tree_items(block: _Block) -> tuple[list[_Item], list[tuple[int, str]]]:
    items: list[_Item] = []
    problems: list[tuple[int, str]] = []
    for offset, raw in enumerate(block.lines):
        parsed = _parse_line(raw, block.start + offset)
        if parsed is None:
            continue
        if isinstance(parsed, str):
            problems.append((block.start + offset, parsed))
        else:
            items.append(parsed)
    return items, problems


def _is_tree(block: _Block, items: list[_Item], problems: list[tuple[int, str]]) -> bool:
    if len(items) < 2:
        return False
    if (block.flat or block.fenced) and not problems and _is_flat(items):
        return True
    connected = sum(1 for item in items if item.has_connector)
    drawn = connected + sum(1 for item in items if item.piped)
    if connected >= 2 and drawn >= max(2, len(items) // 2):
        return len(items) >= 2 * len(problems)
    if not block.indented and (not block.fenced or block.language not in _INDENT_LANGUAGES):
        return False
    # an indentation tree: names (with marked comments at most), some nesting or folders
    plain = [item for item in items if not item.bare]
    nested = any(item.key > items[0].key for item in items) or any(item.name.endswith("/") for item in items)
    if block.indented:
        # outside a code block, most names must look like paths: a suffix, a slash, a known file name,
        # or a folder that holds the next, deeper line
        pathlike = sum(
            1
            for index, item in enumerate(items)
            if re.search(r"/$|\.\w+$", item.name)
            or item.name.lower() in _KNOWN_FILES
            or (index + 1 < len(items) and items[index + 1].key > item.key)
        )
        if problems or pathlike < 0.8 * len(items) or min(item.key for item in items) != items[0].key:
            return False
    return nested and len(plain) >= 0.7 * (len(items) + len(problems))


# --- building the entries --------------------------------------------------------------------


def _nest(items: list[_Item]) -> None:
    stack: list[int] = []
    for index, item in enumerate(items):
        while stack:
            top = items[stack[-1]]
            if item.has_connector:
                if top.name_col <= item.key:
                    break
            elif top.name_col < item.key:
                break
            stack.pop()
        if stack:
            item.parent = stack[-1]
            items[stack[-1]].children += 1
        stack.append(index)


def _is_absolute(name: str) -> bool:
    return bool(_DRIVE_RE.match(name)) or name.startswith(("/", "~/", "\\"))


def _root_name(name: str) -> str:
    parts = [part for part in re.split(r"[\\/]+", name.strip()) if part and part not in {".", "~"}]
    if parts and re.match(r"^[A-Za-z]:$", parts[0]):
        parts = parts[1:]
    return parts[-1] if parts else ""


def _guess_kind(name: str, has_children: bool) -> str:
    if has_children or name.endswith("/"):
        return "dir"
    base = name.rsplit("/", 1)[-1]
    if base.startswith(".") or "." in base.strip(".") or base.lower() in _KNOWN_FILES:
        return "file"
    if base.isupper() and len(base) > 2:
        return "file"
    return "dir"


class _Collector:
    """Entries by path, with the conflict and cap rules."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.entries: dict[str, Entry] = {}
        self.folded: dict[str, str] = {}
        self.warnings: list[Warning] = []

    def add(self, path: str, kind: str, line: int, *, comment: str = "", marker: str = "") -> Entry | None:
        segments = path.split("/")
        if len(segments) > self.limits.max_depth:
            raise BlueprintTooLarge(
                f"'{path[:200]}' is {len(segments)} levels deep; blueprints allow {self.limits.max_depth}.",
                line=line,
                extra={"limit": self.limits.max_depth},
            )
        for depth in range(1, len(segments)):
            parent = "/".join(segments[:depth])
            existing = self.entries.get(parent)
            if existing is None:
                self._put(Entry(parent, "dir", line, implied=True), line)
            elif existing.kind == "file":
                self.warnings.append(
                    Warning(
                        line,
                        "conflicting_entries",
                        f"'{parent}' is listed as a file and as a folder; kept as a folder.",
                    )
                )
                existing.kind = "dir"
        existing = self.entries.get(path)
        if existing is None:
            folded = self.folded.get(path.casefold())
            if folded is not None:
                self.warnings.append(
                    Warning(
                        line,
                        "conflicting_entries",
                        f"'{path}' differs from '{folded}' (line {self.entries[folded].line}) only in letter case; "
                        "kept the first.",
                    )
                )
                return None
            entry = Entry(path, kind, line, comment=comment, marker=marker)
            self._put(entry, line)
            return entry
        if existing.implied:
            existing.implied = False
            existing.line = line
            existing.comment = existing.comment or comment
            existing.marker = existing.marker or marker
            if kind == "file":
                self.warnings.append(
                    Warning(
                        line, "conflicting_entries", f"'{path}' is listed as a file and as a folder; kept as a folder."
                    )
                )
            return existing
        if existing.kind != kind:
            self.warnings.append(
                Warning(
                    line,
                    "conflicting_entries",
                    f"'{path}' is listed as a {kind} here and as a {existing.kind} on line {existing.line}; "
                    f"kept the {existing.kind}.",
                )
            )
        elif comment and existing.comment and comment != existing.comment:
            self.warnings.append(
                Warning(
                    line,
                    "conflicting_entries",
                    f"'{path}' is listed twice with different descriptions (see line {existing.line}); kept both.",
                )
            )
            existing.prose.append(comment)
        else:
            existing.comment = existing.comment or comment
        existing.marker = existing.marker or marker
        return existing

    def _put(self, entry: Entry, line: int) -> None:
        if len(self.entries) >= self.limits.max_entries:
            raise BlueprintTooLarge(
                f"The tree has more than {self.limits.max_entries} files and folders.",
                line=line,
                extra={"limit": self.limits.max_entries},
            )
        self.entries[entry.path] = entry
        self.folded[entry.path.casefold()] = entry.path


def _clean_segments(name: str, line: int) -> list[str]:
    if _is_absolute(name):
        raise BlueprintInvalid(
            f"'{name[:200]}' is an absolute path; entries must be relative to the project.",
            line=line,
            extra={"path": name[:200], "reason": "absolute"},
        )
    text = name.replace("\\", "/").rstrip("/")
    while text.startswith("./"):
        text = text[2:]
    segments = [segment for segment in text.split("/") if segment != "."]
    for segment in segments:
        if segment == "..":
            raise BlueprintInvalid(
                f"'{name[:200]}' leaves the project folder ('..').",
                line=line,
                extra={"path": name[:200], "reason": "traversal"},
            )
        if segment.casefold() == ".git":
            raise BlueprintInvalid(
                f"'{name[:200]}' is inside '.git/', which Kiln never writes.",
                line=line,
                extra={"path": name[:200], "reason": "reserved"},
            )
    return segments


def _build(items: list[_Item], collector: _Collector) -> str:
    """Turn nested items into entries; returns the root folder's name ('' when none)."""
    _nest(items)
    tops = [index for index, item in enumerate(items) if item.parent is None]
    root_index: int | None = None
    root = ""
    if len(tops) == 1 and items[tops[0]].children:
        top = items[tops[0]]
        if top.name.endswith("/") or top.name == "." or _is_absolute(top.name) or "." not in top.name:
            root_index = tops[0]
            root = _root_name(top.name)
    for index, item in enumerate(items):
        if index != root_index and _is_absolute(item.name):
            _clean_segments(item.name, item.line)
    paths: dict[int, str | None] = {}
    for index, item in enumerate(items):
        if index == root_index:
            paths[index] = ""
            continue
        parent_path = paths.get(item.parent) if item.parent is not None else ""
        if parent_path is None:
            paths[index] = None  # below an example placeholder
            continue
        if _PLACEHOLDER_RE.search(item.name):
            paths[index] = None
            collector.warnings.append(
                Warning(
                    item.line,
                    "example_skipped",
                    f"'{item.name}' is a placeholder (an example of what will exist), not a path to create; "
                    "it and everything below it were skipped.",
                )
            )
            continue
        segments = _clean_segments(item.name, item.line)
        if not segments:
            paths[index] = parent_path
            continue
        path = "/".join([parent_path, *segments] if parent_path else segments)
        try:
            clean_relative_path(path)
        except UnsafePath as exc:
            raise BlueprintInvalid(
                f"'{item.name[:200]}' is not a usable path: {exc.message}", line=item.line, extra=dict(exc.extra)
            ) from None
        kind = _guess_kind(item.name, item.children > 0)
        collector.add(path, kind, item.line, comment=item.comment, marker=item.marker)
        paths[index] = path
    return root


# --- prose -----------------------------------------------------------------------------------

_PATH_TOKEN_RE = re.compile(
    r"`([^`\n]{1,200})`|(?<![\w/.-])((?:[\w.-]+/)+(?:[\w.-]+)?|[\w-]+\.(?:py|txt|md|ini|cfg|toml|ya?ml|json|sh|env|mako|"
    r"lock|db|key|html|css|js|ts))(?![\w/])"
)
_BULLET_RE = re.compile(r"^\s*(?:[-*+]|\d+\.)\s+(?:\*\*|`)+([^*`]{1,200}?)(?:\*\*|`)+\s*[:\-–—]?\s*(.*)$")
_EMPHASIS_RE = re.compile(r"\*\*|__|`")
_FILLER = re.compile(r"^(?:file|folder|directory|dir|module)\s*\d*\s*[:.-]\s*", re.IGNORECASE)


@dataclass
class _Section:
    level: int
    heading: str
    line: int
    body: list[tuple[int, str]]


def _sections(lines: list[str], skip: set[int]) -> list[_Section]:
    sections: list[_Section] = []
    in_fence = ""
    current: _Section | None = None
    for number, line in enumerate(lines, start=1):
        fence = _FENCE_RE.match(line)
        if fence:
            in_fence = "" if in_fence else fence.group(1)[:3]
            continue
        if in_fence or number in skip:
            continue
        heading = _HEADING_RE.match(line)
        if heading:
            current = _Section(len(heading.group(1)), heading.group(2).strip(), number, [])
            sections.append(current)
        elif current is not None:
            current.body.append((number, line))
        elif line.strip():
            current = _Section(0, "", number, [(number, line)])
            sections.append(current)
    return sections


def _path_tokens(text: str) -> list[str]:
    tokens = []
    for match in _PATH_TOKEN_RE.finditer(text):
        token = (match.group(1) or match.group(2) or "").strip()
        token = _FILLER.sub("", token).strip()
        if not token or " " in token or token.startswith(("http", "-")) or not re.search(r"[/.]", token):
            continue
        if _PLACEHOLDER_RE.search(token) or _is_absolute(token) or ".." in token.split("/"):
            continue
        tokens.append(token)
    return tokens


def _plain(text: str) -> str:
    text = _EMPHASIS_RE.sub("", text)
    return re.sub(r"\s+", " ", text).strip()


def _section_text(body: list[tuple[int, str]]) -> str:
    paragraphs: list[str] = []
    current: list[str] = []
    for _, line in body:
        stripped = line.strip()
        if not stripped or stripped in {"---", "***"}:
            if current:
                paragraphs.append(" ".join(current))
                current = []
            continue
        if stripped[:2] in {"- ", "* ", "+ "}:
            if current:
                paragraphs.append(" ".join(current))
                current = []
            paragraphs.append("- " + _plain(stripped[2:]))
            continue
        current.append(_plain(stripped))
    if current:
        paragraphs.append(" ".join(current))
    text = "\n".join(paragraph for paragraph in paragraphs if paragraph)
    return text[:2000]


class _Resolver:
    def __init__(self, entries: dict[str, Entry], root: str) -> None:
        self.entries = entries
        self.root = root

    def __call__(self, token: str, base: str = "") -> Entry | None:
        token = token.strip().lstrip("./") if token.startswith("./") else token.strip()
        token = token.rstrip("/")
        if not token:
            return None
        if token in self.entries and not base:  # `app/app/` layouts: the package, not the root's name
            return self.entries[token]
        if self.root and token.startswith(self.root + "/"):
            token = token[len(self.root) + 1 :]
        for candidate in ([f"{base}/{token}"] if base else []) + [token]:
            if candidate in self.entries:
                return self.entries[candidate]
        suffix = [entry for path, entry in self.entries.items() if path.endswith("/" + token)]
        if len(suffix) == 1:
            return suffix[0]
        if base:
            below = [entry for entry in suffix if entry.path.startswith(base + "/")]
            if len(below) == 1:
                return below[0]
        return None


def _attach_prose(sections: list[_Section], collector: _Collector, root: str) -> None:
    resolve = _Resolver(collector.entries, root)
    context: list[tuple[int, str]] = []  # (level, dir path) of headings naming a folder
    for section in sections:
        while context and context[-1][0] >= section.level:
            context.pop()
        base = context[-1][1] if context else ""
        target: Entry | None = None
        for token in _path_tokens(section.heading):
            target = resolve(token, base) or resolve(token)
            if target is not None:
                break
        if target is not None:
            text = _section_text(section.body)
            if text:
                target.prose.append(text)
            if target.kind == "dir":
                context.append((section.level, target.path))
        scope = target.path if target is not None and target.kind == "dir" else base
        for _, line in section.body:
            bullet = _BULLET_RE.match(line)
            if not bullet:
                continue
            item = resolve(bullet.group(1), scope) if scope else None
            item = item or resolve(bullet.group(1))
            text = _plain(bullet.group(2))
            if item is not None and text and text not in item.prose:
                item.prose.append(text)


def _tree_from_headings(sections: list[_Section], collector: _Collector) -> None:
    """No drawn tree: the headings (and inline paths below them) that name files and folders."""
    for section in sections:
        tokens = _path_tokens(section.heading)
        if not tokens:
            continue
        for token in tokens[:1]:
            segments = _clean_segments(token, section.line)
            if segments:
                kind = "dir" if token.endswith("/") else _guess_kind(token, False)
                collector.add("/".join(segments), kind, section.line)
        for number, line in section.body:
            for token in _path_tokens(line):
                parent = token.rstrip("/").rsplit("/", 1)[0] if "/" in token.rstrip("/") else ""
                if parent and parent in collector.entries and collector.entries[parent].kind == "dir":
                    segments = _clean_segments(token, number)
                    collector.add("/".join(segments), _guess_kind(token, False), number)


# --- the document ----------------------------------------------------------------------------

_GENERIC_TITLE_WORDS = {
    "backend",
    "frontend",
    "directory",
    "file",
    "folder",
    "structure",
    "project",
    "organization",
    "organisation",
    "layout",
    "tree",
    "the",
    "of",
    "and",
    "-",
    "overview",
    "architecture",
    "service",
}


def _check_size(text: str, limits: Limits) -> list[str]:
    if len(text) > limits.max_chars:
        at = text.count("\n", 0, limits.max_chars) + 1
        raise BlueprintTooLarge(
            f"The document is longer than {limits.max_chars} characters.",
            line=at,
            extra={"limit": limits.max_chars},
        )
    if "\x00" in text:
        raise BlueprintInvalid(
            "The document contains a NUL character.", line=text.count("\n", 0, text.index("\x00")) + 1
        )
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if len(lines) > limits.max_lines:
        raise BlueprintTooLarge(
            f"The document has more than {limits.max_lines} lines.",
            line=limits.max_lines + 1,
            extra={"limit": limits.max_lines},
        )
    for number, line in enumerate(lines, start=1):
        if len(line) > limits.max_line_chars:
            raise BlueprintTooLarge(
                f"The line is longer than {limits.max_line_chars} characters.",
                line=number,
                extra={"limit": limits.max_line_chars},
            )
    return lines


def _strip_front_matter(lines: list[str]) -> set[int]:
    if not lines or lines[0].strip() != "---":
        return set()
    for index in range(1, min(len(lines), 60)):
        if lines[index].strip() == "---":
            return set(range(1, index + 2))
    return set()


def parse_document(text: str, *, limits: Limits | None = None) -> Blueprint:
    """Parse a structure document; raises `BlueprintInvalid`/`BlueprintTooLarge` (400s)."""
    limits = limits or Limits()
    if not isinstance(text, str) or not text.strip():
        raise BlueprintInvalid("The document is empty.", extra={"hint": NO_TREE_HINT})
    _check_size(text, limits)
    text = text.lstrip("\ufeff")
    text, repaired = repair_encoding(text)
    lines = _check_size(text, limits)
    front = _strip_front_matter(lines)
    collector = _Collector(limits)
    warnings: list[Warning] = []
    if repaired:
        warnings.append(
            Warning(0, "encoding_repaired", f"Repaired {repaired} runs of UTF-8 text that had been decoded twice.")
        )
    candidates = []
    for block in _blocks(lines):
        items, problems = _tree_items(block)
        if _is_tree(block, items, problems):
            candidates.append((len(items), block, items, problems))
    root = ""
    tree_lines: set[int] = set()
    if candidates:
        candidates.sort(key=lambda candidate: -candidate[0])
        _, block, items, problems = candidates[0]
        for _, other, _, _ in candidates[1:]:
            warnings.append(
                Warning(other.start, "tree_ignored", "Another tree here was ignored; the largest tree is used.")
            )
        for number, reason in problems:
            warnings.append(Warning(number, "line_not_understood", f"Not understood as a tree entry ({reason})."))
        root = _build(items, collector)
        tree_lines = set(range(block.start, block.start + len(block.lines)))
    sections = _sections(lines, front | tree_lines)
    if not candidates:
        _tree_from_headings(sections, collector)
        if not collector.entries:
            raise BlueprintInvalid(
                "The document has no directory tree and no headings that name files or folders.",
                extra={"hint": NO_TREE_HINT},
            )
    _attach_prose(sections, collector, root)
    warnings.extend(collector.warnings)
    entries = sorted(collector.entries.values(), key=lambda entry: entry.path)
    title = next((section.heading for section in sections if section.level == 1), "")
    title = _plain(re.sub(r"[^\w\s./-]", " ", title)).strip()
    stack = detect_stack(lines, [entry.path for entry in entries], entries)
    for entry in entries:
        entry.role = assign_role(entry, entries, stack)
    intro = "\n\n".join(
        _section_text(section.body) for section in sections[:2] if section.level <= 2 and _section_text(section.body)
    )
    return Blueprint(
        title=title,
        root=root,
        entries=entries,
        stack=stack,
        warnings=sorted(warnings, key=lambda warning: warning.line),
        intro=intro,
        sections=[(section.heading, _section_text(section.body)) for section in sections if section.heading],
        repaired_encoding=bool(repaired),
    )


def default_project_name(blueprint: Blueprint) -> str:
    """A project name for the parameters' default: the tree's root or the title's distinctive words."""
    root = re.sub(r"[^a-z0-9]+", "-", blueprint.root.lower()).strip("-")
    if root and root not in _GENERIC_TITLE_WORDS and root not in {"src", "app"}:
        return root
    words = [word for word in re.split(r"[\s_]+", blueprint.title.lower()) if word]
    distinctive = [word for word in words if word not in _GENERIC_TITLE_WORDS and re.match(r"^[a-z0-9-]+$", word)]
    if distinctive:
        return "-".join(distinctive[:3])[:60]
    return root or "service"
