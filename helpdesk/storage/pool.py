"""Checking pooled PostgreSQL connections before use, only when they may have gone stale.

SQLAlchemy's ``pool_pre_ping`` checks every connection at every checkout; with asyncpg that check
is three round trips (BEGIN, an empty query, ROLLBACK), and a busy worker checks out a connection
for each request, each read of the event log and each pass of a background queue. A connection
handed back moments ago was working then, so only one that sat in the pool longer than
``IDLE_BEFORE_PING`` is checked. A server that goes away in between still costs nothing worse
than with a check on every checkout: the statement fails with a disconnect, SQLAlchemy drops
every pooled connection that is as old, and the next checkouts connect afresh.
"""

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

IDLE_BEFORE_PING = 5.0  # seconds in the pool after which a connection is checked before use
_RETURNED_AT = "helpdesk_returned_at"


def ping_when_idle(engine: Engine, idle_seconds: float = IDLE_BEFORE_PING) -> None:
    """Check a connection at checkout if it sat unused for more than ``idle_seconds``; a dead
    one is replaced by a fresh connection (the pool retries when a checkout raises
    ``DisconnectionError``)."""

    @event.listens_for(engine, "checkin")
    def returned(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def taken(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection) -> None:
        returned_at = record.info.get(_RETURNED_AT)
        if returned_at is None or time.monotonic() - returned_at <= idle_seconds:
            return  # just connected, or in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"pooled connection failed its check: {exc}") from exc
