"""Reading CSV files as Japanese shops produce them: UTF-8 with or without BOM, or Shift_JIS/CP932."""

import codecs
import contextlib
import csv
import io
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from helpdesk.errors import BadInput

SAMPLE = 1 << 20
csv.field_size_limit(1 << 20)


def detect_encoding(stream: BinaryIO) -> str:
    """``utf-8-sig`` for a BOM, ``utf-8`` when the text decodes as such, else ``cp932``.

    Reads until it has seen non-ASCII bytes (or the end), then rewinds: an ASCII-only head does
    not decide for a file whose Japanese starts further down.
    """
    stream.seek(0)
    head = stream.read(3)
    if head == codecs.BOM_UTF8:
        stream.seek(0)
        return "utf-8-sig"
    decoder = codecs.getincrementaldecoder("utf-8")()
    chunk = head
    encoding = "utf-8"
    while chunk:
        try:
            decoder.decode(chunk, final=False)
        except UnicodeDecodeError:
            encoding = "cp932"
            break
        if any(b > 0x7F for b in chunk):
            break
        chunk = stream.read(SAMPLE)
    stream.seek(0)
    return encoding


@dataclass
class CsvFile:
    encoding: str
    header: list[str]
    rows: Generator[tuple[int, list[str]], None, None]  # (line number, cells)
    text: io.TextIOWrapper

    def release(self) -> None:
        """Stop reading here and hand the binary stream back open (again: nothing happens)."""
        self.rows.close()  # a started reader detaches the stream as it closes
        with contextlib.suppress(ValueError):  # detached already
            self.text.detach()


def open_csv(stream: BinaryIO) -> CsvFile:
    """The header and an iterator of (line, cells) rows; 422 when there is no header."""
    encoding = detect_encoding(stream)
    text = io.TextIOWrapper(stream, encoding=encoding, newline="", errors="strict")
    reader = csv.reader(text)
    try:
        header = next(reader, None)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BadInput(f"the file is not readable CSV ({exc})") from exc
    if not header or not any(cell.strip() for cell in header):
        raise BadInput("the file is empty or has no header row")
    return CsvFile(encoding=encoding, header=header, rows=_rows(reader, text), text=text)


def _rows(reader: Any, text: io.TextIOWrapper) -> Generator[tuple[int, list[str]], None, None]:
    try:
        yield from _cells(reader)
    finally:
        text.detach()  # the caller owns the binary stream: closing it is not ours to do


def _cells(reader: Any) -> Iterator[tuple[int, list[str]]]:
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            raise BadInput(f"line {reader.line_num + 1}: the file mixes text encodings ({exc.reason})"
                           ) from exc
        except csv.Error as exc:
            raise BadInput(f"line {reader.line_num}: {exc}") from exc
        if any(cells):
            yield reader.line_num, cells


def check_decodes(stream: BinaryIO) -> None:
    """422 unless the whole stream decodes in its detected encoding (for bounded uploads)."""
    encoding = detect_encoding(stream)
    try:
        stream.read().decode(encoding)
    except UnicodeDecodeError as exc:
        raise BadInput(f"the file is not valid {encoding} text at byte {exc.start}") from exc
    finally:
        stream.seek(0)
