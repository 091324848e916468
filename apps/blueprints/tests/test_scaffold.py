"""The scaffold's content per role, read from the files it makes (fast; the generated projects are run in
test_seeds_e2e.py)."""

from __future__ import annotations

import ast

from apps.blueprints.services.parser import parse_document
from apps.blueprints.services.scaffold import scaffold
from apps.blueprints.services.scaffold.names import model_names


def files_of(document: str) -> dict[str, str]:
    made = scaffold(parse_document(document), source=document)
    values = {name: spec.get("default") for name, spec in made.parameters["properties"].items()}
    return {path: data.decode() for path, (data, _mode) in made.rendered(values).items()}


def classes(source: str) -> list[str]:
    return [node.name for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ClassDef)]


def test_model_names_from_lists():
    assert model_names("Item, Location and StockLevel models") == ["Item", "Location", "StockLevel"]
    assert model_names("Notification and Recipient models") == ["Notification", "Recipient"]
    assert model_names("Order & Invoice tables") == ["Order", "Invoice"]
    assert model_names("SQLAlchemy ORM models") == []
    assert model_names("Environment database models") == []


def test_every_listed_model_is_made():
    files = files_of(
        "```\nshop/\n├── main.py      # FastAPI app\n└── models.py    # Order, Line and Invoice models\n```\n"
    )
    assert classes(files["models.py"]) == ["Order", "Line", "Invoice"]


DJANGO = """```
site/
|-- manage.py
|-- site_project/
|   |-- settings.py
|   `-- urls.py
|-- shelf/               - a Django app
|   |-- models.py        - Book and Author models
|   |-- views.py
|   |-- urls.py
|   `-- admin.py
`-- templates/
```
"""


def test_django_admin_is_wired_when_the_tree_has_admin_py():
    files = files_of(DJANGO)
    settings = files["site_project/settings.py"]
    for app in ("admin", "sessions", "messages"):
        assert f'"django.contrib.{app}"' in settings
    assert "SessionMiddleware" in settings and "MessageMiddleware" in settings
    assert 'BASE_DIR / "templates"' in settings
    assert 'path("admin/", admin.site.urls)' in files["site_project/urls.py"]


def test_django_app_urls_are_included_not_copied():
    files = files_of(DJANGO)
    assert 'path("shelf/", include("shelf.urls"))' in files["site_project/urls.py"]
    app_urls = files["shelf/urls.py"]
    assert 'path("books/", shelf_views.book_list' in app_urls
    assert 'path("authors/", shelf_views.author_list' in app_urls
    assert "def health" not in app_urls


def test_every_file_role_has_a_writer():
    from apps.blueprints.services.roles import ROLES
    from apps.blueprints.services.scaffold import django_stack
    from apps.blueprints.services.scaffold.engine import WRITERS

    folder_roles = {"package", "source_root", "data_dir", "tests_dir", "alembic_dir", "alembic_versions"}
    assert ROLES - folder_roles - set(WRITERS) - set(django_stack.WRITERS) == set()


def test_no_module_of_the_documents_is_a_stub():
    from pathlib import Path

    here = Path(__file__).parent
    for document in [*sorted((here / "seeds").glob("*.txt")), *sorted((here / "documents").glob("*.*"))]:
        for path, text in files_of(document.read_text(encoding="utf-8")).items():
            assert "def describe()" not in text, (document.name, path)


HANDLERS = """```
svc/
├── main.py                  # FastAPI app
├── db.py                    # SQLAlchemy engine
├── models.py                # Order model
├── services/
│   ├── order_service.py     # Order CRUD operations
│   └── pricing_engine.py    # computes prices
└── steps/
    ├── base.py              # Abstract Step class
    ├── fetch.py             # fetches the input
    └── store.py             # stores the output
```
"""


def test_handlers_beside_an_abstract_base_subclass_it_and_the_package_registers_them():
    files = files_of(HANDLERS)
    assert "class Step(ABC):" in files["steps/base.py"]
    assert "class FetchStep(Step):" in files["steps/fetch.py"]
    assert "def execute(self, payload" in files["steps/fetch.py"]
    init = files["steps/__init__.py"]
    assert '"fetch": FetchStep,' in init and '"store": StoreStep,' in init
    assert "def get_step(name: str) -> Step:" in init
    tests = files["tests/test_app.py"]
    assert "def test_steps_registry()" in tests and "def test_fetch_step_execute()" in tests


