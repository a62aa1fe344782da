"""The typed state a session carries, in one place instead of string keys in ``session.info``.

Two levels exist because a sessionmaker copies its ``info`` into every session it makes:

- ``SharedContext``: one per sessionmaker, the same object in each of its sessions (the SQLite
  write queue, callbacks the application installs once).
- ``SessionContext``: one per session, made on first use (the connection the fast path
  remembers for the current transaction, work pending until commit).

Packages that need their own state keep it as a *part*: any class, looked up by its type, so
the storage kit never has to know the domains that use it::

    pending = session_context(session).part(PendingEvents)   # made with PendingEvents()
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

Part = TypeVar("Part")

# The only two keys of session.info this application uses; nothing outside this module reads them.
_SHARED_KEY = "helpdesk.storage.shared"
_SESSION_KEY = "helpdesk.storage.session"


class _Parts:
    """Objects kept by their type; each package defines its own part class."""

    __slots__ = ("_by_type",)

    def __init__(self, parts: dict[type, object] | None = None) -> None:
        self._by_type: dict[type, object] = dict(parts or {})

    def part(self, kind: type[Part], make: Callable[[], Part] | None = None) -> Part:
        """The ``kind`` part, made (by ``make``, else ``kind()``) and kept on first use."""
        found = self._by_type.get(kind)
        if found is None:
            found = make() if make is not None else kind()
            self._by_type[kind] = found
        assert isinstance(found, kind)
        return found

    def find(self, kind: type[Part]) -> Part | None:
        """The ``kind`` part if one was made, else None (nothing is made)."""
        found = self._by_type.get(kind)
        assert found is None or isinstance(found, kind)
        return found

    def drop(self, kind: type[Part]) -> Part | None:
        """Remove and return the ``kind`` part (None when there was none)."""
        found = self._by_type.pop(kind, None)
        assert found is None or isinstance(found, kind)
        return found


class SharedContext(_Parts):
    """State every session of one sessionmaker shares."""

    __slots__ = ("write_queue",)

    def __init__(self, *, write_queue: asyncio.Lock | None = None,
                 parts: dict[type, object] | None = None) -> None:
        super().__init__(parts)
        # SQLite only: write sessions take it before they begin (storage.sessions).
        self.write_queue = write_queue


@dataclass(slots=True)
class RememberedConnection:
    """The connection of a session's transaction, kept while that transaction lasts."""

    transaction: SessionTransaction
    connection: AsyncConnection


@dataclass(slots=True)
class SessionContext:
    """State of one session."""

    shared: SharedContext
    connection: RememberedConnection | None = None  # storage.prepared's shortcut
    _parts: _Parts = field(default_factory=_Parts)

    def part(self, kind: type[Part], make: Callable[[], Part] | None = None) -> Part:
        """This session's ``kind`` part, made on first use."""
        return self._parts.part(kind, make)

    def find(self, kind: type[Part]) -> Part | None:
        """This session's ``kind`` part if one was made."""
        return self._parts.find(kind)

    def drop(self, kind: type[Part]) -> Part | None:
        """Remove and return this session's ``kind`` part."""
        return self._parts.drop(kind)


def sessionmaker_info(shared: SharedContext, info: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``info`` to give a sessionmaker so that its sessions share ``shared``."""
    return {**(info or {}), _SHARED_KEY: shared}


def session_context(session: AsyncSession | Session) -> SessionContext:
    """``session``'s context, made on first use (sessions from elsewhere get an empty shared one).

    An ``AsyncSession`` and its ``sync_session`` (as commit hooks see it) share one context.
    """
    info = session.info
    found: SessionContext | None = info.get(_SESSION_KEY)
    if found is None:
        shared = info.get(_SHARED_KEY)
        if shared is None:
            shared = info[_SHARED_KEY] = SharedContext()
        found = info[_SESSION_KEY] = SessionContext(shared)
    return found
