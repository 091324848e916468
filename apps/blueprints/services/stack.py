"""Which stack a structure document describes, and why (the evidence: lines and paths)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from apps.blueprints.services.parser import Entry

# Words that name a piece of the stack; matched per line, case-insensitively.
WORDS: dict[str, re.Pattern[str]] = {
    "fastapi": re.compile(r"\bfast\s?api\b|\bapirouter\b|\buvicorn\b|\bstarlette\b", re.IGNORECASE),
    "flask": re.compile(r"\bflask\b", re.IGNORECASE),
    "django": re.compile(r"\bdjango\b|\bviewsets?\b|\bmanage\.py\b|\bDRF\b", re.IGNORECASE),
    "sqlalchemy": re.compile(r"\bsql\s?alchemy\b|\bsqlmodel\b", re.IGNORECASE),
    "async_orm": re.compile(
        r"\basync(?:io)?\b[^.\n]{0,40}\b(?:engine|session|sqlalchemy|orm|database)\b|\basyncsession\b|\basyncpg\b"
        r"|\baiosqlite\b|\bsqlalchemy\b[^.\n]{0,30}\basync\b",
        re.IGNORECASE,
    ),
    "alembic": re.compile(r"\balembic\b", re.IGNORECASE),
    "celery": re.compile(r"\bcelery\b", re.IGNORECASE),
    "apscheduler": re.compile(r"\bapscheduler\b", re.IGNORECASE),
    "rq": re.compile(r"\brq\b|\bpython-rq\b|\bredis queue\b", re.IGNORECASE),
    "pydantic": re.compile(r"\bpydantic\b", re.IGNORECASE),
    "pytest": re.compile(r"\bpy\.?test\b", re.IGNORECASE),
    "postgresql": re.compile(r"\bpostgres(?:ql)?\b|\basyncpg\b|\bpsycopg", re.IGNORECASE),
    "mysql": re.compile(r"\bmysql\b|\bmariadb\b", re.IGNORECASE),
    "sqlite": re.compile(r"\bsqlite\d?\b", re.IGNORECASE),
}
MAX_EVIDENCE = 5


@dataclass
class Stack:
    framework: str = "plain"  # fastapi | flask | django | plain
    orm: str = "none"  # sqlalchemy | django | none
    orm_async: bool = False
    migrations: str = "none"  # alembic | django | none
    scheduler: str = "none"  # apscheduler | celery | none (stdlib where a module needs one)
    queue: str = "none"  # celery | rq | none (stdlib where a module needs one)
    validation: str = "none"  # pydantic | none
    tests: str = "pytest"
    database: str = "sqlite"  # what the document names; generated defaults always run on SQLite
    evidence: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "framework": self.framework,
            "orm": self.orm,
            "orm_async": self.orm_async,
            "migrations": self.migrations,
            "scheduler": self.scheduler,
            "queue": self.queue,
            "validation": self.validation,
            "tests": self.tests,
            "database": self.database,
            "evidence": self.evidence,
        }

    def note(self, key: str, text: str, *, line: int | None = None, path: str | None = None) -> None:
        items = self.evidence.setdefault(key, [])
        if len(items) >= MAX_EVIDENCE:
            return
        item: dict[str, Any] = {"text": text[:160]}
        if line is not None:
            item["line"] = line
        if path is not None:
            item["path"] = path
        items.append(item)


def _word_hits(lines: Sequence[str]) -> dict[str, list[tuple[int, str]]]:
    hits: dict[str, list[tuple[int, str]]] = {key: [] for key in WORDS}
    for number, line in enumerate(lines, start=1):
        for key, pattern in WORDS.items():
            if pattern.search(line):
                hits[key].append((number, line.strip()))
    return hits


def _base(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def _django_paths(paths: set[str]) -> list[tuple[str, str]]:
    found = []
    for path in sorted(paths):
        base = _base(path)
        parent = _parent(path)
        if base == "manage.py":
            found.append((path, "manage.py is Django's command entry"))
        elif base in {"base.py", "production.py", "local.py"} and _base(parent) == "settings":
            found.append((path, "a settings/ package with per-environment modules (Django's layout)"))
        elif base == "migrations" and f"{parent}/models.py".lstrip("/") in paths:
            found.append((path, "an app folder with models.py and migrations/ (a Django app)"))
        elif (
            base in {"serializers.py", "signals.py", "admin.py", "apps.py"}
            and f"{parent}/models.py".lstrip("/") in paths
        ):
            found.append((path, f"{base} beside models.py (a Django app)"))
    return found


def detect_stack(lines: Sequence[str], paths: Sequence[str], entries: Sequence[Entry] = ()) -> Stack:
    """The stack named by the document's words and suggested by its paths, with evidence."""
    stack = Stack()
    hits = _word_hits(lines)
    path_set = set(paths)
    scores = {"fastapi": 0, "flask": 0, "django": 0}
    for key in scores:
        for number, text in hits[key]:
            scores[key] += 3
            stack.note(key, text, line=number)
    routers = [p for p in paths if re.search(r"(?:^|_)(?:router|routes)\.py$|(?:^|/)routers?/", p)]
    for path in routers[:3]:
        scores["fastapi"] += 1
        stack.note("fastapi", "a module named like FastAPI's APIRouter modules", path=path)
    for path, why in _django_paths(path_set)[:4]:
        scores["django"] += 2
        stack.note("django", why, path=path)
    best = max(scores, key=lambda key: (scores[key], key == "fastapi", key == "django"))
    stack.framework = best if scores[best] else "plain"
    if stack.framework == "plain":
        stack.note("plain", "no web framework is named: the app uses the standard library's WSGI server")

    database_paths = [
        p
        for p in paths
        if _base(p) in {"models.py", "models", "database.py", "db.py", "db", "session.py", "database"}
        or p.endswith((".db", ".sqlite", ".sqlite3"))
    ]
    if stack.framework == "django":
        stack.orm = "django"
        stack.migrations = "django"
        stack.note("orm", "Django's ORM comes with Django")
    else:
        for number, text in hits["sqlalchemy"]:
            stack.note("orm", text, line=number)
        if hits["sqlalchemy"] or hits["alembic"] or database_paths:
            stack.orm = "sqlalchemy"
            if not hits["sqlalchemy"]:
                why = "Alembic runs on SQLAlchemy" if hits["alembic"] else "database modules and no ORM named"
                stack.note("orm", f"{why}: SQLAlchemy", path=database_paths[0] if database_paths else None)
        if stack.orm == "sqlalchemy" and hits["async_orm"]:
            stack.orm_async = True
            for number, text in hits["async_orm"]:
                stack.note("orm_async", text, line=number)
        alembic_paths = [p for p in paths if _base(p) in {"alembic", "alembic.ini"}]
        if hits["alembic"] or alembic_paths:
            stack.migrations = "alembic"
            for number, text in hits["alembic"]:
                stack.note("migrations", text, line=number)
            for path in alembic_paths[:2]:
                stack.note("migrations", "an Alembic file or folder in the tree", path=path)
    if hits["apscheduler"]:
        stack.scheduler = "apscheduler"
        for number, text in hits["apscheduler"]:
            stack.note("scheduler", text, line=number)
    if hits["celery"]:
        stack.queue = "celery"
        for number, text in hits["celery"]:
            stack.note("queue", text, line=number)
    elif hits["rq"]:
        stack.queue = "rq"
        for number, text in hits["rq"]:
            stack.note("queue", text, line=number)
    if hits["pydantic"] or stack.framework == "fastapi":
        stack.validation = "pydantic"
        for number, text in hits["pydantic"]:
            stack.note("validation", text, line=number)
        if not hits["pydantic"]:
            stack.note("validation", "FastAPI validates with Pydantic")
    for number, text in hits["pytest"]:
        stack.note("tests", text, line=number)
    for path in paths:
        if _base(path) in {"pytest.ini", "conftest.py", "tests"}:
            stack.note("tests", "a pytest file or folder in the tree", path=path)
            break
    for name in ("postgresql", "mysql", "sqlite"):
        if hits[name]:
            stack.database = name
            for number, text in hits[name]:
                stack.note("database", text, line=number)
            break
    return stack
