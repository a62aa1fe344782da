"""Writing events in the transaction they describe, and handing out ``seq`` in commit order."""

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlmodel import col

from helpdesk.auth.models import User
from helpdesk.db import Counter
from helpdesk.realtime.models import Event

PENDING = "helpdesk.pending_events"
COMMITTED_SEQ = "helpdesk.committed_seq"
NOTIFY = "helpdesk.notify"


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
    event = Event(seq=0, type=type, data=data, inbox_id=inbox_id,
                  user_ids=list(user_ids) if user_ids is not None else None, broadcast=broadcast)
    session.info.setdefault(PENDING, []).append(event)


def may_see(user: User, event: Event, inbox_ids: set[int]) -> bool:
    """Whether ``user`` (member of ``inbox_ids``) may receive ``event``."""
    if user.sees_everything or event.broadcast:
        return True
    if event.user_ids is not None and user.id in event.user_ids:
        return True
    return event.inbox_id is not None and event.inbox_id in inbox_ids


async def events_after(session: AsyncSession, seq: int, limit: int = 1000) -> list[Event]:
    """Events committed after ``seq``, oldest first."""
    rows = await session.scalars(
        select(Event).where(col(Event.seq) > seq).order_by(col(Event.seq)).limit(limit))
    return list(rows)


def _assign_seqs(session: Session) -> None:
    pending: list[Event] = session.info.pop(PENDING, [])
    if not pending:
        return
    # The counter row stays locked until commit, so a later seq never commits before an earlier.
    counter = session.execute(
        update(Counter)
        .where(col(Counter.name) == "event_seq")
        .values(value=col(Counter.value) + len(pending))
        .returning(col(Counter.value))
    ).scalar_one()
    first = counter - len(pending) + 1
    for offset, event in enumerate(pending):
        event.seq = first + offset
    session.add_all(pending)
    session.info[COMMITTED_SEQ] = counter


def _after_commit(session: Session) -> None:
    seq = session.info.pop(COMMITTED_SEQ, None)
    notify: Callable[[int], None] | None = session.info.get(NOTIFY)
    if seq is not None and notify is not None:
        notify(seq)


def _after_rollback(session: Session) -> None:
    session.info.pop(PENDING, None)
    session.info.pop(COMMITTED_SEQ, None)


sa_event.listen(Session, "before_commit", _assign_seqs)
sa_event.listen(Session, "after_commit", _after_commit)
sa_event.listen(Session, "after_soft_rollback", lambda s, _t: _after_rollback(s))
