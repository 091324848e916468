"""The configuration docs list every environment variable the code reads."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# env_int("NAME", ...), env_secret('NAME'), os.environ.get("NAME") ... in Kiln's own code
READ = re.compile(r"""(?:env_\w+|os\.environ\.get|os\.getenv)\(\s*["']([A-Z][A-Z0-9_]+)["']""")
TEST_ONLY = {"KILN_TEST_SCRATCH"}


def _names_read() -> set[str]:
    names: set[str] = set()
    for folder in ("core", "apps"):
        for path in (ROOT / folder).rglob("*.py"):
            parts = set(path.relative_to(ROOT).parts)
            # builtin_templates and the blueprint scaffold hold generated projects' code, not Kiln's settings
            if "tests" in parts or "builtin_templates" in parts or "scaffold" in parts or path.name == "test.py":
                continue
            names.update(READ.findall(path.read_text()))
    return names - TEST_ONLY


def test_the_code_reads_settings_we_can_find():
    names = _names_read()
    assert {"DATABASE_URL", "CELERY_BROKER_URL", "KILN_FERNET_KEY", "DJANGO_SECURE_COOKIES"} <= names


def test_env_example_lists_every_setting():
    listed = (ROOT / ".env.example").read_text()
    missing = sorted(name for name in _names_read() if f"# {name}=" not in listed)
    assert missing == []


def test_readme_documents_every_setting():
    lines = (ROOT / "README.md").read_text().splitlines()
    missing = []
    for name in sorted(_names_read()):
        # a row may abbreviate a family: `KILN_API_CALLER_CONNECT_TIMEOUT` / `_READ_TIMEOUT`
        abbreviations = [(name[:i], name[i:]) for i, ch in enumerate(name) if ch == "_"]
        if not any(
            f"`{name}`" in line
            or any(f"`{suffix}`" in line and f"`{prefix}_" in line for prefix, suffix in abbreviations)
            for line in lines
        ):
            missing.append(name)
    assert missing == []
