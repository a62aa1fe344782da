"""Which local day an event belongs to, and which days are business days, for the reports.

Both come from the SLA settings (their time zone, weekly hours, public holidays and closed
days), so that a report's "Monday" and its business days are the ones deadlines are counted
in. ``report_calendar`` is the one place that reads them.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.sla import service as sla
from helpdesk.sla.models import SlaConfig


def _never_closed(day: date) -> bool:
    return False


@dataclass(frozen=True)
class ReportCalendar:
    zone: tzinfo
    workdays: frozenset[int] = frozenset(range(5))  # Monday = 0
    # Whether a day is shut although its weekday is open (a public holiday or a closed day).
    closed: Callable[[date], bool] = field(default=_never_closed)

    def day_of(self, at: datetime) -> date:
        """The local calendar day ``at`` falls on."""
        return at.astimezone(self.zone).date()

    def is_business_day(self, day: date) -> bool:
        """Whether ``day`` is a working day (its weekday has hours and it is not closed)."""
        return day.weekday() in self.workdays and not self.closed(day)

    def today(self, now: datetime) -> date:
        return self.day_of(now)


def calendar_from(config: SlaConfig) -> ReportCalendar:
    """The report calendar an SLA configuration describes."""
    business = sla.calendar_of(config)
    return ReportCalendar(zone=business.zone,
                          workdays=frozenset(day for day, hours in business.hours.items() if hours),
                          closed=business.is_closed)


async def report_calendar(session: AsyncSession) -> ReportCalendar:
    """The calendar reports count days by: the saved SLA settings (or their defaults)."""
    return calendar_from(await sla.load_config(session))
