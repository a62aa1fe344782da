"""Writing events in the transaction they describe, handing out ``seq`` in commit order, who may
see what, and presence (online / away / offline) kept in the database so every process agrees."""

import asyncio
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property, partial
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    BigInteger,
    Dialect,
    Select,
    Table,
    bindparam,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator
from sqlmodel import col

from helpdesk.auth.models import User
from helpdesk.db import utcnow
from helpdesk.realtime.models import (
    Event,
    Presence,
    PresenceConnection,
    PresencePublic,
    PresenceStatus,
)
from helpdesk.routing import service as routing
from helpdesk.storage import prepared
from helpdesk.storage.counters import Counter, raise_counter, read_counter
from helpdesk.storage.locks import serialize_on

PENDING = "helpdesk.pending_events"
PRUNED = "event_pruned"  # the counter holding the highest seq deleted by retention
COMMITTED = "helpdesk.committed_events"
NOTIFY = "helpdesk.notify"
# Called after a commit with the events it wrote (this process's hub then need not read them back).
COMMITTED_EVENTS = "helpdesk.committed_events_sink"
EVENT: Table = Event.__table__  # type: ignore[attr-defined]


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
_dumps = partial(json.dumps, ensure_ascii=False, separators=(",", ":"))


class _CounterValue(NamedTuple):
    value: int


_ACCESS_VERSION = prepared.Query(select(col(Counter.value)).where(col(Counter.name) == "access_version"),
                                 _CounterValue)
_TAKE_SEQS = prepared.Query(update(Counter).where(col(Counter.name) == "event_seq")
                            .values(value=col(Counter.value) + bindparam("count", type_=BigInteger))
                            .returning(col(Counter.value)), _CounterValue)


def record(
    session: AsyncSession,
    *,
    type: str,
    data: dict[str, Any],
    inbox_id: int | None = None,
    user_ids: Sequence[int] | None = None,
    broadcast: bool = False,
) -> None:
    """Queue an event; it gets its ``seq`` and is written when the transaction commits."""
    event = {"seq": 0, "type": type, "at": utcnow(), "data": data, "inbox_id": inbox_id,
             "user_ids": list(user_ids) if user_ids is not None else None, "broadcast": broadcast}
    session.info.setdefault(PENDING, []).append(event)


# ---- who may see what ----------------------------------------------------------------------


@dataclass(frozen=True)
class LiveEvent:
    """A committed event as the sockets need it: its audience and its frame, serialised once."""

    seq: int
    type: str
    at: datetime
    data: dict[str, Any]
    inbox_id: int | None = None
    user_ids: list[int] | None = None
    broadcast: bool = False
    # The access version the committing transaction saw (see ``access_version``); known only
    # for this process's own commits.
    access_version: int | None = field(default=None, compare=False)
    data_text: str | None = field(default=None, compare=False, repr=False)  # ``data`` encoded

    @cached_property
    def text(self) -> str:
        """The server → client frame: ``{"seq", "type", "at", "data"}``, compact UTF-8 JSON."""
        data = self.data_text if self.data_text is not None else _dumps(self.data)
        return (f'{{"seq":{self.seq},"type":{_dumps(self.type)},'
                f'"at":{_dumps(self.at.isoformat())},"data":{data}}}')


@dataclass(frozen=True)
class Audience:
    """What one user may receive: everything (supervisors, admins), or their inboxes and own events."""

    user_id: int
    sees_everything: bool
    inbox_ids: frozenset[int] = field(default_factory=frozenset)
    active: bool = True

    @classmethod
    def of(cls, user: User, inbox_ids: Iterable[int]) -> "Audience":
        """The audience of ``user``, a member of ``inbox_ids``."""
        assert user.id is not None
        return cls(user.id, user.sees_everything, frozenset(inbox_ids), user.is_active)

    def may_see(self, event: Event | LiveEvent) -> bool:
        """Whether this user may receive ``event``."""
        if self.sees_everything or event.broadcast:
            return True
        if event.user_ids is not None and self.user_id in event.user_ids:
            return True
        return event.inbox_id is not None and event.inbox_id in self.inbox_ids

    def may_see_inbox(self, inbox_id: int | None) -> bool:
        """Whether this user works ``inbox_id`` (supervisors and admins work them all)."""
        return self.sees_everything or (inbox_id is not None and inbox_id in self.inbox_ids)


