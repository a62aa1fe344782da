"""The input boundary: what no text from outside may carry into the core.

PostgreSQL refuses NUL in text and both databases' drivers refuse lone surrogates, so either
would surface as a 500 deep inside a transaction; a line break in a value that ends up in a mail
header would let the sender write headers of their own. These checks run once, where input
enters, and everything behind them may rely on them.
"""

import re

LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+")
# NUL and UTF-16 halves without their other half (JSON's "\ud800" decodes to one).
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def one_line(value: str) -> str:
    """A header-bound value (a subject, a name) with every line break folded to one space."""
    return LINE_BREAKS.sub(" ", value)


def one_line_or_none(value: str | None) -> str | None:
    """``one_line`` for an optional value."""
    return None if value is None else one_line(value)


def unstorable(value: str) -> bool:
    """Whether ``value`` holds NUL or a lone surrogate, which no database here can store."""
    return _UNSTORABLE.search(value) is not None
