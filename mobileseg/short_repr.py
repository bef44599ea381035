"""Values quoted in error messages, cut short: a message never prints a huge value in full.

Example:
    >>> short_repr("x" * 10_000)[:12], len(short_repr("x" * 10_000)) <= LIMIT
    ("'xxxxxxxxxxx", True)
    >>> short_repr([[1, 2]] * 3)
    '[[1, 2], [1, 2], [1, 2]]'
"""

from __future__ import annotations

import reprlib

LIMIT = 200
"""At most this many characters of a value in a message."""

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxset = 4, 12, 12, 12, 12
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = LIMIT, LIMIT, 40


def short_repr(value, limit: int = LIMIT) -> str:
    """``repr(value)``, with long strings, deep nesting and long lists elided, then cut to ``limit`` characters.

    The work is bounded too: a list that aliases itself a billion times is not walked.
    """
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
