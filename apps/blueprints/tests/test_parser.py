"""The parser on the five seed documents and on variants: parsed paths equal hand-written lists."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest

from apps.blueprints.services.errors import BlueprintInvalid, BlueprintTooLarge
from apps.blueprints.services.parser import Limits, parse_document, repair_encoding

SEEDS = Path(__file__).parent / "seeds"
DOCUMENTS = Path(__file__).parent / "documents"


def seed(prefix: str) -> str:
    return next(SEEDS.glob(f"{prefix}_*.txt")).read_text(encoding="utf-8")


def paths(document: str) -> list[str]:
    return [e.path + ("/" if e.kind == "dir" else "") for e in parse_document(document).entries]


# Written by hand from each document's tree (folders end in "/"; the tree's root folder is the project).
EXPECTED = {
    "000": """Dockerfile core/ core/database.py core/security.py data/ data/TaskManage.db data/secret.key
        environment_service/ environment_service/env_router.py environment_service/models.py
        environment_service/python_version_router.py envs/ log_service/ log_service/logs_router.py logs/ main.py
        project_service/ project_service/models.py project_service/project_router.py projects/ requirements.txt
        system_service/ system_service/env_vars_router.py system_service/fs_router.py system_service/system_router.py
        task_service/ task_service/models.py task_service/task_manager.py task_service/task_router.py""",
    "001": """.env .env.example .gitignore Dockerfile Dockerfile.prod README.md alembic.ini app/ app/api/ app/api/v1/
        app/api/v1/endpoints/ app/api/v1/endpoints/physics/ app/background/ app/core/ app/core/config/
        app/core/physics/ app/crud/ app/db/ app/main.py app/middleware/ app/models/ app/models/ai/ app/models/audio/
        app/models/core/ app/models/export/ app/models/organization/ app/models/physics/ app/models/visualization/
        app/schemas/ app/services/ app/utils/ app/websocket/ migrations/ pytest.ini reports/ requirements-test.txt
        requirements.txt scripts/ scripts/analyze_errors.py scripts/apply_fixes.py scripts/cleanup.py
        scripts/db_ops.py scripts/fix_tests.py scripts/init_db.py scripts/run_tests.sh scripts/update_uuid_types.py
        scripts/verify_db.py""",
    "002": "app/ app/__init__.py config/ database/ main.py queues.py scheduler.py storage/ tests/ web.py",
    "003": """.env.example .gitignore README.md STRUCTURE.md alembic/ alembic.ini alembic/env.py alembic/script.py.mako
        alembic/versions/ app/ app/__init__.py app/api/ app/api/__init__.py app/api/routes/
        app/api/routes/__init__.py app/api/routes/auth.py app/api/routes/edges.py app/api/routes/nodes.py
        app/api/routes/runs.py app/api/routes/vectors.py app/api/routes/workflows.py app/core/ app/core/__init__.py
        app/core/config.py app/core/dependencies.py app/core/security.py app/db/ app/db/__init__.py app/db/base.py
        app/db/database.py app/main.py app/models/ app/models/__init__.py app/models/edge.py app/models/node.py
        app/models/node_execution.py app/models/user.py app/models/vector_collection.py app/models/workflow.py
        app/models/workflow_run.py app/node_handlers/ app/node_handlers/__init__.py app/node_handlers/base.py
        app/node_handlers/db_write.py app/node_handlers/faiss_search.py app/node_handlers/http_request.py
        app/node_handlers/llm_call.py app/schemas/ app/schemas/__init__.py app/schemas/edge.py app/schemas/node.py
        app/schemas/user.py app/schemas/vector.py app/schemas/workflow.py app/schemas/workflow_run.py app/services/
        app/services/__init__.py app/services/auth_service.py app/services/execution_service.py
        app/services/llm_service.py app/services/node_handler_service.py app/services/vector_service.py
        app/services/workflow_service.py app/utils/ app/utils/__init__.py app/utils/graph.py app/utils/logger.py
        data/ data/faiss/ data/faiss/.gitkeep requirements.txt setup_and_run.md tests/ tests/__init__.py
        tests/test_auth.py tests/test_execution.py tests/test_workflows.py""",
    "004": """apps/ apps/agents/ apps/agents/models.py apps/agents/services/ apps/agents/services/api_caller.py
        apps/agents/services/api_discovery.py apps/agents/services/execution_engine.py apps/projects/
        apps/projects/migrations/ apps/projects/migrations/XXXX_add_generated_project_models.py
        apps/projects/models.py apps/projects/permissions.py apps/projects/serializers.py apps/projects/services/
        apps/projects/services/project_generator.py apps/projects/services/repository_exporter.py
        apps/projects/signals.py apps/projects/tasks.py apps/projects/views.py apps/workflows/
        apps/workflows/services/ apps/workflows/services/step_executors/
        apps/workflows/services/step_executors/api_call_step.py
        apps/workflows/services/step_executors/file_generation_step.py
        apps/workflows/services/step_executors/repo_creation_step.py apps/workflows/services/workflow_executor.py
        core/ core/settings/ core/settings/base.py generated-projects/""",
}


@pytest.mark.parametrize("prefix", sorted(EXPECTED))
def test_seed_paths(prefix):
    assert paths(seed(prefix)) == sorted(EXPECTED[prefix].split(), key=lambda path: path.rstrip("/"))


def test_seed_stacks_and_evidence():
    kumo = parse_document(seed("000"))
    assert kumo.root == "backend"
    assert (kumo.stack.framework, kumo.stack.orm, kumo.stack.scheduler) == ("fastapi", "sqlalchemy", "apscheduler")
    assert kumo.entry("task_service/task_manager.py").role == "scheduler"
    assert kumo.entry("core/").description if kumo.entry("core/") else True
    assert kumo.entry("core").description == "Core infrastructure"
    # the prose section's bullet about core/ became part of its details
    assert "Essential infrastructure components" in kumo.entry("core").details
    workflows = parse_document(seed("003")).stack
    assert (workflows.framework, workflows.orm, workflows.orm_async, workflows.migrations) == (
        "fastapi",
        "sqlalchemy",
        True,
        "alembic",
    )
    assert any("async engine" in item["text"] for item in workflows.evidence["orm_async"])
    django = parse_document(seed("004"))
    assert (django.stack.framework, django.stack.queue) == ("django", "celery")
    assert {w.code for w in django.warnings} >= {"encoding_repaired", "example_skipped"}
    assert django.entry("apps/projects/models.py").marker == "enhanced"
    assert "GeneratedProject model" in django.entry("apps/projects/models.py").details
    plain = parse_document(seed("002"))
    assert (plain.stack.framework, plain.stack.migrations) == ("plain", "alembic")
    assert "Flexible Filesystem API" in plain.entry("storage").description


def test_ascii_tree_with_dash_comments():
    document = """```
shop/
|-- app/
|   |-- __init__.py
|   |-- main.py - Flask application factory
|   `-- orders_routes.py - order endpoints
|-- tests/
|   `-- test_orders.py
`-- requirements.txt - pinned dependencies
```"""
    blueprint = parse_document(document)
    assert paths(document) == [
        "app/",
        "app/__init__.py",
        "app/main.py",
        "app/orders_routes.py",
        "requirements.txt",
        "tests/",
        "tests/test_orders.py",
    ]
    assert blueprint.entry("app/main.py").description == "Flask application factory"
    assert blueprint.stack.framework == "flask"
    assert blueprint.entry("app/orders_routes.py").role == "router"


def test_indentation_tree():
    document = """# Layout

```
service/
    api/
        users.py        # user endpoints (FastAPI)
        __init__.py
    models.py           # SQLAlchemy models: User model
    README.md
