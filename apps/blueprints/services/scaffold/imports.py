"""Orders the import blocks of generated modules the way ruff's isort rule (I001) expects.

Sections (standard library, third party, the project's own packages) separated by one blank
line; `import x` before `from x import y` within a section; modules compared without case;
imported names ordered constants, classes, then the rest. Only the single-line imports the
scaffold writes are handled; a block with anything else is left as it is.
"""

from __future__ import annotations

import re
import sys

_IMPORT = re.compile(r"^(\s*)(import|from)\s+([\w.]+)(?:\s+as\s+(\w+))?(?:\s+import\s+(.+?))?(\s+#.*)?$")
_STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def _section(module: str, first_party: set[str]) -> int:
    top = module.split(".")[0]
    if top == "__future__":
        return 0
    if top in _STDLIB:
        return 1
    if module in first_party:
        return 3
    return 2


def _member_key(name: str) -> tuple[int, str]:
    base = name.split(" as ")[0]
    if base.isupper() and len(base) > 1:
        kind = 0
    elif base[:1].isupper():
        kind = 1
    else:
        kind = 2
    return kind, base.lower()


def _render(block: list[re.Match[str]], indent: str, first_party: set[str]) -> list[str]:
    plain: dict[int, set[tuple[str, str]]] = {}
    froms: dict[int, dict[str, tuple[set[str], str]]] = {}
    for match in block:
        kind, module, alias, names = match.group(2), match.group(3), match.group(4), match.group(5)
        comment = match.group(6) or ""
        section = _section(module, first_party)
        if kind == "import":
            plain.setdefault(section, set()).add((module + (f" as {alias}" if alias else ""), comment.strip()))
        else:
            members, old_comment = froms.setdefault(section, {}).get(module, (set(), ""))
            members.update(part.strip() for part in (names or "").split(","))
            froms[section][module] = (members, old_comment or comment.strip())
    lines: list[str] = []
    for section in sorted(set(plain) | set(froms)):
        if lines:
            lines.append("")
        for module, comment in sorted(plain.get(section, set()), key=lambda item: (item[0].lower(), item[0])):
            lines.append(f"{indent}import {module}" + (f"  {comment}" if comment else ""))
        for module, (members, comment) in sorted(froms.get(section, {}).items(), key=lambda item: item[0].lower()):
            ordered = sorted(members, key=_member_key)
            line = f"{indent}from {module} import {', '.join(ordered)}" + (f"  {comment}" if comment else "")
            if len(line) > 88 and not comment:
                line = (
                    f"{indent}from {module} import (\n" + "".join(f"{indent}    {m},\n" for m in ordered) + f"{indent})"
                )
            lines.append(line)
    return lines


def sort_imports(text: str, first_party: set[str]) -> str:
    """`first_party`: the dotted names of the project's modules and packages (as ruff resolves them)."""
    lines = text.split("\n")
    out: list[str] = []
    index = 0
    in_string = False
    while index < len(lines):
        line = lines[index]
        if line.count('"""') % 2 == 1:
            in_string = not in_string
        match = None if in_string else _IMPORT.match(line)
        if match is None or "(" in line:
            out.append(line)
            index += 1
            continue
        indent = match.group(1)
        block = [match]
        end = index + 1
        while end < len(lines):
            candidate = lines[end]
            if not candidate.strip():
                nxt = end + 1
                while nxt < len(lines) and not lines[nxt].strip():
                    nxt += 1
                following = _IMPORT.match(lines[nxt]) if nxt < len(lines) else None
                if following is not None and following.group(1) == indent:
                    end = nxt
                    continue
                break
            found = _IMPORT.match(candidate)
            if found is None or found.group(1) != indent:
                break
            block.append(found)
            end += 1
        out.extend(_render(block, indent, first_party))
        index = end
        if not indent:
            # the blank lines after a top-level block: two before a definition, else one
            while index < len(lines) and not lines[index].strip():
                index += 1
            if index < len(lines):
                definition = lines[index].startswith(("def ", "class ", "@", "async def "))
                out.extend([""] * (2 if definition else 1))
    return "\n".join(out)
