"""Per inbox, assignee, status and channel ticket counters, kept in the transaction that moves a ticket.

A flush hook sees every ticket that is added, deleted, or changes status, inbox or assignee,
whichever code path did it, and applies the differences with one upsert per counter row. The
rows are touched in a fixed order so two transactions never wait on each other in a circle.
"""

import random
from collections import Counter as Tally
from collections.abc import Iterable
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import event as sa_event
from sqlalchemy import func, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction
from sqlmodel import col

from helpdesk.storage import prepared
from helpdesk.storage.sessions import dialect_of
from helpdesk.tickets import pace  # its flush hook keeps ticket_pace beside these counters
from helpdesk.tickets.models import Status, Ticket, TicketCount

Key = tuple[int, int, str, str]
NOBODY = 0
# On PostgreSQL each transaction adds its differences to one of SHARDS rows per key, picked at
# random once per transaction: otherwise every new ticket's upsert of the one (inbox, nobody,
# 未対応) row waits for the previous writer's commit, across all workers. Reads sum the shards.
# SQLite has one writer at a time, so everything goes to shard 0 there.
SHARDS = 8
_SHARD_OF: "WeakKeyDictionary[SessionTransaction, int]" = WeakKeyDictionary()
_UPSERT = text(
    "INSERT INTO ticket_count (inbox_id, assignee_id, status, channel, shard, n) "
    "VALUES (:inbox, :assignee, :status, :channel, :shard, :d) "
    "ON CONFLICT (inbox_id, assignee_id, status, channel, shard) "
    "DO UPDATE SET n = ticket_count.n + excluded.n"
)


def _key(inbox_id: Any, assignee_id: Any, status: Any, channel: Any) -> Key:
    return int(inbox_id), int(assignee_id or NOBODY), str(status), str(channel)


def _before(ticket: Ticket) -> Key | None:
    """The key the ticket was counted under before this flush, if its attributes changed."""
    state = inspect(ticket)
    old: list[Any] = []
    changed = False
    for name in ("inbox_id", "assignee_id", "status", "channel"):
        history = state.attrs[name].history
        changed = changed or history.has_changes()
        value = history.deleted[0] if history.deleted else (
            history.unchanged[0] if history.unchanged else getattr(ticket, name))
        old.append(value)
    return _key(*old) if changed else None


def _deltas(session: Session) -> Tally[Key]:
    tally: Tally[Key] = Tally()
    for obj in session.new:
        if isinstance(obj, Ticket):
            tally[_key(obj.inbox_id, obj.assignee_id, obj.status, obj.channel)] += 1
    for obj in session.dirty:
        if isinstance(obj, Ticket) and (old := _before(obj)) is not None:
            tally[old] -= 1
            tally[_key(obj.inbox_id, obj.assignee_id, obj.status, obj.channel)] += 1
    for obj in session.deleted:
        if isinstance(obj, Ticket):
            old = _before(obj) or _key(obj.inbox_id, obj.assignee_id, obj.status, obj.channel)
            tally[old] -= 1
    return tally


def _shard(session: Session, dialect: str) -> int:
    """This transaction's shard (the same for each of its flushes, so its rows stay few)."""
    transaction = session.get_transaction()
    if dialect == "sqlite" or transaction is None:
        return 0
    while transaction.parent is not None:
        transaction = transaction.parent
    return _SHARD_OF.setdefault(transaction, random.randrange(SHARDS))


def _apply(session: Session, _context: object, _instances: object) -> None:
    tally = _deltas(session)
    if not any(tally.values()):
        return
    connection = session.connection()
    shard = _shard(session, connection.dialect.name)
    for (inbox, assignee, status, channel), delta in sorted(tally.items()):
        if delta:
            connection.execute(_UPSERT, {"inbox": inbox, "assignee": assignee, "status": status,
                                         "channel": channel, "shard": shard, "d": delta})


sa_event.listen(Session, "before_flush", _apply)


