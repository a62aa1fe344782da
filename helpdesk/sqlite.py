"""SQLite connections for the async engine that run statements on the event loop's own thread.

aiosqlite runs every statement on a worker thread and wakes the loop for each result. On small
VMs that hop costs about half a millisecond, while an indexed SQLite statement takes tens of
microseconds: ingest spent most of its time waiting for thread wake-ups. These connections keep
aiosqlite's interface (which SQLAlchemy's dialect drives) but run each call inline.

The price: a statement blocks the loop while it runs, so slow queries must stay rare, and one
process must not wait on SQLite's lock while holding the loop; write sessions therefore queue on
an asyncio lock before they begin (see ``helpdesk.db.QueuedWriterSession``).
"""

import asyncio
import sqlite3
from collections.abc import Callable, Generator
from functools import partial
from typing import Any

import aiosqlite


class _InlineQueue:
    """Stands in for aiosqlite's queue to its worker thread: runs each call at once."""

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as exc:  # handed to the awaiting caller, as aiosqlite does
            if future is not None and not future.done():
                future.set_exception(exc)
            return
        if future is not None and not future.done():
            future.set_result(result)


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection without its worker thread."""

    def __init__(self, connector: Callable[[], sqlite3.Connection], iter_chunk_size: int) -> None:
        super().__init__(connector, iter_chunk_size)
        self._tx = _InlineQueue()  # type: ignore[assignment]

    @property
    def sqlite3_connection(self) -> sqlite3.Connection:
        """The driver's connection, for statements run without SQLAlchemy (helpdesk.prepared)."""
        return self._conn

    def __await__(self) -> Generator[Any, None, "InlineConnection"]:
        return self._connect().__await__()  # type: ignore[return-value]


async def connect(database: str, **kwargs: Any) -> InlineConnection:
    """Open ``database`` like ``aiosqlite.connect``, for ``create_async_engine(async_creator=…)``."""
    kwargs.setdefault("check_same_thread", False)
    connection = InlineConnection(partial(sqlite3.connect, database, **kwargs), iter_chunk_size=64)
    return await connection


def database_path(url: str) -> str:
    """The file path (or ``:memory:``) of a ``sqlite+aiosqlite:///…`` URL."""
    path = url.split(":///", 1)[1] if ":///" in url else ":memory:"
    return path.split("?", 1)[0] or ":memory:"
