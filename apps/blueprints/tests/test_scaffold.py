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