def may_see(user: User, event: Event | LiveEvent, inbox_ids: set[int]) -> bool:
    """Whether ``user`` (member of ``inbox_ids``) may receive ``event``."""
    return Audience.of(user, inbox_ids).may_see(event)


class _UserAccess(NamedTuple):
    id: int
    role: str
    is_active: bool


_ROLES_OF_USERS = prepared.Query(select(routing.USER.c.id, routing.USER.c.role, routing.USER.c.is_active)
                                 .where(routing.USER.c.id.in_(bindparam("user_ids", expanding=True))),
                                 _UserAccess)


async def access_version(session: AsyncSession) -> int | None:
    """A value that changes (database triggers set it) whenever memberships, roles or active
    flags change, by whatever means; None when unknown (the counter row is gone)."""
    found = await prepared.first(session, _ACCESS_VERSION)
    return found.value if found is not None else None


async def audiences(session: AsyncSession, user_ids: Iterable[int]) -> dict[int, Audience]:
    """Fresh audiences of ``user_ids`` (role, active flag, inboxes) in two queries; unknown users absent."""
    ids = list(set(user_ids))
    if not ids:
        return {}
    rows = await prepared.rows(session, _ROLES_OF_USERS, {"user_ids": ids})
    inboxes = await routing.inbox_ids_of_users(session, ids)
    found: dict[int, Audience] = {}
    for row in rows:
        assert row.id is not None
        found[row.id] = Audience(row.id, row.role in ("supervisor", "admin"),
                                 frozenset(inboxes.get(row.id, ())), row.is_active)
    return found


# ---- reading the log -----------------------------------------------------------------------


async def events_after(session: AsyncSession, seq: int, limit: int = 1000) -> list[Event]:
    """Events committed after ``seq``, oldest first."""
    rows = await session.scalars(
        select(Event).where(col(Event.seq) > seq).order_by(col(Event.seq)).limit(limit))
    return list(rows)


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
    """Events committed after ``seq``, oldest first, as plain values (no ORM bookkeeping)."""
    rows = await prepared.rows(session, _LIVE_EVENTS_AFTER, {"seq": seq, "limit": limit})
    return [LiveEvent(row.seq, row.type, row.at, row.data, row.inbox_id, row.user_ids, row.broadcast)
            for row in rows]


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


async def sockets_first() -> None:
    """Let the sockets have what the caller just committed before it answers its request.

    The hub queues a process's own events as their commit completes and wakes the socket
    writers; one turn of the event loop lets them write. A ringing phone's webhook calls this
    so the operators' screens show the caller before the answer makes their phones ring.
    """
    await asyncio.sleep(0)


def ephemeral_text(type: str, data: dict[str, Any]) -> str:
    """A frame that is not stored and carries no seq (viewing, typing, ping, errors)."""
    return _dumps({"type": type, "at": utcnow().isoformat(), "data": data})


# ---- seq assignment at commit --------------------------------------------------------------


def _assign_seqs(session: Session) -> None:
    pending: list[dict[str, Any]] = session.info.pop(PENDING, [])
    if not pending:
        return
    # Plain statements on the connection: no ORM objects or bookkeeping for the log's rows.
    connection = session.connection()
    # The counter row stays locked until commit, so a later seq never commits before an earlier.
    taken = prepared.first_now(connection, _TAKE_SEQS, {"count": len(pending)})
    assert taken is not None  # the event_seq row is made by the first migration
    counter = taken.value
    first = counter - len(pending) + 1
    for offset, event in enumerate(pending):
        event["seq"] = first + offset
        event["data_text"] = _dumps(event["data"])
    prepared.execute_many_now(connection, _INSERT_EVENTS, pending)
    version = prepared.first_now(connection, _ACCESS_VERSION)
    for event in pending:
        event["access_version"] = version.value if version is not None else None
    session.info[COMMITTED] = pending


