"""Which session to use when, and the SQLite engine that makes the choice matter.

On PostgreSQL every session behaves alike. On SQLite there is one writer at a time and a
reader sees the snapshot its transaction began with, so the kind of session decides who waits:

- **Write session** (``app.state.sessionmaker``, ``SessionDep``): for anything that may write.
  On SQLite it queues on an asyncio lock (``QueuedWriterSession``), then begins IMMEDIATE and
  holds the write lock until commit: keep it short, commit at the edge.
- **Read session** (``app.state.read_sessionmaker``, ``ReadSessionDep``): for routes that only
  read. It begins DEFERRED, never queues and never blocks writers; it must not write after
  reading (a deferred transaction that upgrades fails with SQLITE_BUSY).
- **Fresh reader** (``fresh_reader(read_sessionmaker)``; pages use ``web.sessions``): a new
  read session opened *after* the request's write session committed, to render what the write
  changed. The request's read session began before the commit and would show the old snapshot;
  reading through the write session would begin a new write transaction for the whole render.
- **Readers like a sessionmaker** (``readers_like(sessionmaker)``): background workers look
  whether anything is due with these before they take a write session.
- **begin_write(session)**: a read session that must now write (tests arranging data) ends its
  transaction and begins one that holds the write lock from the start.
"""

import asyncio
import sqlite3
import time
from functools import partial
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from helpdesk.storage import sqlite
from helpdesk.storage.context import SharedContext, session_context, sessionmaker_info

LOCK_WAIT_SECONDS = 30  # how long a writer waits for another process's write lock
_BEGIN = {mode: f"BEGIN {mode}" for mode in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE")}
_BEGIN_MODE = "sqlite_begin"
_BEGIN_WITHOUT_WAITING = "helpdesk_begin_without_waiting"


def dialect_of(session: AsyncSession) -> str:
    """``sqlite`` or ``postgresql``: the few places SQL differs ask this."""
    return session.get_bind().dialect.name


def create_sqlite_engine(database_url: str, **kwargs: Any) -> AsyncEngine:
    """A SQLite engine with WAL, foreign keys, inline connections and writers that queue."""
    path = sqlite.database_path(database_url)
    # LIFO: the connection used last is used next. Each SQLite connection has its own page
    # cache, and in WAL mode a commit by one connection empties every other's; handing
    # out the same warm connection keeps the indexes a call reads in memory.
    kwargs.setdefault("pool_use_lifo", True)
    engine = create_async_engine(
        database_url, async_creator=partial(sqlite.connect, path, timeout=30), **kwargs)
    _configure_sqlite(engine, sqlite.WalCheckpointer(path))
    return engine


def _configure_sqlite(engine: AsyncEngine, checkpointer: sqlite.WalCheckpointer) -> None:
    # SQLite's deferred transactions fail with SQLITE_BUSY when a reader later writes while
    # another writer committed in between. BEGIN IMMEDIATE makes writers queue (busy_timeout)
    # instead, which is what a single embedded process wants.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Checkpoints are the background thread's job (sqlite.WalCheckpointer), not a commit's.
        cursor.execute(f"PRAGMA wal_autocheckpoint={sqlite.INLINE_CHECKPOINT_PAGES}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={LOCK_WAIT_SECONDS * 1000}")
        # 64 MiB of page cache (the default is 2 MiB): imports and the phone lookups touch pages
        # all over the customer and order indexes, and re-reading them dominated both.
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.close()
        checkpointer.ensure_running()

    event.listen(engine.sync_engine, "engine_disposed", lambda _engine: checkpointer.stop())

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        options = connection.get_execution_options()
        mode = options.get(_BEGIN_MODE, "IMMEDIATE")
        # Straight to the driver: SQLAlchemy's statement machinery would cost several times
        # what SQLite needs to begin, on every transaction (see storage.prepared).
        raw = sqlite.driver_connection(connection)
        if not options.get(_BEGIN_WITHOUT_WAITING):
            raw.execute(_BEGIN[mode])
            return
        raw.execute("PRAGMA busy_timeout=0")
        try:
            raw.execute(_BEGIN[mode])
        finally:
            raw.execute(f"PRAGMA busy_timeout={LOCK_WAIT_SECONDS * 1000}")


def sqlite_sessionmaker(
    engine: AsyncEngine, info: dict[str, Any] | None, *, read_only: bool
) -> async_sessionmaker[AsyncSession]:
    """Write sessions that queue, or read-only sessions that begin DEFERRED (see the module)."""
    if read_only:
        return async_sessionmaker(engine.execution_options(**{_BEGIN_MODE: "DEFERRED"}),
                                  expire_on_commit=False, autoflush=False, info=info)
    shared = SharedContext(write_queue=asyncio.Lock())
    return async_sessionmaker(engine, class_=QueuedWriterSession, expire_on_commit=False,
                              autoflush=False, info=sessionmaker_info(shared, info))


def readers_like(sessionmaker: async_sessionmaker[AsyncSession]) -> async_sessionmaker[AsyncSession]:
    """Read-only sessions on the same engine: on SQLite they neither queue nor lock for writing.

    Background workers look with these whether anything is due before they take a write
    session; woken after every commit, they would otherwise queue once per commit.
    """
    engine: AsyncEngine = sessionmaker.kw["bind"]
    if engine.dialect.name != "sqlite":
        return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
    return sqlite_sessionmaker(engine, None, read_only=True)


def fresh_reader(read_sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncSession:
    """A new read session, for rendering what a write session just committed (see the module)."""
    return read_sessionmaker()


async def begin_write(session: AsyncSession) -> None:
    """End the session's transaction and begin one that holds SQLite's write lock from the start.

    For a read session that has to write after all: a deferred transaction that read and then
    writes fails at once with SQLITE_BUSY when another connection committed in between.
    """
    await session.commit()
    await session.connection(execution_options={_BEGIN_MODE: "IMMEDIATE"})


class QueuedWriterSession(AsyncSession):
    """A SQLite write session that waits its turn on the event loop.

    SQLite has one writer at a time; left to itself a waiting writer sleeps in SQLite's busy
    handler in growing steps (up to 100 ms), which wrecks latency under load. Queueing on an
    asyncio lock hands the database over the moment the previous writer finishes.
    """

    def _write_queue(self) -> asyncio.Lock:
        queue = session_context(self).shared.write_queue
        assert queue is not None, "write sessions come from sqlite_sessionmaker"
        return queue

    async def __aenter__(self) -> "QueuedWriterSession":
        await self._write_queue().acquire()
        try:
            await self._begin_without_blocking()
        except BaseException:
            self._write_queue().release()
            raise
        return self

    async def _begin_without_blocking(self) -> None:
        """Take SQLite's write lock, waiting for another process's on the event loop.

        Statements run on the loop's thread, so SQLite's own busy handler, waiting inside the
        driver for a CLI import or a second server to commit, would stop every socket and
        request of this process meanwhile. The transaction begins without waiting instead,
        and while the lock is taken the session sleeps and tries again.
        """
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        pause = 0.002
        while True:
            try:
                await self.connection(execution_options={_BEGIN_WITHOUT_WAITING: True})
                return
            except (sqlite3.OperationalError, DBAPIError) as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            await self.close()
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    async def __aexit__(self, *exc: object) -> None:
        try:
            await super().__aexit__(*exc)
        finally:
            self._write_queue().release()
