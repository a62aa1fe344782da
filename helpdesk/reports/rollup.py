"""Report rollups folded from the event log, exactly once.

Each pass reads the events after the applied watermark (the ``report_applied`` counter), folds
them into the day rows and moves the watermark, all in one transaction: an event is counted
once whether the pass commits or rolls back, in whichever process it runs. Seq order is commit
order (see realtime.log), so nothing committed later can appear behind the watermark.
``rebuild`` empties the rollups and folds the whole log again with the same code.

Ticket events carry the ticket as it stood; ``report_ticket`` keeps what the previous one said,
and the differences are the figures: a new status moves the backlog, 対応中 time is added to its
operator when the ticket leaves 対応中 (on the day it leaves), a first ``first_response_at`` is a
first-response sample and a move to resolved a resolution sample. Calls add their talk when
they end and their after-call work when the wrap-up is submitted (``call.wrapup_done``).
"""

import logging
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.realtime import log as event_log
from helpdesk.realtime.models import Event
from helpdesk.reports import histogram
from helpdesk.reports.calendar import ReportCalendar, report_calendar
from helpdesk.reports.models import (
    APPLIED,
    ROLLUP_MODELS,
    ReportBacklog,
    ReportHistogram,
    ReportInboxDay,
    ReportOperatorDay,
    ReportSample,
    ReportSpread,
    ReportTicket,
)
from helpdesk.storage.counters import raise_counter, read_counter
from helpdesk.storage.locks import try_serialize_on

log = logging.getLogger(__name__)
BATCH = 1000
LOCK = "report_rollup"
OPEN_STATUSES = ("unhandled", "in_progress", "pending")
SERVICE_LEVEL_SECONDS = 20
TICKET_EVENTS = ("ticket.created", "ticket.updated", "ticket.assigned")
ROLLUP_TABLES = ROLLUP_MODELS


async def apply_pending(session: AsyncSession, calendar: ReportCalendar, *, limit: int = BATCH) -> int:
    """Fold up to ``limit`` events after the watermark into the rollups; how many (caller commits)."""
    if not await try_serialize_on(session, LOCK):
        return 0  # another process is folding now
    after = await read_counter(session, APPLIED)
    batch = await event_log.events_after(session, after, limit)
    if not batch:
        return 0
    folder = Folder(session, calendar)
    await folder.load_tickets(batch)
    for event in batch:
        try:
            await folder.apply(event)
        except (KeyError, TypeError, ValueError):  # a malformed row must not stop the reports
            log.warning("report rollup skipped event %s (%s): unexpected data", event.seq, event.type)
    await folder.finish()
    await raise_counter(session, APPLIED, batch[-1].seq)
    return len(batch)


async def prune_folded_events(session: AsyncSession, *, before: datetime, limit: int) -> int:
    """Retention's pruning of the log, which first folds what it is about to delete: an event
    is never gone before the rollups have counted it."""
    await apply_pending(session, await report_calendar(session), limit=limit)
    applied = await read_counter(session, APPLIED)
    return await event_log.prune_events(session, before=before, limit=limit, through=applied)


async def behind(session: AsyncSession) -> bool:
    """Whether the log holds events the rollups have not folded yet (a cheap read)."""
    return await event_log.highest_seq(session) > await read_counter(session, APPLIED)


async def reset(session: AsyncSession) -> None:
    """Empty the rollups and put the watermark back before the log (caller commits)."""
    for table in ROLLUP_TABLES:
        await session.execute(delete(table))
    await session.execute(text("DELETE FROM counter WHERE name = :name"), {"name": APPLIED})


