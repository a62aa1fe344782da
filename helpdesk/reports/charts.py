"""Chart geometry for the reports page; the template draws it as SVG (no script, no build)."""

from dataclasses import dataclass
from datetime import date

from helpdesk.reports.calendar import ReportCalendar
from helpdesk.reports.models import InboxDayPublic

PLOT_HEIGHT = 160


@dataclass(frozen=True)
class DayColumn:
    day: date
    x: int
    created: int
    resolved: int
    created_height: int
    resolved_height: int
    business_day: bool


@dataclass(frozen=True)
class DailyChart:
    columns: list[DayColumn]
    width: int
    height: int
    peak: int
    step: int


def daily_chart(days: list[InboxDayPublic], calendar: ReportCalendar, *,
                width: int = 640) -> DailyChart:
    """Created and resolved tickets per day, all inboxes together, scaled to ``PLOT_HEIGHT``."""
    per_day: dict[date, list[int]] = {}
    for item in days:
        created_resolved = per_day.setdefault(item.date, [0, 0])
        created_resolved[0] += item.created
        created_resolved[1] += item.resolved
    peak = max((max(v) for v in per_day.values()), default=0) or 1
    step = max(8, min(48, width // max(1, len(per_day))))
    columns = [DayColumn(day=day, x=index * step, created=c, resolved=r,
                         created_height=round(c * PLOT_HEIGHT / peak),
                         resolved_height=round(r * PLOT_HEIGHT / peak),
                         business_day=calendar.is_business_day(day))
               for index, (day, (c, r)) in enumerate(sorted(per_day.items()))]
    return DailyChart(columns=columns, width=max(width, step * len(columns)), height=PLOT_HEIGHT,
                      peak=peak, step=step)
