"""MkDocs hook: show ``\\|`` inside code in table cells as ``|``.

GitHub needs a pipe inside a code span of a table cell escaped as ``\\|``; Python-Markdown keeps
the backslash. Dropping it here lets one Markdown source read right in both places.
"""

from __future__ import annotations

import re
from typing import Any

CELL = re.compile(r"<(td|th)\b[^>]*>.*?</\1>", re.DOTALL)
CODE = re.compile(r"<code>[^<]*</code>")


def _cell(match: re.Match[str]) -> str:
    return CODE.sub(lambda code: code.group(0).replace("\\|", "|"), match.group(0))


def on_page_content(html: str, **kwargs: Any) -> str:
    """Unescape ``\\|`` inside the inline code of every table cell of the rendered page."""
    return CELL.sub(_cell, html)
