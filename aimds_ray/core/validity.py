"""Unicode validity checks shared by every front (CLI, HTTP, HTTP/3, re-scoring). Standard library only, so the
HTTP/3 proxy can use them without loading the detector."""

from __future__ import annotations

import json
import re
from typing import Any


def lone_surrogate(value: str) -> int:
    """Index of the first lone surrogate (U+D800-U+DFFF) in `value`, or -1. Such a `str` is not valid Unicode (no
    UTF-8 encoding exists); JSON escapes like "\\ud800" and argv bytes decoded with surrogateescape produce them."""
    if value.isascii():
        return -1
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        return e.start
    return -1


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def json_has_lone_surrogate(raw: bytes, obj: Any) -> bool:
    """True when the JSON text `raw` (decoded to `obj`) holds a lone surrogate escape such as "\\ud800": valid JSON,
    but not valid Unicode, and every later UTF-8 encoding (responses, logs, the graph spool) would fail on it.
    Costs nothing for bodies without a surrogate escape; escaped pairs (emoji) are fine."""
    if not _SURROGATE_ESCAPE.search(raw):
        return False
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
