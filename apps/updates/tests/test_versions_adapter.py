"""What updates ask about template versions, answered from the recorded TemplateVersion rows."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from apps.templates.models import TemplateVersion
from apps.updates.services import versions
from apps.updates.tests.conftest import V1, V2, publish
from core.exceptions import ApplicationError

pytestmark = pytest.mark.django_db


@dataclass
class Recorded:
    version: str
    path: str = ".copier-answers.yml"

    @property
    def version_tag(self) -> str:
        parts = self.version.rsplit("-", 2)
        return parts[0] if len(parts) == 3 and parts[2].startswith("g") else self.version


def test_updates_see_every_recorded_version(settings):
    publish(settings, "svc", "1.0.0", V1)
    publish(settings, "svc", "2.0.0", V2)
    template = publish(settings, "svc", "1.5.0", {**V1, "README.md": "# {{ name }} 1.5\n"})
    TemplateVersion.objects.filter(template=template, version="1.5.0").update(commit="ab12cd34" * 5)
    # the order versions are in (oldest first), whatever order they were recorded in
    assert versions.version_positions(template) == {"1.0.0": 0, "1.5.0": 1, "2.0.0": 2}
    assert versions.target_version(template, None).label == "2.0.0"
    old = versions.target_version(template, "1.0.0")
    assert (old.folder / "old.txt").read_text() == "going away\n" and old.format == "native"
    with pytest.raises(ApplicationError) as caught:
        versions.target_version(template, "3.0.0")
    assert (caught.value.status_code, caught.value.code) == (404, "version_not_found")
    assert caught.value.extra["available"] == ["2.0.0", "1.5.0", "1.0.0"]
    # an answers file's version: a tag (with a v, or past a tag as git describe writes it) or a commit
    assert versions.version_for_recorded(template, Recorded("v1.5.0-3-g1234abc")) == "1.5.0"
    assert versions.version_for_recorded(template, Recorded("2.0.0")) == "2.0.0"
    assert versions.version_for_recorded(template, Recorded("ab12cd34ab12")) == "1.5.0"
    with pytest.raises(ApplicationError) as caught:
        versions.version_for_recorded(template, Recorded("0.9.0"))
    assert caught.value.code == "version_not_found"


def test_an_answers_file_source_finds_the_git_template(settings):
    template = publish(settings, "svc", "1.0.0", V1)
    template.__class__.objects.filter(pk=template.pk).update(git_url="https://GitHub.com/acme/svc.git")
    for source in (
        "https://github.com/acme/svc",
        "https://github.com/acme/svc.git/",
        "https://GITHUB.com/acme/svc.git",
    ):
        assert versions.template_for_source(source).pk == template.pk
    assert versions.template_for_source("https://github.com/acme/svc-other") is None
    assert versions.template_for_source("https://github.com/other/svc") is None
    assert versions.template_for_source("") is None