```
"""
    assert paths(document) == ["README.md", "api/", "api/__init__.py", "api/users.py", "models.py"]


def test_bare_indentation_tree_outside_a_code_block():
    document = """logship: ships log lines to a sink. Plain Python.

logship/
    logship/
        __init__.py
        cli.py          # argparse entry point
        parsers/
            nginx.py    - NginxParser
    tests/
        test_cli.py
    pyproject.toml
    Makefile
"""
    blueprint = parse_document(document)
    assert blueprint.root == "logship"
    assert paths(document) == [
        "Makefile",
        "logship/",
        "logship/__init__.py",
        "logship/cli.py",
        "logship/parsers/",
        "logship/parsers/nginx.py",
        "pyproject.toml",
        "tests/",
        "tests/test_cli.py",
    ]
    assert blueprint.entry("logship/parsers/nginx.py").description == "NginxParser"


def test_bare_two_space_tree_in_markdown_with_folders_without_slashes():
    document = """# Beacon

Structure:

beacon
  app
    main.py - FastAPI application
    models
      target.py - Target model
  requirements.txt

Beacon runs checks
  every minute and keeps results.
"""
    assert paths(document) == ["app/", "app/main.py", "app/models/", "app/models/target.py", "requirements.txt"]


def test_indented_prose_is_not_a_tree():
    document = """# Notes

We want a service
  that does things
  and other things.

### `app/main.py`
The entry point.
"""
    assert paths(document) == ["app/", "app/main.py"]


def test_tree_command_output_bare():
    document = """Output of tree:

.
├── Makefile
├── src
│   └── worker
│       ├── jobs.py
│       └── __init__.py
└── docs

3 directories, 3 files
"""
    assert paths(document) == [
        "Makefile",
        "docs/",
        "src/",
        "src/worker/",
        "src/worker/__init__.py",
        "src/worker/jobs.py",
    ]


def test_windows_root_and_markers():
    document = """```text