class Folder:
    """One pass: the rows it touches, loaded once and changed in memory until flushed."""

    def __init__(self, session: AsyncSession, calendar: ReportCalendar) -> None:
        self.session = session
        self.calendar = calendar
        self.tickets: dict[int, ReportTicket] = {}
        self.operator_days: dict[tuple[date, int, int], ReportOperatorDay] = {}
        self.inbox_days: dict[tuple[date, int], ReportInboxDay] = {}
        self.backlog: dict[tuple[int, str], ReportBacklog] = {}
        self.histograms: dict[tuple[str, date, int, int], ReportHistogram] = {}
        self.inbox_day_now: dict[int, date] = {}  # the last day each inbox had an event on
        self.spread_groups: set[tuple[str, date, int]] = set()  # operator-days with new samples

    async def load_tickets(self, batch: list[Event]) -> None:
        ids = {_ticket_id(e) for e in batch} - {None}
        if ids:
            rows = await self.session.scalars(
                select(ReportTicket).where(col(ReportTicket.ticket_id).in_(ids)))
            self.tickets.update({row.ticket_id: row for row in rows})

    async def apply(self, event: Event) -> None:
        """Fold one event."""
        if event.type in TICKET_EVENTS:
            await self._ticket(event.at, event.data["ticket"], created=event.type == "ticket.created")
        elif event.type == "message.created":
            await self._message(event.at, event.data, event.inbox_id or 0)
        elif event.type == "call.ended":
            await self._call_ended(event.at, event.data["call"])
        elif event.type == "call.wrapup_done":
            await self._wrapup_done(event.at, event.data, event.inbox_id or 0)

    async def finish(self) -> None:
        """Write each touched inbox's backlog into its latest day, rank the operator-days that
        gained samples, then flush."""
        for inbox_id, day in self.inbox_day_now.items():
            await self._close_day(inbox_id, day)
        await self.session.flush()
        by_day: dict[tuple[str, date], set[int]] = {}
        for metric, day, user_id in self.spread_groups:
            by_day.setdefault((metric, day), set()).add(user_id)
        for (metric, day), users in sorted(by_day.items()):
            await self._respread(metric, day, users)
        await self.session.flush()

    async def _respread(self, metric: str, day: date, users: set[int]) -> None:
        """Rank these operators' samples of the day again (tens to hundreds each, read off the
        index in one statement) into exact medians: all inboxes together and each inbox alone."""
        rows = (await self.session.execute(
            select(col(ReportSample.user_id), col(ReportSample.inbox_id), col(ReportSample.seconds))
            .where(col(ReportSample.metric) == metric, col(ReportSample.day) == day,
                   col(ReportSample.user_id).in_(users))
            .order_by(col(ReportSample.user_id), col(ReportSample.seconds)))).all()
        ranked: dict[tuple[int, int], list[float]] = {}
        for user_id, inbox_id, seconds in rows:  # in order of seconds within each operator
            ranked.setdefault((user_id, 0), []).append(seconds)
            ranked.setdefault((user_id, inbox_id), []).append(seconds)
        kept = {(row.user_id, row.inbox_id): row for row in await self.session.scalars(
            select(ReportSpread).where(col(ReportSpread.metric) == metric,
                                       col(ReportSpread.day) == day,
                                       col(ReportSpread.user_id).in_(users)))}
        for (user_id, inbox_id), ordered in ranked.items():
            row = kept.get((user_id, inbox_id))
            if row is None:
                row = ReportSpread(metric=metric, day=day, user_id=user_id, inbox_id=inbox_id)
                self.session.add(row)
            row.n, row.p50, row.p90 = (len(ordered), histogram.exact_percentile(ordered, 50),
                                       histogram.exact_percentile(ordered, 90))

    # ---- tickets -----------------------------------------------------------------------

    async def _ticket(self, at: datetime, snap: dict[str, Any], *, created: bool) -> None:
        ticket_id, status, assignee = int(snap["id"]), str(snap["status"]), snap.get("assignee_id")
        inbox_id = int(snap["inbox_id"])
        day = await self._inbox_touch(inbox_id, at)
        prev = self.tickets.get(ticket_id)
        if prev is None:
            prev = ReportTicket(ticket_id=ticket_id, inbox_id=inbox_id, status=status,
                                assignee_id=assignee, created_at=_time(snap["created_at"]),
                                status_since=at)
            self.session.add(prev)
            self.tickets[ticket_id] = prev
            await self._move_backlog(None, (inbox_id, status))
            if created:
                (await self._inbox_day(day, inbox_id)).created += 1
        elif status != prev.status or assignee != prev.assignee_id or inbox_id != prev.inbox_id:
            await self._left_state(prev, at, day)
            if status != prev.status or inbox_id != prev.inbox_id:
                await self._move_backlog((prev.inbox_id, prev.status), (inbox_id, status))
            if status == "resolved" and prev.status != "resolved":
                await self._resolved(prev, at, day, inbox_id, assignee, snap)
            prev.status, prev.assignee_id, prev.inbox_id, prev.status_since = (
                status, assignee, inbox_id, at)
        if not prev.responded and snap.get("first_response_at"):
            prev.responded = True
            seconds = (_time(snap["first_response_at"]) - prev.created_at).total_seconds()
            await self._sample("first_response", day, assignee or 0, inbox_id, ticket_id, seconds)

    async def _left_state(self, prev: ReportTicket, at: datetime, day: date) -> None:
        """対応中 time ends when the status or the assignee changes: count it for its operator."""
        if prev.status == "in_progress" and prev.assignee_id is not None:
            row = await self._operator_day(day, prev.assignee_id, prev.inbox_id)
            row.handling_seconds += max(0.0, (at - prev.status_since).total_seconds())

    async def _resolved(self, prev: ReportTicket, at: datetime, day: date, inbox_id: int,
                        assignee: int | None, snap: dict[str, Any]) -> None:
        inbox_day = await self._inbox_day(day, inbox_id)
        inbox_day.resolved += 1
        if assignee is not None:
            (await self._operator_day(day, assignee, inbox_id)).handled += 1
        await self._sample("resolution", day, assignee or 0, inbox_id, prev.ticket_id,
                     (at - prev.created_at).total_seconds())
        # SLA attainment counts only once tickets carry SLA state (``sla_breached``, added with
        # the SLA settings); until then the ratio stays unknown rather than a made-up 100 %.
        if "sla_breached" in snap:
            inbox_day.sla_total += 1
            inbox_day.sla_met += 0 if snap["sla_breached"] else 1

    async def _move_backlog(self, source: tuple[int, str] | None, target: tuple[int, str]) -> None:
        if source is not None:
            (await self._backlog(*source)).n -= 1
        (await self._backlog(*target)).n += 1

    # ---- messages and calls ------------------------------------------------------------

    async def _message(self, at: datetime, data: dict[str, Any], inbox_id: int) -> None:
        author = data.get("author_id")
        if author is None:
            return
        if data.get("direction") == "out" and not data.get("internal"):
            (await self._operator_day(self.calendar.day_of(at), author, inbox_id)).replies += 1

    async def _wrapup_done(self, at: datetime, data: dict[str, Any], inbox_id: int) -> None:
        """After-call work as the wrap-up timed it (hang-up to submit), on the day of the submit;
        the talk it also carries was counted when the call ended."""
        operator, seconds = data.get("operator_id"), data.get("acw_seconds")
        if operator is None or seconds is None:
            return
        row = await self._operator_day(self.calendar.day_of(at), int(operator), inbox_id)
        row.handling_seconds += max(0.0, float(seconds))

    async def _call_ended(self, at: datetime, call: dict[str, Any]) -> None:
        inbox_id, operator = int(call["inbox_id"]), call.get("operator_id")
        day = self.calendar.day_of(at)
        started, answered_at = _time(call["started_at"]), _optional_time(call.get("answered_at"))
        ended = _optional_time(call.get("ended_at")) or at
        answered = answered_at is not None and operator is not None and not call.get("voicemail")
        talk = (ended - answered_at).total_seconds() if answered and answered_at else 0.0
        if answered and operator is not None:
            row = await self._operator_day(day, int(operator), inbox_id)
            row.handling_seconds += talk
            row.calls_answered += 1 if call.get("direction") == "in" else 0
        if call.get("direction") != "in":
            return
        inbox_day = await self._inbox_day(day, inbox_id)
        inbox_day.calls_offered += 1
        if answered and answered_at is not None:
            wait = (answered_at - started).total_seconds()
            inbox_day.calls_answered += 1
            inbox_day.calls_answered_20s += 1 if wait <= SERVICE_LEVEL_SECONDS else 0
            inbox_day.wait_seconds += wait
            inbox_day.talk_seconds += talk
        else:
            inbox_day.calls_abandoned += 1

    # ---- rows --------------------------------------------------------------------------

    async def _sample(self, metric: str, day: date, user_id: int, inbox_id: int, ticket_id: int,
                      seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.session.add(ReportSample(metric=metric, day=day, user_id=user_id, inbox_id=inbox_id,
                                      ticket_id=ticket_id, seconds=seconds))
        if user_id:
            self.spread_groups.add((metric, day, user_id))
        key = (metric, day, user_id, histogram.bucket(seconds))
        row = self.histograms.get(key)
        if row is None:
            row = await self.session.get(ReportHistogram, key) or ReportHistogram(
                metric=metric, day=day, user_id=user_id, bucket=key[3])
            self.session.add(row)
            self.histograms[key] = row
        row.n += 1

    async def _inbox_touch(self, inbox_id: int, at: datetime) -> date:
        """The event's day; an inbox's earlier day is closed when its events move past it."""
        day = self.calendar.day_of(at)
        last = self.inbox_day_now.get(inbox_id)
        if last is not None and last != day:
            await self._close_day(inbox_id, last)
        self.inbox_day_now[inbox_id] = day
        return day

    async def _close_day(self, inbox_id: int, day: date) -> None:
        """Copy the inbox's backlog and oldest waiting ticket into its row for ``day``."""
        row = await self._inbox_day(day, inbox_id)
        for status in OPEN_STATUSES:
            setattr(row, f"backlog_{status}", (await self._backlog(inbox_id, status)).n)
        await self.session.flush()
        row.oldest_waiting_at = await self.session.scalar(
            select(func.min(ReportTicket.status_since))
            .where(col(ReportTicket.inbox_id) == inbox_id, col(ReportTicket.status) == "unhandled"))

    async def _operator_day(self, day: date, user_id: int, inbox_id: int) -> ReportOperatorDay:
        key = (day, user_id, inbox_id)
        row = self.operator_days.get(key)
        if row is None:
            row = await self.session.get(ReportOperatorDay, key) or ReportOperatorDay(
                day=day, user_id=user_id, inbox_id=inbox_id)
            self.session.add(row)
            self.operator_days[key] = row
        return row

    async def _inbox_day(self, day: date, inbox_id: int) -> ReportInboxDay:
        key = (day, inbox_id)
        row = self.inbox_days.get(key)
        if row is None:
            row = await self.session.get(ReportInboxDay, key) or ReportInboxDay(
                day=day, inbox_id=inbox_id)
            self.session.add(row)
            self.inbox_days[key] = row
        return row

    async def _backlog(self, inbox_id: int, status: str) -> ReportBacklog:
        key = (inbox_id, status)
        row = self.backlog.get(key)
        if row is None:
            row = await self.session.get(ReportBacklog, key) or ReportBacklog(
                inbox_id=inbox_id, status=status)
            self.session.add(row)
            self.backlog[key] = row
        return row


def _ticket_id(event: Event) -> int | None:
    ticket = event.data.get("ticket") if event.type in TICKET_EVENTS else None
    return ticket.get("id") if isinstance(ticket, dict) else None


def _time(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _optional_time(value: str | datetime | None) -> datetime | None:
    return None if value is None else _time(value)
