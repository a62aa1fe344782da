"""Which local day an event belongs to, and which days are business days, for the reports.

One small function answers both, so that when SLA settings (their time zone, hours and closed
days) exist the reports follow them by changing ``report_calendar`` alone. Until then: the
deployment's ``HELPDESK_TIMEZONE`` (Asia/Tokyo by default), Monday to Friday.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from helpdesk.config import Settings

DEFAULT_ZONE = "Asia/Tokyo"


@dataclass(frozen=True)
class ReportCalendar:
    zone: tzinfo
    workdays: frozenset[int] = frozenset(range(5))  # Monday = 0
    closed_days: frozenset[date] = field(default_factory=frozenset)

    def day_of(self, at: datetime) -> date:
        """The local calendar day ``at`` falls on."""
        return at.astimezone(self.zone).date()

    def is_business_day(self, day: date) -> bool:
        """Whether ``day`` is a working day (weekday open and not a closed day)."""
        return day.weekday() in self.workdays and day not in self.closed_days

    def today(self, now: datetime) -> date:
        return self.day_of(now)


def report_calendar(settings: Settings) -> ReportCalendar:
    """The calendar reports count days by (the hook for SLA settings' zone and business days)."""
    try:
        zone: tzinfo = ZoneInfo(settings.timezone or DEFAULT_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo(DEFAULT_ZONE)
    return ReportCalendar(zone=zone)
