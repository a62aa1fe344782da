"""Reading the rollups for the API and the pages: a handful of rows per day, never tickets.

Medians and 90th percentiles are computed from the day's samples like PostgreSQL's
``percentile_cont`` (linear interpolation between the two nearest ranks), in SQL with window
functions so that only two rows per figure leave the database.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.reports import histogram
from helpdesk.reports.models import (
    InboxDayPublic,
    OperatorDayPublic,
    ReportHistogram,
    ReportInboxDay,
    ReportOperatorDay,
    ReportSample,
    ReportSpread,
)
from helpdesk.reports.rollup import OPEN_STATUSES
from helpdesk.tickets.models import Ticket

MAX_DAYS = 366
PERCENTS = (50, 90)
METRICS = ("first_response", "resolution")
Key = tuple[Any, ...]


@dataclass
class Spread:
    """Median and 90th percentile of one group's samples, per metric."""

    values: dict[str, dict[int, float]] = field(default_factory=dict)

    def get(self, metric: str, percent: int) -> float | None:
        return self.values.get(metric, {}).get(percent)


async def percentiles(session: AsyncSession, *, start: date, end: date, by: Sequence[str],
                      inbox_id: int | None = None, user_id: int | None = None) -> dict[Key, Spread]:
    """Median and p90 of the samples in [start, end], grouped by the ``by`` columns (plus metric)."""
    sample = ReportSample.__table__.c  # type: ignore[attr-defined]
    groups = [sample.metric, *(sample[name] for name in by)]
    ranked = (select(*groups, sample.seconds,
                     func.row_number().over(partition_by=groups, order_by=sample.seconds).label("rn"),
                     func.count().over(partition_by=groups).label("n"))
              .where(*_sample_filter(start, end, inbox_id, user_id)).subquery())
    # The 0-based rank below each percentile is floor((n - 1) * p / 100): rows lo+1 and lo+2.
    picks = [ranked.c.rn == (ranked.c.n - 1) * p // 100 + offset for p in PERCENTS for offset in (1, 2)]
    stmt: Select[Any] = select(ranked).where(or_(*picks))
    found: dict[Key, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    rows: dict[tuple[Key, str], dict[int, float]] = defaultdict(dict)
    for row in (await session.execute(stmt)).mappings():
        rows[(tuple(row[name] for name in by), row["metric"])][int(row["rn"])] = float(row["seconds"])
        rows[(tuple(row[name] for name in by), row["metric"])][0] = int(row["n"])
    for (key, metric), ranks in rows.items():
        n = int(ranks[0])
        found[key][metric] = {p: _interpolate(ranks, n, p) for p in PERCENTS}
    return {key: Spread(dict(metrics)) for key, metrics in found.items()}


def _sample_filter(start: date, end: date, inbox_id: int | None,
                   user_id: int | None) -> list[ColumnElement[bool]]:
    # The metric leads the index: naming both lets the database seek instead of scanning it.
    clauses = [col(ReportSample.metric).in_(METRICS), col(ReportSample.day) >= start,
               col(ReportSample.day) <= end, col(ReportSample.user_id) != 0]
    if inbox_id is not None:
        clauses.append(col(ReportSample.inbox_id) == inbox_id)
    if user_id is not None:
        clauses.append(col(ReportSample.user_id) == user_id)
    return clauses


def _interpolate(ranks: dict[int, float], n: int, percent: int) -> float:
    position = (n - 1) * percent / 100
    low = int(position)
    below = ranks[low + 1]
    above = ranks.get(low + 2, below)
    return below + (position - low) * (above - below)


def interpolated(values: Sequence[float], percent: int) -> float | None:
    """The same percentile computed in Python (for totals and tests)."""
    if not values:
        return None
    ordered = sorted(values)
    return _interpolate({i + 1: v for i, v in enumerate(ordered)}, len(ordered), percent)


# ---- operators ---------------------------------------------------------------------------


async def operator_days(session: AsyncSession, *, start: date, end: date, names: dict[int, str],
                        inbox_id: int | None = None) -> list[OperatorDayPublic]:
    """One item per operator per day with work in [start, end], oldest day first."""
    day_col, user_col = col(ReportOperatorDay.day), col(ReportOperatorDay.user_id)
    stmt = (select(day_col, user_col, *_operator_sums())
            .where(day_col >= start, day_col <= end).group_by(day_col, user_col))
    if inbox_id is not None:
        stmt = stmt.where(col(ReportOperatorDay.inbox_id) == inbox_id)
    sums = {(row[0], row[1]): row[2:] for row in (await session.execute(stmt)).all()}
    spreads = await _day_spreads(session, start, end, inbox_id or 0)
    keys = sorted(set(sums) | set(spreads), key=lambda k: (k[0], names.get(k[1], ""), k[1]))
    return [_operator_item(key[1], names, sums.get(key), spreads.get(key), day=key[0])
            for key in keys]


async def _day_spreads(session: AsyncSession, start: date, end: date,
                       inbox_id: int) -> dict[Key, Spread]:
    """Each operator-day's medians as the rollup ranked them (``inbox_id`` 0: all inboxes)."""
    s = ReportSpread
    stmt = select(col(s.day), col(s.user_id), col(s.metric), col(s.p50), col(s.p90)).where(
        col(s.metric).in_(METRICS), col(s.day) >= start, col(s.day) <= end,
        col(s.inbox_id) == inbox_id)
    found: dict[Key, Spread] = defaultdict(Spread)
    for day, user_id, metric, p50, p90 in (await session.execute(stmt)).all():
        found[(day, user_id)].values[metric] = {50: p50, 90: p90}
    return dict(found)


async def operator_totals(session: AsyncSession, *, start: date, end: date, names: dict[int, str],
                          inbox_id: int | None = None) -> list[OperatorDayPublic]:
    """One item per operator over the whole range (``date`` is the range's first day).

    Without an inbox the medians come from the day histograms (within 5 %, whatever the
    range's length); for one inbox from its samples, exactly.
    """
    user_col = col(ReportOperatorDay.user_id)
    stmt = (select(user_col, *_operator_sums())
            .where(col(ReportOperatorDay.day) >= start, col(ReportOperatorDay.day) <= end)
            .group_by(user_col))
    if inbox_id is not None:
        stmt = stmt.where(col(ReportOperatorDay.inbox_id) == inbox_id)
    sums = {(row[0],): row[1:] for row in (await session.execute(stmt)).all()}
    spreads = (await percentiles(session, start=start, end=end, by=("user_id",), inbox_id=inbox_id)
               if inbox_id is not None else await _histogram_spreads(session, start, end))
    keys = sorted(set(sums) | set(spreads), key=lambda k: (names.get(k[0], ""), k[0]))
    return [_operator_item(key[0], names, sums.get(key), spreads.get(key), day=start)
            for key in keys]


async def _histogram_spreads(session: AsyncSession, start: date, end: date) -> dict[Key, Spread]:
    h = ReportHistogram
    stmt = (select(col(h.user_id), col(h.metric), col(h.bucket), func.sum(h.n))
            .where(col(h.metric).in_(METRICS), col(h.day) >= start, col(h.day) <= end,
                   col(h.user_id) != 0)
            .group_by(col(h.user_id), col(h.metric), col(h.bucket))
            .order_by(col(h.user_id), col(h.metric), col(h.bucket)))
    counts: dict[tuple[int, str], list[tuple[int, int]]] = defaultdict(list)
    for user_id, metric, index, n in (await session.execute(stmt)).all():
        counts[(user_id, metric)].append((index, int(n)))
    found: dict[Key, Spread] = defaultdict(Spread)
    for (user_id, metric), pairs in counts.items():
        found[(user_id,)].values[metric] = histogram.percentiles(pairs, PERCENTS)
    return dict(found)


def _operator_sums() -> list[Any]:
    return [func.sum(ReportOperatorDay.handled), func.sum(ReportOperatorDay.replies),
            func.sum(ReportOperatorDay.calls_answered), func.sum(ReportOperatorDay.handling_seconds)]


def _operator_item(user_id: int, names: dict[int, str], sums: Sequence[Any] | None,
                   spread: Spread | None, *, day: date) -> OperatorDayPublic:
    handled, replies, calls, handling = sums or (0, 0, 0, 0.0)
    spread = spread or Spread()
    return OperatorDayPublic(
        user_id=user_id, name=names.get(user_id, f"#{user_id}"), date=day, handled=int(handled or 0),
        replies=int(replies or 0), calls_answered=int(calls or 0),
        handling_seconds=round(float(handling or 0), 3),
        first_response_seconds_median=spread.get("first_response", 50),
        first_response_seconds_p90=spread.get("first_response", 90),
        resolution_seconds_median=spread.get("resolution", 50),
        resolution_seconds_p90=spread.get("resolution", 90))


# ---- inboxes -----------------------------------------------------------------------------


async def inbox_days(session: AsyncSession, *, start: date, end: date, names: dict[int, str],
                     inbox_ids: set[int] | None = None) -> list[InboxDayPublic]:
    """One item per inbox per day in [start, end]; a quiet day carries the backlog forward."""
    day_col = col(ReportInboxDay.day)
    stmt = select(ReportInboxDay).where(day_col >= start, day_col <= end)
    if inbox_ids is not None:
        stmt = stmt.where(col(ReportInboxDay.inbox_id).in_(inbox_ids))
    rows = {(r.day, r.inbox_id): r for r in await session.scalars(stmt)}
    before = await _latest_before(session, start, inbox_ids)
    items = []
    for inbox_id in sorted(set(before) | {key[1] for key in rows}, key=lambda i: (names.get(i, ""), i)):
        carried = before.get(inbox_id)
        for day in _days(start, end):
            row = rows.get((day, inbox_id))
            items.append(_inbox_item(inbox_id, day, names, row, carried))
            carried = row or carried
    return sorted(items, key=lambda item: item.date)


async def _latest_before(session: AsyncSession, start: date,
                         inbox_ids: set[int] | None) -> dict[int, ReportInboxDay]:
    """Each inbox's last row before ``start`` (its backlog then), one indexed query."""
    latest = (select(col(ReportInboxDay.inbox_id), func.max(ReportInboxDay.day).label("day"))
              .where(col(ReportInboxDay.day) < start).group_by(col(ReportInboxDay.inbox_id)))
    if inbox_ids is not None:
        latest = latest.where(col(ReportInboxDay.inbox_id).in_(inbox_ids))
    sub = latest.subquery()
    stmt = select(ReportInboxDay).join(sub, and_(col(ReportInboxDay.inbox_id) == sub.c.inbox_id,
                                                 col(ReportInboxDay.day) == sub.c.day))
    return {row.inbox_id: row for row in await session.scalars(stmt)}


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def _inbox_item(inbox_id: int, day: date, names: dict[int, str], row: ReportInboxDay | None,
                carried: ReportInboxDay | None) -> InboxDayPublic:
    state = row or carried
    backlog = {s: int(getattr(state, f"backlog_{s}")) if state else 0 for s in OPEN_STATUSES}
    offered = row.calls_offered if row else 0
    answered = row.calls_answered if row else 0
    return InboxDayPublic(
        inbox_id=inbox_id, name=names.get(inbox_id, f"#{inbox_id}"), date=day,
        created=row.created if row else 0, resolved=row.resolved if row else 0, backlog=backlog,
        oldest_waiting_at=state.oldest_waiting_at if state else None,
        sla_met_ratio=_ratio(row.sla_met, row.sla_total) if row else None,
        calls_offered=offered, calls_answered=answered,
        calls_abandoned=row.calls_abandoned if row else 0,
        service_level_20s=_ratio(row.calls_answered_20s, offered) if row else None,
        average_wait_seconds=_ratio(row.wait_seconds, answered) if row else None,
        average_talk_seconds=_ratio(row.talk_seconds, answered) if row else None)


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def clamp_range(start: date, end: date, today: date) -> tuple[date, date]:
    """The range asked for, ending no later than today and at most ``MAX_DAYS`` long."""
    end = min(end, today)
    start = min(start, end)
    return max(start, end - timedelta(days=MAX_DAYS - 1)), end



@dataclass
class InboxTotals:
    """One inbox over a range: sums of the days, the backlog as the last day left it."""

    inbox_id: int
    name: str
    created: int = 0
    resolved: int = 0
    backlog: dict[str, int] = field(default_factory=dict)
    oldest_waiting_at: Any = None
    sla_met_ratio: float | None = None
    calls_offered: int = 0
    calls_answered: int = 0
    calls_abandoned: int = 0
    service_level_20s: float | None = None
    average_wait_seconds: float | None = None
    average_talk_seconds: float | None = None


async def inbox_totals(session: AsyncSession, *, start: date, end: date,
                       days: list[InboxDayPublic], names: dict[int, str]) -> list[InboxTotals]:
    """Each inbox over [start, end] (``days`` are its day items, for the backlog at the end)."""
    r = ReportInboxDay
    stmt = (select(col(r.inbox_id), func.sum(r.created), func.sum(r.resolved), func.sum(r.sla_met),
                   func.sum(r.sla_total), func.sum(r.calls_offered), func.sum(r.calls_answered),
                   func.sum(r.calls_abandoned), func.sum(r.calls_answered_20s),
                   func.sum(r.wait_seconds), func.sum(r.talk_seconds))
            .where(col(r.day) >= start, col(r.day) <= end).group_by(col(r.inbox_id)))
    sums = {row[0]: row[1:] for row in (await session.execute(stmt)).all()}
    last = {item.inbox_id: item for item in days}  # days come oldest first: the last one wins
    totals = []
    for inbox_id in sorted(set(sums) | set(last), key=lambda i: (names.get(i, ""), i)):
        created, resolved, met, sla, offered, answered, abandoned, fast, wait, talk = (
            int(v or 0) if n < 8 else float(v or 0) for n, v in enumerate(sums.get(inbox_id, (0,) * 10)))
        end_of = last.get(inbox_id)
        totals.append(InboxTotals(
            inbox_id=inbox_id, name=names.get(inbox_id, f"#{inbox_id}"), created=int(created),
            resolved=int(resolved), backlog=end_of.backlog if end_of else {},
            oldest_waiting_at=end_of.oldest_waiting_at if end_of else None,
            sla_met_ratio=_ratio(met, sla), calls_offered=int(offered), calls_answered=int(answered),
            calls_abandoned=int(abandoned), service_level_20s=_ratio(fast, offered),
            average_wait_seconds=_ratio(wait, answered), average_talk_seconds=_ratio(talk, answered)))
    return totals


@dataclass(frozen=True)
class SampleTicket:
    ticket_id: int
    number: int
    subject: str
    status: str
    day: date
    seconds: float


async def sample_tickets(session: AsyncSession, *, metric: str, start: date, end: date,
                         user_id: int | None, inbox_id: int | None,
                         limit: int = 200) -> list[SampleTicket]:
    """The tickets behind a figure (a resolution or first-response count), slowest first."""
    stmt = (select(col(ReportSample.ticket_id), col(Ticket.number), col(Ticket.subject),
                   col(Ticket.status), col(ReportSample.day), col(ReportSample.seconds))
            .join(Ticket, col(Ticket.id) == col(ReportSample.ticket_id))
            .where(col(ReportSample.metric) == metric, col(ReportSample.day) >= start,
                   col(ReportSample.day) <= end)
            .order_by(col(ReportSample.seconds).desc(), col(ReportSample.id)).limit(limit))
    if user_id is not None:
        stmt = stmt.where(col(ReportSample.user_id) == user_id)
    if inbox_id is not None:
        stmt = stmt.where(col(ReportSample.inbox_id) == inbox_id)
    return [SampleTicket(row[0], row[1], row[2], str(row[3]), row[4], row[5])
            for row in (await session.execute(stmt)).all()]