def test_a_service_named_after_a_model_reads_and_writes_it():
    files = files_of(HANDLERS)
    service = files["services/order_service.py"]
    assert "class OrderService:" in service
    for method in ("def list_all(", "def get(", "def create(", "def delete("):
        assert method in service
    assert "from models import Order" in service
    assert "def test_order_service_creates_reads_lists_and_deletes(db_session)" in files["tests/test_app.py"]
    assert "def db_session():" in files["tests/conftest.py"]
    # a service with no model keeps what it did
    assert "class PricingEngine:" in files["services/pricing_engine.py"]
    assert "def run(self, payload" in files["services/pricing_engine.py"]


def test_jobs_workers_and_the_procfile_follow_the_queue():
    rq = files_of(
        "```\nq/\n├── app.py       # Flask app\n├── worker.py    # RQ worker\n├── jobs/\n"
        "│   └── send_report.py  # emails the report\n└── config.py\n```\nUses RQ.\n"
    )
    assert rq["Procfile"] == "web: flask --app app:app run --host 0.0.0.0 --port $PORT\nworker: python -m worker\n"
    assert "return Worker([Queue(name, connection=connection) for name in QUEUES]" in rq["worker.py"]
    assert "def send_report(payload: dict[str, object] | None = None)" in rq["jobs/send_report.py"]
    celery = files_of(
        "```\nc/\n├── main.py       # FastAPI app\n├── celery_app.py # Celery app\n└── tasks.py      # tasks:\n"
        "```\n- sync_accounts task\n- cleanup_sessions task\n"
    )
    assert "worker: celery -A celery_app worker --loglevel=INFO" in celery["Procfile"]


def test_jobs_named_in_the_description_and_the_scheduler_registers_them():
    files = files_of(DJANGO_JOBS)
    jobs = files["reports/jobs.py"]
    assert "def nightly_summary(payload" in jobs and "Summary.objects.create(" in jobs
    assert "def cleanup_old_summaries(payload" in jobs and "created_at__lt=cutoff" in jobs
    scheduler = files["reports/scheduler.py"]
    assert 'scheduler.add_job(nightly_summary, "cron", hour=2, id="nightly_summary"' in scheduler
    tests = files["tests/test_app.py"]
    assert 'assert module.scheduler.get_job("cleanup_old_summaries") is not None' in tests
    assert "def start_scheduler() -> None:" in files["site_project/wsgi.py"]


DJANGO_JOBS = """```
site/
|-- manage.py
|-- site_project/
|   `-- settings.py
`-- reports/                 - a Django app
    |-- models.py            - Summary model
    |-- views.py
    |-- jobs.py              - the nightly_summary job and the cleanup_old_summaries job
    `-- scheduler.py         - APScheduler set-up
```
"""


def test_command_line_senders_parsers_clients_errors_and_helpers():
    files = files_of(
        """```
tool/
├── tool/
│   ├── cli.py           # entry point: `python -m tool.cli sync a b`
│   ├── errors.py        # RateLimitError
│   ├── utils.py         # small helpers
│   ├── mailer.py        # Mailer sends e-mail through SMTP
│   ├── hook.py          # HookSender posts JSON to a webhook URL
│   ├── lines.py         # LineParser reads key=value lines
│   └── billing.py       # BillingClient for the billing API
└── pyproject.toml
```
"""
    )
    cli = files["tool/cli.py"]
    assert 'commands.add_parser("sync"' in cli and "def main(argv: list[str] | None = None) -> int:" in cli
    assert 'tool = "tool.cli:main"' in files["pyproject.toml"]
    assert 'include = ["tool*"]' in files["pyproject.toml"]
    assert "class RateLimitError(ToolError):" in files["tool/errors.py"]
    assert "def slugify(text: str) -> str:" in files["tool/utils.py"]
    assert "smtplib.SMTP(self.host, self.port, timeout=10)" in files["tool/mailer.py"]
    assert 'method="POST"' in files["tool/hook.py"] and "HOOK_SENDER_URL" in files[".env.example"]
    assert "def parse(self, text: str)" in files["tool/lines.py"]
    assert "def build_request(self, path: str" in files["tool/billing.py"]


