"""Queue tables: a commit that adds or changes a row of one wakes that queue's workers alone.

The leased queues (``background.queue``) used to look for work after every commit of every
process. On ingest that was two read-only transactions a message in each process, about a
fifth of an embedded server's CPU a message, though hardly a message gives a queue work. A
table class marked with ``queue_table`` is a queue's, named by its table; each flush notes
which of them the transaction wrote, and once it commits ``install``'s ``wake`` gets their
names (the app's: the bus, which reaches every process). The queues still poll, so a wake that
never arrives delays work, never loses it.

Only the ORM's writes are seen: queue rows are added and changed as objects.
"""

from collections.abc import Callable, Iterable
from itertools import chain
from typing import Any, TypeVar

from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from helpdesk.storage.context import session_context

Table = TypeVar("Table", bound=type)
Wake = Callable[[Iterable[str]], None]
_QUEUES: dict[type, str] = {}


def queue_table(kind: Table) -> Table:
    """Mark ``kind`` as a leased queue's table: its commits wake the queue named by the table."""
    _QUEUES[kind] = str(getattr(kind, "__tablename__"))  # noqa: B009 (set by SQLModel's metaclass)
    return kind


def queue_name(kind: type) -> str:
    """The queue a marked table class belongs to (KeyError for any other class)."""
    return _QUEUES[kind]


class _Written(set[str]):
    """The queue tables the session's current transaction wrote."""


def install(sessionmaker: async_sessionmaker[AsyncSession], wake: Wake) -> None:
    """Call ``wake`` with the queues each commit of ``sessionmaker``'s sessions wrote to.

    Its sessions must have a class of their own (``install_event_log`` gives them one), so the
    hooks reach no other sessionmaker's.
    """
    sessions: type[Session] = sessionmaker.kw.get("sync_session_class", Session)
    if sessions is Session:
        raise ValueError("the sessionmaker's sessions need a class of their own")
    sa_event.listen(sessions, "after_flush", _note_written)
    sa_event.listen(sessions, "after_commit", lambda session: _wake_written(session, wake))
    sa_event.listen(sessions, "after_soft_rollback", _forget_written)


def _note_written(session: Session, _flush: Any) -> None:
    written = {name for obj in chain(session.new, session.dirty)
               if (name := _QUEUES.get(type(obj))) is not None}
    if written:
        session_context(session).part(_Written).update(written)


def _wake_written(session: Session, wake: Wake) -> None:
    written = session_context(session).drop(_Written)
    if written:
        wake(sorted(written))


def _forget_written(session: Session, _previous: object) -> None:
    if not session.in_transaction():  # a savepoint rolled back: what came before it stands
        session_context(session).drop(_Written)
