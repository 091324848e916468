import re

import pytest

import {{ project_name | replace("-", "_") }}
from {{ project_name | replace("-", "_") }} import slugify, truncate


def test_version_is_pep440_like():
    assert re.fullmatch(r"\d+(\.\d+)+\S*", {{ project_name | replace("-", "_") }}.__version__)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello, World!", "hello-world"),
        ("  leading and trailing  ", "leading-and-trailing"),
        ("Crème brûlée à la carte", "creme-brulee-a-la-carte"),
        ("multiple---dashes___and   spaces", "multiple-dashes-and-spaces"),
        ("日本語", ""),
        ("", ""),
    ],
)
def test_slugify(text, expected):
    assert slugify(text) == expected


def test_slugify_custom_separator_and_length():
    assert slugify("Hello big world", separator="_") == "hello_big_world"
    assert slugify("Hello big world", max_length=9) == "hello-big"
    assert slugify("Hello big world", max_length=6) == "hello"


@pytest.mark.parametrize("kwargs", [{"separator": ""}, {"max_length": 0}])
def test_slugify_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        slugify("anything", **kwargs)


@pytest.mark.parametrize(
    ("text", "width", "expected"),
    [
        ("short", 10, "short"),
        ("exactly ten", 11, "exactly ten"),
        ("The quick brown fox", 12, "The quick…"),
        ("The quick brown fox", 10, "The quick…"),
        ("Supercalifragilistic", 6, "Super…"),
    ],
)
def test_truncate(text, width, expected):
    result = truncate(text, width)
    assert result == expected
    assert len(result) <= width


def test_truncate_custom_placeholder():
    assert truncate("The quick brown fox", 13, placeholder="...") == "The quick..."


def test_truncate_rejects_width_below_placeholder():
    with pytest.raises(ValueError):
        truncate("text", 2, placeholder="...")
