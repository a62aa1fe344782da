"""CSV that Excel opens correctly: UTF-8 with a BOM (or CP932 on request), formulas defused.

A cell that begins with ``= + - @`` (or a tab or carriage return) is read by spreadsheet
programs as a formula, so customer text such as ``=HYPERLINK(…)`` could run on the reader's
machine. Such cells get a leading apostrophe, which Excel shows as text and hides; numbers the
export writes itself (counts, seconds) are left as numbers.
"""

import codecs
import csv
import io
import unicodedata
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from datetime import date, datetime, tzinfo
from decimal import Decimal
from typing import Any, Literal

Encoding = Literal["utf-8", "cp932"]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"
# Characters JIS text commonly has in Unicode forms that CP932 spells with other code points.
_CP932_SPELLINGS = {"\u301c": "\uff5e", "\u2016": "\u2225", "\u2212": "\uff0d", "\u00a2": "\uffe0",
                    "\u00a3": "\uffe1", "\u00ac": "\uffe2", "\u2014": "\u2015", "\u00a0": " "}
REPLACEMENT = "?"


def _cp932_fallback(error: UnicodeError) -> tuple[str, int]:
    """Spell an unencodable character the way CP932 can, else as ``?`` (never an error)."""
    assert isinstance(error, UnicodeEncodeError)
    out = []
    for char in error.object[error.start:error.end]:
        candidate = _CP932_SPELLINGS.get(char) or unicodedata.normalize("NFKC", char)
        try:
            candidate.encode("cp932")
        except UnicodeEncodeError:
            candidate = REPLACEMENT
        out.append(candidate)
    return "".join(out), error.end


codecs.register_error("helpdesk-cp932", _cp932_fallback)


def neutralise(value: str) -> str:
    """Text a spreadsheet would not run as a formula."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def cell(value: Any, zone: tzinfo) -> Any:
    """One value as a CSV cell: text defused, times local without offset (Excel reads those)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, datetime):
        return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int | float | Decimal):
        return value
    if isinstance(value, list | tuple):
        return neutralise(" ".join(str(v) for v in value))
    return neutralise(str(value))


def encoder(encoding: Encoding) -> "Encoder":
    return Encoder(encoding)


class Encoder:
    """Turns rows into bytes of one encoding, the BOM first for UTF-8."""

    def __init__(self, encoding: Encoding) -> None:
        self.encoding = encoding
        self.buffer = io.StringIO()
        self.writer = csv.writer(self.buffer, lineterminator="\r\n")
        self.started = False

    def rows(self, rows: Iterable[Sequence[Any]]) -> bytes:
        """The CSV text of ``rows``, encoded."""
        self.writer.writerows(rows)
        text = self.buffer.getvalue()
        self.buffer.seek(0)
        self.buffer.truncate()
        if not self.started:
            self.started = True
            text = (BOM if self.encoding == "utf-8" else "") + text
        if self.encoding == "cp932":
            return text.encode("cp932", errors="helpdesk-cp932")
        return text.encode("utf-8")


async def stream(header: Sequence[str], batches: AsyncIterable[list[Sequence[Any]]], *,
                 encoding: Encoding, zone: tzinfo) -> AsyncIterator[bytes]:
    """A whole CSV file, one chunk per batch of rows (the header comes first, alone)."""
    out = encoder(encoding)
    yield out.rows([list(header)])
    async for batch in batches:
        yield out.rows([[cell(v, zone) for v in row] for row in batch])


def content_disposition(name: str) -> str:
    return f'attachment; filename="{name}"'
