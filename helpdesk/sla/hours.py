"""Business time: when the shop is open, and deadlines counted in open minutes only.

Pure functions over a ``Calendar`` (time zone, weekly hours, public holidays, the shop's closed
days). Everything takes and returns aware datetimes; nothing here reads the clock or a database,
so deadlines are tested with any instant.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from helpdesk.config import DEFAULT_REGION

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# A calendar with no open minute in this many days is treated as never open (no endless walk).
MAX_DAYS_AHEAD = 3 * 366
MAX_DAYS_KEPT = 4 * 366  # a calendar's worked-out days, more than any walk visits

Interval = tuple[int, int]  # minutes from local midnight, start < end <= 1440


@dataclass(frozen=True)
class Calendar:
    """When business minutes pass: weekly hours in ``timezone`` less holidays and closed days."""

    timezone: str = "Asia/Tokyo"
    # Weekday (0 = Monday) to its open intervals, sorted and not overlapping.
    hours: dict[int, tuple[Interval, ...]] = field(default_factory=dict)
    public_holidays: str | None = DEFAULT_REGION
    closed_days: frozenset[date] = frozenset()
    # Each local day's open periods, worked out once: every message's deadlines walk the same
    # few days (the policy, and with it this calendar, is kept while its settings stand).
    _days: dict[date, tuple[tuple[datetime, datetime], ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_closed(self, day: date) -> bool:
        """Whether the shop is shut all of ``day`` (a holiday or one of its own closed days)."""
        if day in self.closed_days:
            return True
        return self.public_holidays is not None and day in _holidays(self.public_holidays, day.year)

    def open_intervals(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """The open periods of a local ``day`` as aware datetimes (empty when closed)."""
        found = self._days.get(day)
        if found is None:
            if len(self._days) >= MAX_DAYS_KEPT:
                self._days.clear()
            found = self._days[day] = self._work_out(day)
        return found

    def _work_out(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        if self.is_closed(day):
            return ()
        zone, midnight = self.zone, datetime(day.year, day.month, day.day)
        return tuple(((midnight + timedelta(minutes=start)).replace(tzinfo=zone),
                      (midnight + timedelta(minutes=end)).replace(tzinfo=zone))
                     for start, end in self.hours.get(day.weekday(), ()))

    def periods_from(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Open periods that end after ``start``, clipped to begin no earlier than it, in order."""
        day = start.astimezone(self.zone).date()
        for offset in range(MAX_DAYS_AHEAD):
            for begin, end in self.open_intervals(day + timedelta(days=offset)):
                if end > start:
                    yield max(begin, start), end

    def periods_before(self, end: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Open periods that begin before ``end``, clipped to finish no later than it, latest first."""
        day = end.astimezone(self.zone).date()
        for offset in range(MAX_DAYS_AHEAD):
            for begin, finish in reversed(self.open_intervals(day - timedelta(days=offset))):
                if begin < end:
                    yield begin, min(finish, end)


@lru_cache(maxsize=64)
def _holidays(country: str, year: int, language: str | None = None) -> holidays.HolidayBase:
    return holidays.country_holidays(country, years=year, language=language)


def known_country(country: str) -> bool:
    """Whether public holidays are known for ``country`` (an ISO 3166 code such as JP)."""
    return country.upper() in holidays.list_supported_countries()


def add_business_minutes(calendar: Calendar, start: datetime, minutes: float) -> datetime | None:
    """The instant ``minutes`` open minutes after ``start``; None if the shop never opens."""
    left = timedelta(minutes=minutes)
    if left <= timedelta(0):
        return start
    for begin, end in calendar.periods_from(start):
        if end - begin >= left:
            return (begin + left).astimezone(start.tzinfo)
        left -= end - begin
    return None


def shift_business_minutes(calendar: Calendar, at: datetime, minutes: float) -> datetime | None:
    """``at`` moved by ``minutes`` open minutes, later when positive, earlier when negative."""
    if minutes >= 0:
        return add_business_minutes(calendar, at, minutes)
    left = timedelta(minutes=-minutes)
    for begin, end in calendar.periods_before(at):
        if end - begin >= left:
            return (end - left).astimezone(at.tzinfo)
        left -= end - begin
    return None


def business_minutes_between(calendar: Calendar, start: datetime, end: datetime) -> float:
    """Open minutes from ``start`` to ``end`` (0 when ``end`` is not later)."""
    total = timedelta(0)
    if end <= start:
        return 0.0
    for begin, finish in calendar.periods_from(start):
        if begin >= end:
            break
        total += min(finish, end) - begin
    return total / timedelta(minutes=1)


def parse_clock(text: str) -> int:
    """``"09:30"`` as minutes from midnight (``"24:00"`` allowed as the end of a day)."""
    hours, minutes = text.split(":")
    value = int(hours) * 60 + int(minutes)
    if len(hours) != 2 or len(minutes) != 2 or int(minutes) > 59 or value > 1440:
        raise ValueError(f"not a time of day: {text}")
    return value


def holiday_name(calendar: Calendar, day: date, language: str | None = None) -> str | None:
    """The public holiday's name on ``day`` in ``language`` when known (None: not a holiday)."""
    if calendar.public_holidays is None:
        return None
    table = _holidays(calendar.public_holidays, day.year)
    if language is not None and language in table.supported_languages:
        table = _holidays(calendar.public_holidays, day.year, language)
    found = table.get(day)
    return str(found) if found else None
