"""Names the scaffold derives from paths and descriptions: modules, classes, tables, routes."""

from __future__ import annotations

import keyword
import re
from contextvars import ContextVar

# the folder that holds the project's packages (`src` in the src layout): module names start below it
SOURCE_ROOT: ContextVar[str] = ContextVar("blueprint_source_root", default="")

STOP_CLASSES = {
    "FastAPI",
    "SQLAlchemy",
    "PyTest",
    "PostgreSQL",
    "MySQL",
    "SQLite",
    "WebSocket",
    "WebSockets",
    "GitHub",
    "GitLab",
    "JavaScript",
    "TypeScript",
    "OpenAPI",
    "APScheduler",
    "NoSQL",
    "MongoDB",
    "GraphQL",
    "ViewSet",
    "ViewSets",
    "DevOps",
    "README",
    "CRUD",
    "API",
    "JWT",
    "LLM",
    "FAISS",
    "HTTP",
    "REST",
}
_CAMEL = re.compile(r"\b([A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*)\b")
# "User model", "Item, Location and StockLevel models", "Order & Invoice tables"
_MODEL_WORD = re.compile(
    r"\b((?:[A-Z][A-Za-z0-9]*\s*(?:,\s*(?:and\s+|&\s+)?|\s+and\s+|\s*&\s*))*[A-Z][A-Za-z0-9]*)\s+"
    r"(?:model|table|entity)s?\b"
)
# capitalised words that start a sentence after "Models:" rather than name a model
_NOT_NAMES = {"The", "A", "An", "This", "These", "Those", "See", "All", "Each", "One", "No", "None", "Any", "Some"}
# "models: Item, Warehouse and StockMovement" (the names after the word)
_MODEL_LIST = re.compile(
    r"\b(?i:models?|tables?|entit(?:y|ies))\s*[:=]\s*"
    r"((?:[A-Z][A-Za-z0-9]*\s*(?:,\s*(?:and\s+|&\s+)?|\s+and\s+|\s*&\s*))*[A-Z][A-Za-z0-9]*)\b"
)
_LIST_SEPARATOR = re.compile(r"\s*(?:,|\band\b|&)\s*")


def module_path(path: str) -> str:
    """`app/api/routes/auth.py` → `app.api.routes.auth`; a package folder → its dotted path; below the
    source root (`src/shop/api.py` in the src layout) the root is not part of the name (`shop.api`)."""
    root = SOURCE_ROOT.get()
    if root and path.startswith(root + "/"):
        path = path[len(root) + 1 :]
    if path.endswith("/__init__.py"):
        path = path[: -len("/__init__.py")]
    elif path.endswith(".py"):
        path = path[:-3]
    return path.replace("/", ".")


def is_importable(path: str) -> bool:
    parts = module_path(path).split(".")
    return all(part.isidentifier() and not keyword.iskeyword(part) for part in parts)


def snake(text: str) -> str:
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    text = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    if not text or text[0].isdigit():
        text = f"x_{text}"
    return text if not keyword.iskeyword(text) else f"{text}_"


def camel(text: str) -> str:
    words = [word for word in re.split(r"[^A-Za-z0-9]+", text) if word]
    name = "".join(word[:1].upper() + word[1:] for word in words) or "Item"
    return name if not name[0].isdigit() else f"X{name}"


def singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        return word[:-1]
    return word


def plural(word: str) -> str:
    if word.endswith("y") and not word.endswith(("ay", "ey", "oy", "uy")):
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    return word + "s"


def class_names(text: str, *, limit: int = 8) -> list[str]:
    """CamelCase class names a description mentions (`NodeHandler`, `AgentAPICaller`)."""
    found: list[str] = []
    for match in _CAMEL.finditer(text):
        name = match.group(1)
        upper = sum(1 for ch in name if ch.isupper())
        if upper < 2 or name in STOP_CLASSES or name.endswith(("ViewSet", "ViewSets")) or len(name) > 60:
            continue
        if name not in found:
            found.append(name)
    return found[:limit]


def model_names(text: str) -> list[str]:
    """Model names a description gives: `User model`, `GeneratedProject model`, CamelCase words."""
    found: list[str] = []
    for match in [*_MODEL_WORD.finditer(text), *_MODEL_LIST.finditer(text.replace("`", ""))]:
        for name in _LIST_SEPARATOR.split(match.group(1)):
            if name and name not in STOP_CLASSES | _NOT_NAMES and name not in found and not name.isupper():
                found.append(name)
    for name in class_names(text):
        if name not in found and not name.endswith(
            ("Serializer", "Service", "Executor", "Caller", "Exporter", "Generator", "Class", "Task", "Handler")
        ):
            found.append(name)
    return found[:8]


def route_slug(module_name: str) -> str:
    base = re.sub(r"(?:_router|_routes|_endpoints|_views|_api)$", "", module_name)
    if base in {"router", "routes", "endpoints", "views", "api"}:
        base = "items"
    return base.replace("_", "-")


def docstring(text: str, fallback: str) -> str:
    body = (text or fallback).strip() or fallback
    body = body.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    lines = [line.rstrip() for line in body.splitlines()]
    if len(lines) == 1:
        closing = " " if lines[0].endswith('"') else ""
        return f'"""{lines[0]}{closing}"""\n'
    return '"""' + "\n".join(lines) + '\n"""\n'
