"""SQLite connections for the async engine that run statements on the event loop's own thread.

aiosqlite runs every statement on a worker thread and wakes the loop for each result. On small
VMs that hop costs about half a millisecond, while an indexed SQLite statement takes tens of
microseconds: ingest spent most of its time waiting for thread wake-ups. These connections keep
aiosqlite's interface (which SQLAlchemy's dialect drives) but run each call inline.

The price: a statement blocks the loop while it runs, so slow queries must stay rare, and one
process must not wait on SQLite's lock while holding the loop; write sessions therefore queue on
an asyncio lock before they begin (see ``helpdesk.storage.sessions.QueuedWriterSession``).
"""

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable, Generator
from functools import partial
from typing import Any

import aiosqlite

log = logging.getLogger(__name__)


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
        """The driver's connection, for statements run without SQLAlchemy (storage.prepared)."""
        return self._conn

    def __await__(self) -> Generator[Any, None, "InlineConnection"]:
        return self._connect().__await__()  # type: ignore[return-value]


async def connect(database: str, **kwargs: Any) -> InlineConnection:
    """Open ``database`` like ``aiosqlite.connect``, for ``create_async_engine(async_creator=…)``."""
    kwargs.setdefault("check_same_thread", False)
    connection = InlineConnection(partial(sqlite3.connect, database, **kwargs), iter_chunk_size=64)
    return await connection


def driver_connection(connection: Any) -> sqlite3.Connection:
    """The ``sqlite3`` connection under a SQLAlchemy ``Connection`` of a SQLite engine."""
    driver: InlineConnection = connection.connection.driver_connection
    return driver.sqlite3_connection


def database_path(url: str) -> str:
    """The file path (or ``:memory:``) of a ``sqlite+aiosqlite:///…`` URL."""
    path = url.split(":///", 1)[1] if ":///" in url else ":memory:"
    return path.split("?", 1)[0] or ":memory:"


# A serving connection checkpoints by itself only once the log holds this many pages (about
# 40 MiB): a net for when the background checkpointer cannot keep up, never the usual path.
INLINE_CHECKPOINT_PAGES = 10_000
CHECKPOINT_INTERVAL_SECONDS = 0.5


class WalCheckpointer:
    """Copies the write-ahead log back into the database file from a thread of its own.

    Left to itself, SQLite checkpoints inside the commit that takes the log past 1,000 pages:
    that one request copies everyone's pages and syncs the file. With a screen pop writing about
    ten pages, one call in a hundred paid for it, and on a virtual disk that tripled the 99th
    percentile. Here serving connections leave the work to this thread, which runs a PASSIVE
    checkpoint every ``CHECKPOINT_INTERVAL_SECONDS``. PASSIVE never waits for and never blocks readers or
    writers, and the driver releases the GIL while SQLite copies and syncs, so the work runs on
    another core beside requests and imports.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.interval = CHECKPOINT_INTERVAL_SECONDS
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def ensure_running(self) -> None:
        """Start the thread unless it runs already (called as connections open)."""
        with self._guard:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"wal-checkpoint {self.path}", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread; a later ``ensure_running`` starts a new one."""
        with self._guard:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        connection = sqlite3.connect(self.path, isolation_level=None)
        try:
            while not self._stop.wait(self.interval):
                self.checkpoint(connection)
        finally:
            connection.close()

    def checkpoint(self, connection: sqlite3.Connection) -> None:
        """One PASSIVE pass; a busy or vanished database is tried again next time."""
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            log.warning("WAL checkpoint of %s failed: %s", self.path, exc)