C:\\Users\\dev\\Projects\\billing
├── main.py (NEW)            # entry point
├── core/ (existing)
│   └── ... (existing services)
└── {tenant-id}/             # one folder per tenant
    └── invoices.json
```"""
    blueprint = parse_document(document)
    assert blueprint.root == "billing"
    assert paths(document) == ["core/", "main.py"]
    assert blueprint.entry("main.py").marker == "new"
    assert [w.code for w in blueprint.warnings] == ["example_skipped"]


def test_windows_tree_f_a_output_bare():
    """`tree /F /A` on Windows: folders drawn with +--- and \\---, files indented by `|   ` (or spaces
    below the last folder), the volume header before the root."""
    blueprint = parse_document((DOCUMENTS / "windows_tree.txt").read_text(encoding="utf-8"))
    assert blueprint.root == "INVENTORY-SERVICE"
    expected = """.env.example Dockerfile README.md alembic/ alembic/env.py alembic/versions/ app/ app/__init__.py app/api/
        app/api/__init__.py app/api/items.py app/api/warehouses.py app/db/ app/db/__init__.py app/db/models.py
        app/db/session.py app/main.py app/services/ app/services/__init__.py app/services/stock.py app/settings.py
        docker-compose.yml pyproject.toml tests/ tests/conftest.py tests/test_items.py"""
    assert [e.path + ("/" if e.kind == "dir" else "") for e in blueprint.entries] == expected.split()
    assert blueprint.entry("app/db/models.py").description == "SQLAlchemy models: Item, Warehouse, StockMovement"
    assert blueprint.warnings == [] and blueprint.stack.framework == "fastapi"


def test_tree_dash_f_marks_and_a_package_named_like_the_root():
    """`tree -F`: `manage.sh*` is the file manage.sh; a heading naming `ledgerly/expenses/` in a
    ledgerly/ledgerly/ layout describes the package (not templates/expenses)."""
    blueprint = parse_document((DOCUMENTS / "flask_blueprints.md").read_text(encoding="utf-8"))
    assert blueprint.root == "ledgerly"
    assert blueprint.entry("manage.sh").kind == "file" and blueprint.warnings == []
    assert blueprint.entry("ledgerly/expenses").description.startswith("The expenses blueprint")
    assert blueprint.entry("ledgerly/templates/expenses").description == ""
    assert blueprint.entry("ledgerly/reports").role == "package"  # it holds routes.py and tasks.py


def test_nested_markdown_list_of_files_is_a_tree_and_a_feature_list_is_not():
    document = """# Pinboard API

- `pinboard/`
  - `main.py` — FastAPI app
  - **models/**
    - `pin.py` — Pin model
- `tests/`
  - `test_pins.py`
- `requirements.txt`

## Features

- Fast pins
  - with tags
- Boards
"""
    blueprint = parse_document(document)
    assert paths(document) == [
        "pinboard/",
        "pinboard/main.py",
        "pinboard/models/",
        "pinboard/models/pin.py",
        "requirements.txt",
        "tests/",
        "tests/test_pins.py",
    ]
    assert blueprint.entry("pinboard/models/pin.py").description == "Pin model"
    assert blueprint.warnings == []


def test_flat_path_list_find_output():
    document = """Layout (`find . -type f | sort`):

./app/__init__.py
./app/routes/users.py
./tests/test_users.py
./Dockerfile

Flask with SQLAlchemy.
"""
    assert paths(document) == [
        "Dockerfile",
        "app/",
        "app/__init__.py",
        "app/routes/",
        "app/routes/users.py",
        "tests/",
        "tests/test_users.py",
    ]


def test_icons_before_names():
    document = """```