def test_tests_outside_tests_folder_are_collected_with_the_fixtures():
    files = files_of(
        "```\n.\n├── app.py          # Flask app\n├── models.py       # Item model\n└── test_app.py\n```\n"
    )
    assert "testpaths = .\n" in files["pytest.ini"]
    assert "conftest.py" in files and "tests/conftest.py" not in files
    django = files_of(
        "```\nshop\\\n|-- manage.py\n|-- config\\\n|   `-- settings.py\n`-- products\\      # products app\n"
        "    |-- models.py      # Product model\n    |-- views.py\n    `-- tests\\\n        `-- test_products.py\n```\n"
    )
    assert "testpaths = products\n" in django["pytest.ini"]
    assert "conftest.py" in django


def test_a_requirements_folder_holds_the_pins_and_the_root_file_includes_it():
    files = files_of(
        "```\napi/\n|-- manage.py\n|-- config/\n|   `-- settings.py   # Django settings\n|-- shop/\n"
        "|   `-- models.py     # Order model\n`-- requirements/\n    |-- base.txt\n    `-- dev.txt\n```\n"
    )
    assert files["requirements.txt"] == "-r requirements/base.txt\n"
    assert files["requirements/base.txt"].startswith("Django==")
    assert "pytest" not in files["requirements/base.txt"]
    assert (
        files["requirements/dev.txt"].startswith("-r base.txt\n") and "pytest-django==" in files["requirements/dev.txt"]
    )
    assert "pip install -r requirements/dev.txt" in files["README.md"]


def test_the_error_hierarchy_root_is_the_one_the_document_names():
    files = files_of(
        "```\nledger/\n├── main.py        # FastAPI app\n└── errors.py      # LedgerError hierarchy\n```\n"
    )
    assert "class LedgerError(Exception):" in files["errors.py"]
    assert "class NotFoundError(LedgerError):" in files["errors.py"]


KITCHEN = """```
my-service/
├── .github/
│   └── workflows/
│       └── ci.yml              # lint and test on push
├── app/
│   ├── __main__.py             # python -m app starts the server
│   ├── main.py                 # FastAPI application
│   ├── data-loader.py          # loads CSV fixtures
│   ├── Utils.py                # misc helpers
│   ├── templates/
│   │   └── index.html
│   └── static/
│       └── app.css
├── scripts/
│   ├── deploy.sh               # deploy to production
│   └── cleanup.sh
├── docs/
│   └── ARCHITECTURE.md
├── .pre-commit-config.yaml
└── setup.cfg
```
"""


def test_files_of_other_kinds_have_working_content():
    files = files_of(KITCHEN)
    ci = files[".github/workflows/ci.yml"]
    assert "actions/setup-python@v5" in ci and "pip install -r requirements.txt ruff" in ci
    assert "python -m pytest" in ci
    assert "uvicorn.run(app" in files["app/__main__.py"]
    assert files["app/data-loader.py"].startswith("# ruff: noqa: N999")
    assert "def slugify(text: str) -> str:" in files["app/Utils.py"]
    assert (
        "<!doctype html>" in files["app/templates/index.html"]
        and 'href="/app/static/app.css"' in files["app/templates/index.html"]
    )
    assert "font-family" in files["app/static/app.css"]
    assert 'docker build -t "$IMAGE" .' in files["scripts/deploy.sh"]
    assert "rm -rf .pytest_cache" in files["scripts/cleanup.sh"]
    assert (
        "## Stack" in files["docs/ARCHITECTURE.md"]
        and "`ci.yml`: lint and test on push" in files["docs/ARCHITECTURE.md"]
    )
    assert "entry: ruff check --fix" in files[".pre-commit-config.yaml"]
    assert files["setup.cfg"].startswith("[metadata]\nname = my-service\n")


def test_the_src_layout_keeps_src_out_of_module_names():
    document = (
        "```\nledger/\n├── src/\n│   └── ledger/\n│       ├── main.py        # FastAPI app\n"
        "│       ├── models.py      # Account model\n│       └── services/\n"
        "│           └── account_service.py  # account CRUD\n├── migrations/     # Alembic\n"
        "│   └── env.py\n└── pyproject.toml\n```\n"
    )
    blueprint = parse_document(document)
    assert blueprint.entry("src").role == "source_root"
    files = files_of(document)
    assert "src/__init__.py" not in files
    assert files["Procfile"].startswith("web: env PYTHONPATH=src uvicorn ledger.main:app ")
    assert "pythonpath = . src\n" in files["pytest.ini"]
    assert "from ledger.models import Account" in files["src/ledger/services/account_service.py"]
    assert 'where = ["src"]' in files["pyproject.toml"] and 'include = ["ledger*"]' in files["pyproject.toml"]
    assert "prepend_sys_path = .:src\n" in files["alembic.ini"]
