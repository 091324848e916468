"""The errors of the blueprint parser and scaffold: coded 400s that name the document line."""

from __future__ import annotations

from typing import Any

from core.exceptions import ApplicationError

NO_TREE_HINT = (
    "Put the project's structure in the document as a tree, for example in a code block:\n"
    "backend/\n├── app/\n│   ├── main.py        # FastAPI entry point\n│   └── models.py      # SQLAlchemy models\n"
    "└── requirements.txt\n"
    "(box drawing, ASCII |-- and `--, indentation or `tree` output all work), or headings naming "
    "folders and files (### `app/`)."
)


class BlueprintInvalid(ApplicationError):
    status_code = 400
    default_code = "blueprint_invalid"

    def __init__(self, message: str, *, line: int | None = None, **kwargs: Any) -> None:
        extra = kwargs.pop("extra", None) or {}
        if line is not None:
            extra.setdefault("line", line)
            message = f"Line {line}: {message}"
        super().__init__(message, extra=extra, **kwargs)


class BlueprintTooLarge(BlueprintInvalid):
    default_code = "blueprint_too_large"
