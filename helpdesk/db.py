"""Engines, sessions and their FastAPI dependencies; the storage kit (helpdesk.storage) does the rest."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from helpdesk.storage.pool import ping_when_idle
from helpdesk.storage.sessions import create_sqlite_engine, sqlite_sessionmaker
from helpdesk.storage.types import UTCDateTime

# Written migrations name the column type as ``helpdesk.db.UTCDateTime``; they stay as written.
__all__ = ["UTCDateTime"]


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def create_engine(database_url: str, **kwargs: Any) -> AsyncEngine:
    """Build the engine; SQLite gets WAL, foreign keys and write transactions that queue."""
    if database_url.startswith("sqlite"):
        return create_sqlite_engine(database_url, **kwargs)
    # Up to 30 connections a worker, all kept once opened: connections beyond the pool's size
    # would be closed as they come back, and a burst (sockets reconnecting, each signing in)
    # then opens new ones, each a new backend that prepares every statement afresh.
    kwargs.setdefault("pool_size", 30)
    kwargs.setdefault("max_overflow", 0)
    engine = create_async_engine(database_url, **kwargs)
    ping_when_idle(engine.sync_engine)  # not pool_pre_ping: three round trips on every checkout
    return engine


def create_sessionmaker(
    engine: AsyncEngine, info: dict[str, Any] | None = None, *, read_only: bool = False
) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit; ``info`` is copied to each.

    On SQLite, ``read_only`` sessions begin DEFERRED so readers never wait for the write lock
    (they must not write after reading: that is what the default sessions are for; see
    ``helpdesk.storage.sessions`` for which session to use when).
    """
    if engine.dialect.name == "sqlite":
        return sqlite_sessionmaker(engine, dict(info or {}), read_only=read_only)
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False, info=dict(info or {}))


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request; routes commit at the edge, anything uncommitted rolls back."""
    async with request.app.state.sessionmaker() as session:
        yield session


async def get_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session for routes that only read: on SQLite it never holds the write lock."""
    async with request.app.state.read_sessionmaker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session)]
