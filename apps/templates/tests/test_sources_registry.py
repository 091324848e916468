"""The template sources registry: one module per kind, found by kind or by a body's key."""

from __future__ import annotations

import pytest

from apps.templates.models import ProjectTemplate, TemplateSource
from apps.templates.services.sources import SOURCES, get_source, register_source, source_for_body
from core.exceptions import ApplicationError

pytestmark = pytest.mark.django_db


def test_each_kind_has_a_module_found_by_kind_or_body_key():
    assert get_source("upload").kind == TemplateSource.UPLOAD
    assert get_source("builtin").body_key is None
    assert source_for_body({"archive": object()}) is get_source("upload")
    assert source_for_body({"name": "x"}) is None and source_for_body(["archive"]) is None
    with pytest.raises(ApplicationError) as info:
        get_source("svn")
    assert info.value.code == "source_unknown"
    assert set(SOURCES) <= set(TemplateSource.values)


def test_registering_twice_or_an_unknown_kind_fails_at_import():
    class Again:
        kind = TemplateSource.UPLOAD

    class Unknown:
        kind = "svn"

    for module in (Again, Unknown):
        with pytest.raises(RuntimeError):
            register_source(module)


def test_only_sources_with_somewhere_to_sync_from_sync():
    template = ProjectTemplate.objects.get(slug="python-package")
    for kind in ("builtin", "upload"):
        template.source = kind
        with pytest.raises(ApplicationError) as info:
            get_source(kind).sync(template, user=None)
        assert (info.value.code, info.value.status_code) == ("sync_unsupported", 400)
        assert get_source(kind).describe(template) is None
    assert {t.slug for t in get_source("builtin").sync_all()} >= {"python-package"}  # type: ignore[attr-defined]
