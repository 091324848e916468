"""Public API of {{ project_name }}."""

from {{ project_name | replace("-", "_") }}.text import slugify, truncate

__all__ = ["__version__", "slugify", "truncate"]

__version__ = "{{ version }}"