async def count_new(session: AsyncSession, ticket: Ticket) -> None:
    """Count a ticket inserted without the unit of work (``prepared.insert_new``), which the
    flush hook never sees as new. Unassigned only: an assignee's ticket also counts in their
    pace, which only the flush hook keeps."""
    if ticket.assignee_id is not None:
        raise ValueError("an assigned ticket is counted by the flush hook (its pace too)")
    shard = _shard(session.sync_session, dialect_of(session))
    inbox, assignee, status, channel = _key(ticket.inbox_id, ticket.assignee_id, ticket.status,
                                            ticket.channel)
    await prepared.execute(session, _UPSERT, {"inbox": inbox, "assignee": assignee, "status": status,
                                              "channel": channel, "shard": shard, "d": 1})


async def by_status(
    session: AsyncSession, *, inbox_ids: Iterable[int] | None, assignee_id: int | None = None,
) -> dict[str, int]:
    """Tickets per status in ``inbox_ids`` (None: all), optionally of one assignee (0: nobody)."""
    stmt = select(col(TicketCount.status), func.sum(TicketCount.n)).group_by(col(TicketCount.status))
    if inbox_ids is not None:
        stmt = stmt.where(col(TicketCount.inbox_id).in_(list(inbox_ids)))
    if assignee_id is not None:
        stmt = stmt.where(col(TicketCount.assignee_id) == assignee_id)
    counts = {status.value: 0 for status in Status}
    for status, n in (await session.execute(stmt)).all():
        counts[str(status)] = int(n or 0)
    return counts


async def by_assignee(session: AsyncSession) -> dict[int, dict[str, int]]:
    """Each assignee's tickets per status, across every inbox (the supervisor's view)."""
    stmt = (select(col(TicketCount.assignee_id), col(TicketCount.status), func.sum(TicketCount.n))
            .where(col(TicketCount.assignee_id) != NOBODY)
            .group_by(col(TicketCount.assignee_id), col(TicketCount.status)))
    load: dict[int, dict[str, int]] = {}
    for assignee, status, n in (await session.execute(stmt)).all():
        load.setdefault(int(assignee), {s.value: 0 for s in Status})[str(status)] = int(n or 0)
    return load


async def unassigned_by_inbox(session: AsyncSession) -> dict[int, dict[str, int]]:
    """Tickets nobody holds, per inbox and status (the queue)."""
    stmt = (select(col(TicketCount.inbox_id), col(TicketCount.status), func.sum(TicketCount.n))
            .where(col(TicketCount.assignee_id) == NOBODY)
            .group_by(col(TicketCount.inbox_id), col(TicketCount.status)))
    queue: dict[int, dict[str, int]] = {}
    for inbox, status, n in (await session.execute(stmt)).all():
        queue.setdefault(int(inbox), {s.value: 0 for s in Status})[str(status)] = int(n or 0)
    return queue


async def by_assignee_channel(
    session: AsyncSession, user_ids: Iterable[int], statuses: Iterable[str],
) -> dict[int, dict[str, int]]:
    """Tickets of each of ``user_ids`` in ``statuses``, per channel, across every inbox."""
    stmt = (select(col(TicketCount.assignee_id), col(TicketCount.channel), func.sum(TicketCount.n))
            .where(col(TicketCount.assignee_id).in_(list(user_ids)),
                   col(TicketCount.status).in_([str(s) for s in statuses]))
            .group_by(col(TicketCount.assignee_id), col(TicketCount.channel)))
    found: dict[int, dict[str, int]] = {}
    for assignee, channel, n in (await session.execute(stmt)).all():
        found.setdefault(int(assignee), {})[str(channel)] = int(n or 0)
    return found


async def recount(session: AsyncSession) -> None:
    """Write every counter (and today's pace) again from the tickets (after a bulk load or a repair)."""
    await session.execute(text("DELETE FROM ticket_count"))
    await session.execute(text(
        "INSERT INTO ticket_count (inbox_id, assignee_id, status, channel, shard, n) "
        "SELECT inbox_id, COALESCE(assignee_id, 0), status, channel, 0, COUNT(*) FROM ticket "
        "GROUP BY inbox_id, COALESCE(assignee_id, 0), status, channel"))
    await pace.recount(session)
