"""Query filters shared by every app."""

from __future__ import annotations

import re
from typing import Any

import django_filters
from django import forms
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema_field
from rest_framework.filters import BaseFilterBackend, OrderingFilter, SearchFilter
from rest_framework.request import Request
from rest_framework.settings import api_settings

from core.exceptions import ValidationFailed
from core.serializers import MAX_ID


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_ID})
class IdFilter(django_filters.NumberFilter):
    """A database id in a query string: a positive 64-bit integer, published as such in the schema.

    (django-filter's NumberFilter is a decimal up to 1e50, which the schema showed as any number.)
    """

    field_class = forms.IntegerField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class StrictQueryParams(BaseFilterBackend):
    """A list answers 400 to a query parameter it does not know, instead of ignoring it.

    `?statuss=failed` or `?name=x` on a list that has no such filter would otherwise return
    the whole list, which looks like an answer. Accepted: the view's filters, `search` and
    `ordering` where the view has them (ordering terms checked too), pagination and `format`.
    Detail routes (events' `last_event_id`, downloads) are not checked here.
    """

    def accepted(self, request: Request, queryset: Any, view: Any) -> tuple[set[str], set[str]]:
        names = {"format", "page"}
        paginator = getattr(view, "paginator", None)
        size_param = getattr(paginator, "page_size_query_param", None)
        if size_param:
            names.add(size_param)
        orderings: set[str] = set()
        for backend_class in getattr(view, "filter_backends", ()):
            backend = backend_class()
            if isinstance(backend, DjangoFilterBackend):
                filterset_class = backend.get_filterset_class(view, queryset)
                if filterset_class is not None:
                    names |= set(filterset_class.base_filters)
            elif isinstance(backend, SearchFilter) and getattr(view, "search_fields", None):
                names.add(backend.search_param)
            elif isinstance(backend, OrderingFilter) and getattr(view, "ordering_fields", None):
                names.add(backend.ordering_param)
                orderings = {field for field in view.ordering_fields}
        return names, orderings

    def filter_queryset(self, request: Request, queryset: Any, view: Any) -> Any:
        if getattr(view, "action", None) != "list":
            return queryset
        names, orderings = self.accepted(request, queryset, view)
        unknown = sorted(set(request.query_params) - names)
        if unknown:
            raise ValidationFailed(
                f"Unknown query parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                f"this list accepts: {', '.join(sorted(names))}.",
                code="unknown_query_parameter",
                extra={"unknown": unknown, "accepted": sorted(names)},
            )
        if orderings:
            param = api_settings.ORDERING_PARAM
            terms = [t.strip() for t in request.query_params.get(param, "").split(",") if t.strip()]
            wrong = [t for t in terms if t.lstrip("-") not in orderings]
            if wrong:
                choices = ", ".join(sorted(orderings))
                raise ValidationFailed(
                    f"Cannot order by {', '.join(wrong)}; ordering takes {choices} (prefix - for descending).",
                    code="validation_error",
                    extra={"fields": {param: [f"Choose from {choices}."]}},
                )
        return queryset


class DeclaredOrderingFilter(OrderingFilter):
    """DRF's OrderingFilter whose schema says which terms it takes (StrictQueryParams refuses others)."""

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        fields = sorted(getattr(view, "ordering_fields", None) or [])
        if fields:
            term = f"-?({'|'.join(re.escape(f) for f in fields)})"
            for parameter in parameters:
                parameter["schema"] = {"type": "string", "pattern": f"^{term}(,{term})*$"}
                parameter["description"] = f"Order by {', '.join(fields)} (prefix - for descending; comma-separated)."
        return parameters