📁 notes-service
├── 📁 app
│   ├── 📄 main.py          # FastAPI entry point
│   └── ⚙️ config.py
└── 📄 requirements.txt
```"""
    blueprint = parse_document(document)
    assert blueprint.root == "notes-service"
    assert paths(document) == ["app/", "app/config.py", "app/main.py", "requirements.txt"]
    assert blueprint.entry("app/main.py").description == "FastAPI entry point"


def test_doubly_encoded_document_is_repaired():
    clean = "```\nproj/\n├── app.py   # the app — FastAPI ✓\n└── café.txt\n```\n"
    mangled = clean.encode("utf-8").decode("cp1252", errors="replace")
    assert "â”œ" in mangled
    assert repair_encoding(mangled)[0] == clean
    assert paths(mangled) == ["app.py", "café.txt"]
    assert parse_document(mangled).entry("app.py").description == "the app — FastAPI ✓"
    assert repair_encoding("Café au lait")[0] == "Café au lait"


def test_conflicting_entries_and_lines_not_understood_are_warnings():
    document = """```
app/
├── models.py     # one
├── models.py/    # two
├── Models.py
└── (see below) = more to come
```"""
    blueprint = parse_document(document)
    codes = [w.code for w in blueprint.warnings]
    assert codes.count("conflicting_entries") == 2
    assert "line_not_understood" in codes
    assert [w.line for w in blueprint.warnings if w.code == "line_not_understood"] == [6]


@pytest.mark.parametrize(
    ("line", "reason"),
    [("├── ../escape.py", "traversal"), ("├── /etc/passwd", "absolute"), ("├── .git/config", "reserved")],
)
def test_unsafe_paths_are_400_naming_the_line(line, reason):
    document = f"```\nproj/\n├── ok.py\n{line}\n└── end.py\n```\n"
    with pytest.raises(BlueprintInvalid) as caught:
        parse_document(document)
    assert caught.value.code == "blueprint_invalid"
    assert caught.value.extra["line"] == 4
    assert caught.value.extra["reason"] == reason
    assert caught.value.message.startswith("Line 4:")


def test_no_tree_is_invalid_with_a_hint():
    with pytest.raises(BlueprintInvalid) as caught:
        parse_document("# Ideas\n\nWe should build a service that does things.\n")
    assert caught.value.code == "blueprint_invalid"
    assert "tree" in caught.value.extra["hint"]


def test_caps_are_coded_400s_naming_the_line():
    many = "```\nproj/\n" + "".join(f"├── f{i}.py\n" for i in range(50)) + "```\n"
    with pytest.raises(BlueprintTooLarge) as caught:
        parse_document(many, limits=Limits(max_entries=20))
    assert caught.value.code == "blueprint_too_large"
    assert caught.value.extra["line"] == 23
    deep = "```\n" + "".join("    " * depth + f"d{depth}/\n" for depth in range(30)) + "```\n"
    with pytest.raises(BlueprintTooLarge) as caught:
        parse_document(deep)
    assert caught.value.extra["limit"] == Limits().max_depth
    with pytest.raises(BlueprintTooLarge):
        parse_document("x\n" * 6000)
    with pytest.raises(BlueprintTooLarge):
        parse_document("a" * 300_000)


def test_hostile_documents_stay_fast():
    started = time.monotonic()
    for document in [
        "├" * 1999 + "\n",
        ("│   " * 400 + "x\n") * 200,
        "`" * 1999,
        "# " + "a/" * 900,
        ("├── a.py\n|   b.py\n") * 2400,  # a drawing alternating with Windows-style lines
        ("`" * 1990 + "x`\n") * 120,  # backticks before a quoted name
        ("- `a/`\n  - `b.py`\n") * 2400,  # a long nested list
        ("./a/b.py\n") * 4900,  # a long flat list
    ]:
        with contextlib.suppress(BlueprintInvalid):
            parse_document(document)
    assert time.monotonic() - started < 5
