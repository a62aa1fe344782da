"""Today's resolutions and first responses per assignee, kept in the transaction that moves a ticket.

The board shows each operator's pace since midnight in the viewer's time zone. Counting tickets
per request grows with the table, so a flush hook (the same shape as ``counts``) keeps, per
quarter hour (UTC) and assignee, how many tickets were resolved and first answered then and the
sum of their durations. Every time zone's midnight falls on a quarter hour, so "today" anywhere
is a sum over at most a day's slots.

What a ticket contributes is a function of its current state alone (resolved and when, whom it
is assigned to, when it was created and first answered), so a change subtracts the old
contribution and adds the new one, and ``recount`` can write the same rows from the tickets.
Only slots younger than ``HORIZON`` are kept: older ones are never read, their rows are deleted as
new ones are written, and a change to an old ticket touches nothing.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import bindparam, delete, func, or_, select, text
from sqlalchemy import event as sa_event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlmodel import col

from helpdesk.db import utcnow
from helpdesk.storage.types import UTCDateTime
from helpdesk.tickets.models import Status, Ticket, TicketPace

SLOT = timedelta(minutes=15)
HORIZON = timedelta(days=3)  # longer than any "today": a day plus the widest time zone offsets
_FIELDS = ("status", "assignee_id", "created_at", "resolved_at", "first_response_at")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

Key = tuple[datetime, int]
_UPSERT = text(
    "INSERT INTO ticket_pace (slot, assignee_id, resolved, resolution_us, responded, response_us) "
    "VALUES (:slot, :assignee, :resolved, :resolution_us, :responded, :response_us) "
    "ON CONFLICT (slot, assignee_id) DO UPDATE SET "
    "resolved = ticket_pace.resolved + excluded.resolved, "
    "resolution_us = ticket_pace.resolution_us + excluded.resolution_us, "
    "responded = ticket_pace.responded + excluded.responded, "
    "response_us = ticket_pace.response_us + excluded.response_us"
).bindparams(bindparam("slot", type_=UTCDateTime()))


class Snapshot(NamedTuple):
    """What of a ticket decides its contribution."""

    status: Any
    assignee_id: int | None
    created_at: datetime | None
    resolved_at: datetime | None
    first_response_at: datetime | None


@dataclass
class Pace:
    """One assignee's figures over a span of slots."""

    resolved: int = 0
    resolution_us: int = 0
    responded: int = 0
    response_us: int = 0

    @property
    def resolution_seconds(self) -> float | None:
        return self.resolution_us / self.resolved / 1e6 if self.resolved else None

    @property
    def response_seconds(self) -> float | None:
        return self.response_us / self.responded / 1e6 if self.responded else None


