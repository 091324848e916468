"""Page-number pagination with a client-chosen page size (capped)."""

from __future__ import annotations

from rest_framework.pagination import PageNumberPagination


class KilnPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 100