def _after_commit(session: Session) -> None:
    committed: list[dict[str, Any]] | None = session.info.pop(COMMITTED, None)
    if not committed:
        return
    sink: Callable[[list[LiveEvent]], None] | None = session.info.get(COMMITTED_EVENTS)
    if sink is not None:
        sink([LiveEvent(**event) for event in committed])
    notify: Callable[[int], None] | None = session.info.get(NOTIFY)
    if notify is not None:
        notify(committed[-1]["seq"])


def _after_rollback(session: Session) -> None:
    session.info.pop(PENDING, None)
    session.info.pop(COMMITTED, None)


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


sa_event.listen(Session, "before_commit", _assign_seqs)
sa_event.listen(Session, "after_commit", _after_commit)
sa_event.listen(Session, "after_soft_rollback", lambda s, _t: _after_rollback(s))


# ---- presence ------------------------------------------------------------------------------


def _combined(statuses: Iterable[str]) -> PresenceStatus:
    """A user is online if any live connection says so, away if one says away, else offline."""
    found = set(statuses)
    for status in (PresenceStatus.online, PresenceStatus.away):
        if status in found:
            return status
    return PresenceStatus.offline


async def refresh_presence(session: AsyncSession, user_id: int, now: datetime) -> None:
    """Recompute a user's status from their live connections; record ``presence.changed`` if it moved."""
    await serialize_on(session, f"presence:{user_id}")
    statuses = await session.scalars(select(col(PresenceConnection.status)).where(
        col(PresenceConnection.user_id) == user_id, col(PresenceConnection.expires_at) > now))
    status = _combined(statuses)
    row = await session.get(Presence, user_id, populate_existing=True)
    if row is None:
        if status == PresenceStatus.offline:
            return
        row = Presence(user_id=user_id, status=status, since=now)
        session.add(row)
    elif row.status == status:
        return
    else:
        row.status, row.since = status, now
    user = (await session.execute(
        select(col(User.name), col(User.role)).where(col(User.id) == user_id))).one_or_none()
    if user is None:
        return
    record(session, type="presence.changed", broadcast=True, data={
        "user_id": user_id, "name": user.name, "role": str(user.role), "status": str(status),
        "since": now.isoformat()})


async def connect(
    session: AsyncSession, *, connection_id: str, user_id: int, node: str, now: datetime,
    ttl: timedelta,
) -> None:
    """A socket opened: it counts as online until it closes (plus grace) or its process dies."""
    session.add(PresenceConnection(id=connection_id, user_id=user_id, node=node,
                                   status=PresenceStatus.online, connected_at=now,
                                   expires_at=now + ttl))
    await session.flush()
    await refresh_presence(session, user_id, now)


async def set_status(
    session: AsyncSession, *, connection_id: str, user_id: int, status: PresenceStatus,
    now: datetime,
) -> None:
    """The user said online / away / offline on this socket."""
    await session.execute(update(PresenceConnection).where(col(PresenceConnection.id) == connection_id)
                          .values(status=status))
    await refresh_presence(session, user_id, now)


async def disconnect(session: AsyncSession, *, connection_id: str, now: datetime,
                     grace: timedelta) -> None:
    """A socket closed: it keeps counting for ``grace`` (a reload or reconnect stays online)."""
    await session.execute(update(PresenceConnection).where(col(PresenceConnection.id) == connection_id)
                          .values(closed=True, expires_at=now + grace))