def slot_of(moment: datetime) -> datetime:
    """The start of the quarter hour (UTC) that ``moment`` falls in."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware - (aware - _EPOCH) % SLOT


def contribution(ticket: Snapshot, horizon: datetime) -> list[tuple[Key, Pace]]:
    """The slot rows ``ticket`` adds to, and what it adds (nothing before ``horizon``)."""
    if not ticket.assignee_id or ticket.created_at is None:
        return []
    created = slot_free(ticket.created_at)
    found = []
    if ticket.resolved_at is not None and str(ticket.status) == Status.resolved.value:
        done = slot_free(ticket.resolved_at)
        if done >= horizon:
            found.append(((slot_of(done), ticket.assignee_id), Pace(1, (done - created) // _US)))
    if ticket.first_response_at is not None:
        answered = slot_free(ticket.first_response_at)
        if answered >= horizon:
            wait = max(timedelta(0), answered - created)
            found.append(((slot_of(answered), ticket.assignee_id), Pace(0, 0, 1, wait // _US)))
    return found


def slot_free(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime (values set in code may come without a zone)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _snapshot(ticket: Ticket, *, before: bool) -> Snapshot:
    state = sa_inspect(ticket)
    values = []
    for name in _FIELDS:
        history = state.attrs[name].history
        # As in counts: the value the flush replaces, else the one the ticket has.
        if before and history.deleted:
            values.append(history.deleted[0])
        elif before and history.unchanged:
            values.append(history.unchanged[0])
        else:
            values.append(getattr(ticket, name))
    return Snapshot(*values)


def _changed(ticket: Ticket) -> bool:
    state = sa_inspect(ticket)
    return any(state.attrs[name].history.has_changes() for name in _FIELDS)


def _tally(session: Session, horizon: datetime) -> dict[Key, Pace]:
    tally: dict[Key, Pace] = {}

    def add(parts: Iterable[tuple[Key, Pace]], sign: int) -> None:
        for key, pace in parts:
            into = tally.setdefault(key, Pace())
            into.resolved += sign * pace.resolved
            into.resolution_us += sign * pace.resolution_us
            into.responded += sign * pace.responded
            into.response_us += sign * pace.response_us

    for obj in session.new:
        if isinstance(obj, Ticket):
            add(contribution(_snapshot(obj, before=False), horizon), 1)
    for obj in session.dirty:
        if isinstance(obj, Ticket) and _changed(obj):
            add(contribution(_snapshot(obj, before=True), horizon), -1)
            add(contribution(_snapshot(obj, before=False), horizon), 1)
    for obj in session.deleted:
        if isinstance(obj, Ticket):
            add(contribution(_snapshot(obj, before=True), horizon), -1)
    return {key: pace for key, pace in tally.items() if pace != Pace()}


def _apply(session: Session, _context: object, _instances: object) -> None:
    horizon = utcnow() - HORIZON
    tally = _tally(session, horizon)
    if not tally:
        return
    connection = session.connection()
    connection.execute(delete(TicketPace).where(col(TicketPace.slot) < slot_of(horizon)))
    for (slot, assignee), pace in sorted(tally.items()):
        connection.execute(_UPSERT, {"slot": slot, "assignee": assignee, "resolved": pace.resolved,
                                     "resolution_us": pace.resolution_us, "responded": pace.responded,
                                     "response_us": pace.response_us})


sa_event.listen(Session, "before_flush", _apply)


async def since(session: AsyncSession, start: datetime) -> dict[int, Pace]:
    """Each assignee's resolutions and first responses from ``start`` (a quarter hour) on."""
    rows = await session.execute(
        select(col(TicketPace.assignee_id), func.sum(col(TicketPace.resolved)),
               func.sum(col(TicketPace.resolution_us)), func.sum(col(TicketPace.responded)),
               func.sum(col(TicketPace.response_us)))
        .where(col(TicketPace.slot) >= slot_of(start)).group_by(col(TicketPace.assignee_id)))
    return {int(assignee): Pace(int(resolved), int(resolution_us), int(responded), int(response_us))
            for assignee, resolved, resolution_us, responded, response_us in rows.all()}


async def counted(session: AsyncSession, *, now: datetime | None = None) -> dict[Key, Pace]:
    """The rows the hook keeps, worked out from the tickets themselves (for checks and repairs)."""
    horizon = (now or utcnow()) - HORIZON
    rows = await session.execute(
        select(*(getattr(Ticket, name) for name in _FIELDS))
        .where(or_(col(Ticket.resolved_at) >= horizon, col(Ticket.first_response_at) >= horizon)))
    tally: dict[Key, Pace] = {}
    for row in rows.all():
        for key, pace in contribution(Snapshot(*row), horizon):
            into = tally.setdefault(key, Pace())
            into.resolved += pace.resolved
            into.resolution_us += pace.resolution_us
            into.responded += pace.responded
            into.response_us += pace.response_us
    return tally


async def kept(session: AsyncSession, *, now: datetime | None = None) -> dict[Key, Pace]:
    """The rows kept for slots within the horizon, without empty ones."""
    horizon = slot_of((now or utcnow()) - HORIZON)
    rows = await session.scalars(select(TicketPace).where(col(TicketPace.slot) >= horizon))
    return {(slot_free(r.slot), r.assignee_id): Pace(r.resolved, r.resolution_us, r.responded, r.response_us)
            for r in rows if (r.resolved, r.responded, r.resolution_us, r.response_us) != (0, 0, 0, 0)}


async def recount(session: AsyncSession, *, now: datetime | None = None) -> None:
    """Write the kept rows again from the tickets (after a bulk load or a repair)."""
    tally = await counted(session, now=now)
    connection = await session.connection()
    await connection.execute(delete(TicketPace))
    for (slot, assignee), pace in sorted(tally.items()):
        await connection.execute(_UPSERT, {
            "slot": slot, "assignee": assignee, "resolved": pace.resolved,
            "resolution_us": pace.resolution_us, "responded": pace.responded,
            "response_us": pace.response_us})

