"""The date range reports and exports take (``from``/``to``, local days), checked once."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Annotated, Literal

from fastapi import Depends, Query

from helpdesk.db import ReadSessionDep, utcnow
from helpdesk.errors import BadInput
from helpdesk.exports.csvfile import Encoding
from helpdesk.reports.calendar import ReportCalendar, report_calendar
from helpdesk.reports.queries import MAX_DAYS


@dataclass(frozen=True)
class DayRange:
    start: date
    end: date  # inclusive

    def bounds(self, zone: tzinfo) -> tuple[datetime, datetime]:
        """The range as [start, end) instants: local midnights in ``zone``."""
        first = datetime.combine(self.start, time(), zone)
        return first, datetime.combine(self.end + timedelta(days=1), time(), zone)


async def calendar_of(session: ReadSessionDep) -> ReportCalendar:
    return await report_calendar(session)


CalendarDep = Annotated[ReportCalendar, Depends(calendar_of)]


def day_range(calendar: CalendarDep,
              start: Annotated[date | None, Query(alias="from")] = None,
              end: Annotated[date | None, Query(alias="to")] = None) -> DayRange:
    """``from``/``to`` (YYYY-MM-DD, inclusive); both default to today, at most a year apart."""
    today = calendar.today(utcnow())
    end = end or (start if start and start > today else today)
    return checked_range(start or end, end)


def checked_range(start: date, end: date) -> DayRange:
    """[start, end] when it is the right way round and at most ``MAX_DAYS`` long; 422 otherwise."""
    if start > end:
        raise BadInput("from: must not be after to")
    if (end - start).days >= MAX_DAYS:
        raise BadInput(f"from: a range is at most {MAX_DAYS} days")
    return DayRange(start, end)


@dataclass(frozen=True)
class OpenRange:
    """Local days, either end open (an export without ``from``/``to`` has everything)."""

    start: date | None
    end: date | None

    def bounds(self, zone: tzinfo) -> tuple[datetime | None, datetime | None]:
        first = datetime.combine(self.start, time(), zone) if self.start else None
        last = datetime.combine(self.end + timedelta(days=1), time(), zone) if self.end else None
        return first, last


def open_range(start: Annotated[date | None, Query(alias="from")] = None,
               end: Annotated[date | None, Query(alias="to")] = None) -> OpenRange:
    """``from``/``to`` for exports, each optional."""
    if start is not None and end is not None and start > end:
        raise BadInput("from: must not be after to")
    if end is not None and end >= date(9999, 12, 31):
        raise BadInput("to: out of range")
    return OpenRange(start, end)


_ENCODINGS: dict[str, Encoding] = {"utf-8": "utf-8", "utf8": "utf-8", "cp932": "cp932",
                                   "shift_jis": "cp932", "sjis": "cp932", "windows-31j": "cp932"}


def csv_encoding(encoding: Annotated[str, Query(max_length=20)] = "utf-8") -> Encoding:
    """``utf-8`` (with a BOM, the default) or ``cp932`` (Shift_JIS as Windows writes it)."""
    found = _ENCODINGS.get(encoding.lower())
    if found is None:
        raise BadInput("encoding: utf-8 or cp932")
    return found


RangeDep = Annotated[DayRange, Depends(day_range)]
OpenRangeDep = Annotated[OpenRange, Depends(open_range)]
EncodingDep = Annotated[Encoding, Depends(csv_encoding)]
Format = Literal["json", "csv"]
