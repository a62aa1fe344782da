"""The event log: events recorded in the transaction they describe, written with their ``seq``
as that transaction commits, then published to this process's hub. On SQLite seqs are handed
out in commit order; on PostgreSQL from a sequence, and readers stop at holes still in flight
(``realtime.horizon``). Either way a reader that saw seq N saw everything before it.

The path of an event, in order:
1. ``record`` (via the catalogue, ``realtime.events``) queues it on the session's
   ``EventContext``;
2. the session's ``before_commit`` hook (installed by ``install_event_log`` on the sessionmaker
   that made it) takes the seqs, inserts the rows and notes the access version;
3. its ``after_commit`` hook hands the committed events to the sessionmaker's ``Publish``
   callback (the app's: this process's hub, then the bus that wakes the other processes).

Imports no domain module.
"""

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import JSON, BigInteger, Dialect, Table, bindparam, delete, func, insert, select, update
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator
from sqlmodel import col

from helpdesk.db import create_sessionmaker, utcnow
from helpdesk.realtime.frames import LiveEvent, dumps
from helpdesk.realtime.horizon import horizon_of
from helpdesk.realtime.models import Event
from helpdesk.storage import prepared
from helpdesk.storage.context import session_context
from helpdesk.storage.counters import (
    Counter,
    last_event_seq,
    raise_counter,
    read_counter,
    take_event_seqs_now,
)
from helpdesk.storage.sessions import dialect_of

PRUNED = "event_pruned"  # the counter holding the highest seq deleted by retention
EVENT: Table = Event.__table__  # type: ignore[attr-defined]
# Called after a commit with the events it wrote (this process's hub then need not read them back).
Publish = Callable[[list[LiveEvent]], None]


