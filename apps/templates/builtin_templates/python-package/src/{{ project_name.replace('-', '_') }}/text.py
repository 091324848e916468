"""Small, dependency-free text helpers."""

from __future__ import annotations

import re
import unicodedata

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def slugify(text: str, *, separator: str = "-", max_length: int | None = None) -> str:
    """Return a lowercase ASCII slug of ``text``, suitable for URLs and file names.

    Accents are folded to their ASCII base letter, every run of other characters
    becomes one ``separator``, and the result never starts or ends with it.

    >>> slugify("Hello, World!")
    'hello-world'
    >>> slugify("Crème brûlée", separator="_")
    'creme_brulee'
    >>> slugify("A rather long title", max_length=10)
    'a-rather-l'
    """
    if not separator:
        raise ValueError("separator must not be empty")
    if max_length is not None and max_length < 1:
        raise ValueError("max_length must be at least 1")
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = _NON_ALNUM.sub(separator, folded.lower()).strip(separator)
    if max_length is not None:
        slug = slug[:max_length].rstrip(separator)
    return slug


def truncate(text: str, width: int, *, placeholder: str = "…") -> str:
    """Shorten ``text`` to at most ``width`` characters, cutting at a word boundary.

    Text that already fits is returned unchanged; otherwise the last partial word is
    dropped (when there is an earlier space) and ``placeholder`` is appended.

    >>> truncate("The quick brown fox", 12)
    'The quick…'
    >>> truncate("short", 10)
    'short'
    """
    if width < len(placeholder):
        raise ValueError("width must be at least the length of the placeholder")
    if len(text) <= width:
        return text
    cut = text[: width - len(placeholder)]
    if not text[len(cut)].isspace() and " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip() + placeholder
