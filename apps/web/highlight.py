"""Server-side syntax highlighting with Pygments: the page gets markup and a stylesheet, no script."""

from __future__ import annotations

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, get_lexer_for_filename, guess_lexer_for_filename
from pygments.util import ClassNotFound

FORMATTER_OPTIONS = {"linenos": "table", "cssclass": "code", "wrapcode": True}


def to_html(path: str, text: str) -> str:
    name = path.rsplit("/", 1)[-1]
    try:
        lexer = get_lexer_for_filename(name, stripnl=False)
    except ClassNotFound:
        try:
            lexer = guess_lexer_for_filename(name, text[:4096], stripnl=False)
        except ClassNotFound:
            lexer = TextLexer(stripnl=False)
    return highlight(text, lexer, HtmlFormatter(**FORMATTER_OPTIONS))


def stylesheet() -> str:
    """The CSS of the highlighting (static/web/pygments.css is this, written by `manage.py`-free code)."""
    return HtmlFormatter(**FORMATTER_OPTIONS).get_style_defs(".code")