class _EncodedJSON(TypeDecorator[str]):
    """A JSON column's value that the caller has already encoded: written as it is."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> None:
        return None


# The data goes in as the text the frame carries: encoded once, for the table and the sockets.
_INSERT_EVENTS = insert(EVENT).values({
    **{name: bindparam(name) for name in ("seq", "type", "at", "inbox_id", "user_ids", "broadcast")},
    "data": bindparam("data_text", type_=_EncodedJSON())})


class _CounterValue(NamedTuple):
    value: int


_ACCESS_VERSION = prepared.Query(select(col(Counter.value)).where(col(Counter.name) == "access_version"),
                                 _CounterValue)
_TAKE_SEQS = prepared.Query(update(Counter).where(col(Counter.name) == "event_seq")
                            .values(value=col(Counter.value) + bindparam("count", type_=BigInteger))
                            .returning(col(Counter.value)), _CounterValue)


# ---- the per-session context and the commit hooks --------------------------------------------


@dataclass
class EventContext:
    """The events one session recorded: pending until its commit writes them, then committed
    until its after-commit hook publishes them. Each is a row of the log as the insert takes it."""

    pending: list[dict[str, Any]] = field(default_factory=list)
    committed: list[dict[str, Any]] = field(default_factory=list)


def _context_of(session: Session) -> EventContext:
    # Kept as a part of the session's typed context (storage.context), made on first use.
    return session_context(session).part(EventContext)


class EventLogSession(Session):
    """The synchronous session behind sessions whose commits write the event log.

    ``install_event_log`` makes a subclass per sessionmaker and attaches the hooks to it, so
    only sessions of a wired sessionmaker carry them (none on SQLAlchemy's own ``Session``).
    """


def install_event_log(sessionmaker: async_sessionmaker[AsyncSession],
                      publish: Publish | None = None) -> async_sessionmaker[AsyncSession]:
    """Make the commits of ``sessionmaker``'s sessions write the events they recorded, and hand
    them to ``publish`` once committed (None: another process's hub reads them from the log)."""
    sessions = type("WiredEventLogSession", (EventLogSession,), {})
    sa_event.listen(sessions, "before_commit", _write_pending)
    sa_event.listen(sessions, "after_commit", _after_commit_publishing_to(publish))
    sa_event.listen(sessions, "after_soft_rollback", lambda session, _previous: _forget(session))
    sessionmaker.configure(sync_session_class=sessions)
    return sessionmaker


def event_sessions(engine: AsyncEngine, *, read_only: bool = False,
                   publish: Publish | None = None) -> async_sessionmaker[AsyncSession]:
    """``db.create_sessionmaker`` with the event log installed: for the CLI, scripts and tests,
    whose recorded events other processes' hubs read from the log."""
    return install_event_log(create_sessionmaker(engine, read_only=read_only), publish)


def record(
    session: AsyncSession,
    *,
    type: str,
    data: dict[str, Any],
    inbox_id: int | None = None,
    user_ids: Sequence[int] | None = None,
    broadcast: bool = False,
    at: datetime | None = None,
) -> None:
    """Queue an event; it gets its ``seq`` and is written when the transaction commits.

    The catalogue (``realtime.events.record``) is how domain code calls this. ``at`` is now unless
    the caller writes down something that happened earlier (a scripted day replayed by a test).
    """
    if not isinstance(session.sync_session, EventLogSession):
        raise RuntimeError(f"{type}: this session's sessionmaker does not write the event log "
                           "(call realtime.log.install_event_log on it)")
    event = {"seq": 0, "type": type, "at": at or utcnow(), "data": data, "inbox_id": inbox_id,
             "user_ids": list(user_ids) if user_ids is not None else None, "broadcast": broadcast}
    _context_of(session.sync_session).pending.append(event)


def _write_pending(session: Session) -> None:
    context = _context_of(session)
    pending, context.pending = context.pending, []
    if not pending:
        return
    # Plain statements on the connection: no ORM objects or bookkeeping for the log's rows.
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # From the sequence: no lock that other writers wait for; readers mind the holes.
        for event, drawn in zip(pending, take_event_seqs_now(connection, len(pending)), strict=True):
            event["seq"], event["access_version"] = drawn
            event["data_text"] = dumps(event["data"])
        prepared.execute_many_now(connection, _INSERT_EVENTS, pending)
        context.committed = pending
        return
    # SQLite: the counter row stays locked until commit (its writers are serial anyway), so a
    # later seq never commits before an earlier.
    taken = prepared.first_now(connection, _TAKE_SEQS, {"count": len(pending)})
    assert taken is not None  # the event_seq row is made by the first migration
    counter = taken.value
    first = counter - len(pending) + 1
    for offset, event in enumerate(pending):
        event["seq"] = first + offset
        event["data_text"] = dumps(event["data"])
    prepared.execute_many_now(connection, _INSERT_EVENTS, pending)
    version = prepared.first_now(connection, _ACCESS_VERSION)
    for event in pending:
        event["access_version"] = version.value if version is not None else None
    context.committed = pending


def _after_commit_publishing_to(publish: Publish | None) -> Callable[[Session], None]:
    """The after-commit hook of a sessionmaker whose committed events go to ``publish``."""

    def after_commit(session: Session) -> None:
        context = _context_of(session)
        committed, context.committed = context.committed, []
        if committed and publish is not None:
            publish([LiveEvent(**event) for event in committed])

    return after_commit


def _forget(session: Session) -> None:
    context = _context_of(session)
    context.pending, context.committed = [], []


class LocalEvents:
    """The events this process committed lately, by seq, so its hub can fan them out without
    reading them back from the log. Only a run that continues exactly where the hub stopped is
    used; anything else (another process's commit in between) sends the hub to the table."""

    def __init__(self, size: int = 2000) -> None:
        self.size = size
        self._events: dict[int, LiveEvent] = {}

    def add(self, events: Iterable[LiveEvent]) -> None:
        """Keep ``events`` (called after their commit)."""
        for event in events:
            self._events[event.seq] = event
        while len(self._events) > self.size:
            del self._events[next(iter(self._events))]

    def forget_through(self, seq: int) -> None:
        """Drop what the hub has fanned out (everything up to ``seq``)."""
        while self._events and next(iter(self._events)) <= seq:
            del self._events[next(iter(self._events))]

    def clear(self) -> None:
        """Drop everything (the log went back: these seqs may be reused)."""
        self._events.clear()

    def run_after(self, seq: int, limit: int) -> list[LiveEvent]:
        """The events seq+1, seq+2, … as far as they are known here, at most ``limit``."""
        run: list[LiveEvent] = []
        while len(run) < limit and (event := self._events.get(seq + 1)) is not None:
            run.append(event)
            seq += 1
        return run


def publish_to(local: LocalEvents, notify: Callable[[int], None]) -> Publish:
    """The app's ``Publish``: this process's hub keeps the events, then the bus wakes every hub."""

    def publish(events: list[LiveEvent]) -> None:
        local.add(events)
        notify(events[-1].seq)

    return publish


async def sockets_first() -> None:
    """Let the sockets have what the caller just committed before it answers its request.

    The hub queues a process's own events as their commit completes and wakes the socket
    writers; one turn of the event loop lets them write. A ringing phone's webhook calls this
    so the operators' screens show the caller before the answer makes their phones ring.
    """
    await asyncio.sleep(0)


# ---- reading the log -----------------------------------------------------------------------


async def access_version(session: AsyncSession) -> int | None:
    """A value that changes (database triggers set it) whenever memberships, roles or active
    flags change, by whatever means; None when unknown (the counter row is gone)."""
    found = await prepared.first(session, _ACCESS_VERSION)
    return found.value if found is not None else None


async def events_after(session: AsyncSession, seq: int, limit: int = 1000) -> list[Event]:
    """Events committed after ``seq``, oldest first, as far as nothing before them is still to
    commit (see ``realtime.horizon``)."""

    async def read() -> list[Event]:
        return list(await session.scalars(
            select(Event).where(col(Event.seq) > seq).order_by(col(Event.seq)).limit(limit)))

    events, _blocked = await _settled(session, seq, read, lambda event: event.seq)
    return events


Row = TypeVar("Row")


async def _settled(session: AsyncSession, after: int, read: Callable[[], Awaitable[list[Row]]],
                   seq_of: Callable[[Row], int]) -> tuple[list[Row], bool]:
    """What ``read`` returns, cut before the first hole that may still fill; whether it was cut.

    Only PostgreSQL has such holes. At one, the horizon is probed, and the log read again when
    the probe settled it: the row may have committed meanwhile, so the first read is not reused.
    """
    rows = await read()
    if dialect_of(session) != "postgresql":
        return rows, False
    horizon = horizon_of(session)
    count = horizon.readable(after, [seq_of(row) for row in rows])
    if count < len(rows):
        before = horizon.settled
        await horizon.advance(session)
        if horizon.settled > before:
            rows = await read()
            count = horizon.readable(after, [seq_of(row) for row in rows])
    return rows[:count], count < len(rows)


class _LoggedEvent(NamedTuple):
    seq: int
    type: str
    at: datetime
    data: dict[str, Any]
    inbox_id: int | None
    user_ids: list[int] | None
    broadcast: bool


_LIVE_EVENTS_AFTER = prepared.Query(
    select(col(Event.seq), col(Event.type), col(Event.at), col(Event.data), col(Event.inbox_id),
           col(Event.user_ids), col(Event.broadcast))
    .where(col(Event.seq) > bindparam("seq")).order_by(col(Event.seq)).limit(bindparam("limit")),
    _LoggedEvent)


async def live_events_after(session: AsyncSession, seq: int, limit: int = 500) -> list[LiveEvent]:
    """Events committed after ``seq``, oldest first, as plain values (no ORM bookkeeping), as
    far as nothing before them is still to commit."""
    return (await settled_events_after(session, seq, limit))[0]


async def settled_events_after(session: AsyncSession, seq: int,
                               limit: int = 500) -> tuple[list[LiveEvent], bool]:
    """``live_events_after``, and whether it stopped at a hole that may still fill (PostgreSQL:
    a transaction holding that seq has not committed yet; read again soon)."""

    async def read() -> list[_LoggedEvent]:
        return await prepared.rows(session, _LIVE_EVENTS_AFTER, {"seq": seq, "limit": limit})

    rows, blocked = await _settled(session, seq, read, lambda row: row.seq)
    return [LiveEvent(row.seq, row.type, row.at, row.data, row.inbox_id, row.user_ids, row.broadcast)
            for row in rows], blocked


async def settled_high(session: AsyncSession) -> int:
    """The highest seq in the log with nothing before it still to commit: where a new reader
    that wants only what comes next starts (on PostgreSQL it waits for seqs being committed)."""
    if dialect_of(session) != "postgresql":
        return (await seq_bounds(session))[1]
    bound = await horizon_of(session).settle(session)
    return int(await session.scalar(select(func.max(Event.seq)).where(col(Event.seq) <= bound)) or 0)


async def highest_seq(session: AsyncSession) -> int:
    """The highest seq handed out (PostgreSQL: perhaps still in flight, or rolled back)."""
    if dialect_of(session) != "postgresql":
        return await read_counter(session, "event_seq")
    return await last_event_seq(session)


async def seq_bounds(session: AsyncSession) -> tuple[int, int]:
    """The lowest and highest seq in the log, (0, 0) when it is empty."""
    low, high = (await session.execute(select(func.min(Event.seq), func.max(Event.seq)))).one()
    return int(low or 0), int(high or 0)


async def pruned_through(session: AsyncSession) -> int:
    """The highest seq retention deleted (0: none): a resume from before it has missed events."""
    return await read_counter(session, PRUNED)


async def prune_events(session: AsyncSession, *, before: datetime, limit: int,
                       through: int | None = None) -> int:
    """Delete up to ``limit`` of the oldest events recorded before ``before`` (and at most up to
    seq ``through``, when given); how many went.

    Only a leading run of the log goes (by seq, on its primary key), so everything after the
    recorded watermark is still there; the newest event always stays, so the log's highest seq
    never goes back.
    """
    newest = select(func.max(Event.seq)).scalar_subquery()
    stmt = select(col(Event.seq), col(Event.at)).where(col(Event.seq) < newest)
    if through is not None:
        stmt = stmt.where(col(Event.seq) <= through)
    rows = (await session.execute(stmt.order_by(col(Event.seq)).limit(limit))).all()
    cut = None
    for seq, at in rows:
        if at >= before:
            break
        cut = seq
    if cut is None:
        return 0
    result = await session.execute(delete(Event).where(col(Event.seq) <= cut))
    await raise_counter(session, PRUNED, cut)
    return int(result.rowcount)  # type: ignore[attr-defined]