async def heartbeat_and_sweep(
    session: AsyncSession, *, node: str, now: datetime, ttl: timedelta,
    live: dict[str, tuple[int, PresenceStatus]],
) -> None:
    """Keep this process's open sockets alive, then turn lapsed users offline (or away).

    ``live`` maps this process's open connection ids to (user id, status). Every process runs
    this; the lock makes the runs take turns, so a change is recorded once.
    """
    await serialize_on(session, "presence:sweep")
    ids = list(live)
    result = await session.execute(
        update(PresenceConnection).where(col(PresenceConnection.id).in_(ids))
        .values(expires_at=now + ttl))
    # Rows this process left open but no longer holds (a failed disconnect write) start lapsing.
    await session.execute(
        update(PresenceConnection)
        .where(col(PresenceConnection.node) == node, col(PresenceConnection.closed).is_(False),
               col(PresenceConnection.id).not_in(ids))
        .values(closed=True))
    touched: set[int] = set()
    if getattr(result, "rowcount", len(live)) < len(live):
        touched |= await _restore_connections(session, node=node, now=now, ttl=ttl, live=live)
    lapsed = select(col(PresenceConnection.user_id)).where(col(PresenceConnection.expires_at) <= now)
    touched |= set(await session.scalars(lapsed.distinct()))
    still_live = exists().where(col(PresenceConnection.user_id) == Presence.user_id,
                                col(PresenceConnection.expires_at) > now)
    touched |= set(await session.scalars(select(col(Presence.user_id)).where(
        col(Presence.status) != PresenceStatus.offline, ~still_live)))
    await session.execute(delete(PresenceConnection).where(col(PresenceConnection.expires_at) <= now))
    for user_id in sorted(touched):
        await refresh_presence(session, user_id, now)


async def _restore_connections(
    session: AsyncSession, *, node: str, now: datetime, ttl: timedelta,
    live: dict[str, tuple[int, PresenceStatus]],
) -> set[int]:
    """Put back rows of open sockets that lapsed while this process was stalled."""
    known = set(await session.scalars(select(col(PresenceConnection.id)).where(
        col(PresenceConnection.id).in_(list(live)))))
    users: set[int] = set()
    existing_users = set(await session.scalars(select(col(User.id)).where(
        col(User.id).in_([uid for uid, _ in live.values()]))))
    for connection_id, (user_id, status) in live.items():
        if connection_id not in known and user_id in existing_users:
            session.add(PresenceConnection(id=connection_id, user_id=user_id, node=node,
                                           status=status, connected_at=now, expires_at=now + ttl))
            users.add(user_id)
    await session.flush()
    return users


PRESENCE: Table = Presence.__table__  # type: ignore[attr-defined]


def online_query(candidates: Select[Any] | None = None) -> Select[tuple[int]]:
    """A select of the users online now, among ``candidates`` (a select of user ids) when given."""
    stmt = select(PRESENCE.c.user_id).where(PRESENCE.c.status == PresenceStatus.online.value)
    if candidates is not None:
        stmt = stmt.where(PRESENCE.c.user_id.in_(candidates))
    return stmt


async def online_among(session: AsyncSession, candidates: Select[Any] | None = None) -> list[int]:
    """The users online now, among ``candidates`` (a select of user ids) when given."""
    return list(await session.scalars(online_query(candidates).order_by(PRESENCE.c.user_id)))


async def presence_list(session: AsyncSession) -> list[PresencePublic]:
    """Every active staff member with their status (offline when never seen)."""
    rows = await session.execute(
        select(col(User.id), col(User.name), col(User.role), col(Presence.status), col(Presence.since))
        .outerjoin(Presence, col(Presence.user_id) == col(User.id))
        .where(col(User.is_active).is_(True)).order_by(col(User.name), col(User.id)))
    return [PresencePublic(user_id=uid, name=name, role=str(role),
                           status=status or PresenceStatus.offline, since=since)
            for uid, name, role, status, since in rows.all()]

