"""Async engine, sessions, and the few database helpers every domain shares."""

import asyncio
import hashlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache, partial
from operator import itemgetter
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from sqlalchemy import (
    BigInteger,
    DateTime,
    Dialect,
    String,
    Table,
    bindparam,
    event,
    insert,
    text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from helpdesk import sqlite

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


Model = TypeVar("Model", bound=SQLModel)


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def construct(model: type[Model], **values: Any) -> Model:
    """A new table-model instance, built the way SQLAlchemy builds the rows it loads.

    The values (and the defaults of the fields not given) go straight into the instance's
    dict. ``Model(**values)`` assigns every field, defaults included, through pydantic's and
    SQLAlchemy's attribute machinery, which costs a call's 24 fields about 0.2–0.4 ms. Nothing
    is validated, so this is for rows the code itself assembles from checked values. Later
    assignments are tracked as usual.
    """
    instance = model.__mapper__.class_manager.new_instance()  # type: ignore[attr-defined]
    for name, (default, factory) in _defaults(model).items():
        if name not in values:
            values[name] = default if factory is None else factory()
    instance.__dict__.update(values)
    return instance


@cache
def _defaults(model: type[SQLModel]) -> dict[str, tuple[Any, Callable[[], Any] | None]]:
    # Each field's default, or the factory that makes one; asking pydantic per instance costs
    # a deep copy of every default.
    return {name: (field.default, field.default_factory)  # type: ignore[misc]
            for name, field in model.model_fields.items()}


class UTCDateTime(TypeDecorator[datetime]):
    """A datetime stored as UTC and always read back timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class EnumString(TypeDecorator[StrEnum]):
    """A StrEnum stored as plain text (no native enum types to migrate) and read back as the enum."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[StrEnum], length: int) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: StrEnum | str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> StrEnum | None:
        return None if value is None else self.enum(value)


def create_engine(database_url: str, **kwargs: Any) -> AsyncEngine:
    """Build the engine; SQLite gets WAL, foreign keys and write transactions that queue."""
    if database_url.startswith("sqlite"):
        path = sqlite.database_path(database_url)
        # LIFO: the connection used last is used next. Each SQLite connection has its own page
        # cache, and in WAL mode a commit by one connection empties every other's; handing
        # out the same warm connection keeps the indexes a call reads in memory.
        kwargs.setdefault("pool_use_lifo", True)
        engine = create_async_engine(
            database_url, async_creator=partial(sqlite.connect, path, timeout=30), **kwargs)
        _configure_sqlite(engine, sqlite.WalCheckpointer(path))
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_async_engine(database_url, pool_pre_ping=True, **kwargs)


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
        mode = options.get("sqlite_begin", "IMMEDIATE")
        # Straight to the driver: SQLAlchemy's statement machinery would cost several times
        # what SQLite needs to begin, on every transaction (see helpdesk.prepared).
        raw = connection.connection.driver_connection.sqlite3_connection
        if not options.get(BEGIN_WITHOUT_WAITING):
            raw.execute(_BEGIN[mode])
            return
        raw.execute("PRAGMA busy_timeout=0")
        try:
            raw.execute(_BEGIN[mode])
        finally:
            raw.execute(f"PRAGMA busy_timeout={LOCK_WAIT_SECONDS * 1000}")


_BEGIN = {mode: f"BEGIN {mode}" for mode in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE")}
LOCK_WAIT_SECONDS = 30  # how long a writer waits for another process's write lock
BEGIN_WITHOUT_WAITING = "helpdesk_begin_without_waiting"


def create_sessionmaker(
    engine: AsyncEngine, info: dict[str, Any] | None = None, *, read_only: bool = False
) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit; ``info`` is copied to each.

    On SQLite, ``read_only`` sessions begin DEFERRED so readers never wait for the write lock
    (they must not write after reading: that is what the default IMMEDIATE sessions are for).
    """
    info = dict(info or {})
    if engine.dialect.name == "sqlite" and not read_only:
        info[WRITE_QUEUE] = asyncio.Lock()
        return async_sessionmaker(engine, class_=QueuedWriterSession, expire_on_commit=False,
                                  autoflush=False, info=info)
    bind = engine.execution_options(sqlite_begin="DEFERRED") if read_only else engine
    return async_sessionmaker(bind, expire_on_commit=False, autoflush=False, info=info)


WRITE_QUEUE = "helpdesk.sqlite_write_queue"


def readers_like(sessionmaker: async_sessionmaker[AsyncSession]) -> async_sessionmaker[AsyncSession]:
    """Read-only sessions on the same engine: on SQLite they neither queue nor lock for writing.

    Background workers look with these whether anything is due before they take a write
    session; woken after every commit, they would otherwise queue once per commit.
    """
    return create_sessionmaker(sessionmaker.kw["bind"], read_only=True)


class QueuedWriterSession(AsyncSession):
    """A SQLite write session that waits its turn on the event loop.

    SQLite has one writer at a time; left to itself a waiting writer sleeps in SQLite's busy
    handler in growing steps (up to 100 ms), which wrecks latency under load. Queueing on an
    asyncio lock hands the database over the moment the previous writer finishes.
    """

    async def __aenter__(self) -> "QueuedWriterSession":
        await self.info[WRITE_QUEUE].acquire()
        try:
            await self._begin_without_blocking()
        except BaseException:
            self.info[WRITE_QUEUE].release()
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
                await self.connection(execution_options={BEGIN_WITHOUT_WAITING: True})
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
            self.info[WRITE_QUEUE].release()


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


def dialect_of(session: AsyncSession) -> str:
    """``sqlite`` or ``postgresql``: the few places SQL differs ask this."""
    return session.get_bind().dialect.name


async def insert_many(session: AsyncSession, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows of the same keys in one executemany (imports: thousands a batch)."""
    if not rows:
        return
    defaults = _column_defaults(table, rows[0].keys())
    if defaults:
        rows = [{**defaults, **row} for row in rows]
    await execute_many(session, insert(table).values({n: bindparam(n) for n in rows[0]}), rows)


async def execute_many(
    session: AsyncSession, statement: UpdateBase, rows: list[dict[str, Any]]
) -> None:
    """Run one statement for many parameter sets (named by bindparam) as a single executemany.

    On SQLite the statement is compiled once and each row's values go to the driver through
    the columns' bind processors directly: SQLAlchemy's own executemany spends ~25 µs a row
    preparing parameters, more than SQLite spends writing them. Elsewhere SQLAlchemy's batched
    multi-row VALUES is already fast.
    """
    if not rows:
        return
    if dialect_of(session) != "sqlite":
        await session.execute(statement, rows)
        return
    connection = await session.connection()
    compiled = statement.compile(dialect=connection.dialect)
    order = compiled.positiontup or []
    converted = [(index, _last_remembered(process)) for index, name in enumerate(order)
                 if (process := fast_bind_processor(compiled.binds[name].type, connection.dialect))]
    values_of = itemgetter(*order) if len(order) > 1 else lambda row: (row[order[0]],)
    parameters = []
    for row in rows:
        values = list(values_of(row))
        for index, process in converted:
            if values[index] is not None:
                values[index] = process(values[index])
        parameters.append(tuple(values))
    await connection.exec_driver_sql(compiled.string, parameters)


def _last_remembered(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    # A batch's rows often share a value (the batch's created_at): converted once.
    last: list[Any] = [object(), None]

    def converted(value: Any) -> Any:
        if value is not last[0]:
            last[0], last[1] = value, process(value)
        return last[1]
    return converted


def fast_bind_processor(type_: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    """What turns a value of ``type_`` into the driver's (None: it goes as it is)."""
    if isinstance(type_, UTCDateTime):
        # SQLite's DateTime storage format, written by C methods rather than SQLAlchemy's
        # generic formatter (a third of an import's parameter time went there).
        return _sqlite_datetime
    processor: Callable[[Any], Any] | None = type_.dialect_impl(dialect).bind_processor(dialect)
    return processor


def _sqlite_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        return value.isoformat(" ", "microseconds")
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:-6]  # without its "+00:00"


def _column_defaults(table: Table, given: Iterable[str]) -> dict[str, Any]:
    """Python-side defaults of the columns rows leave out, taken once for the whole batch."""
    wanted = set(given)
    found: dict[str, Any] = {}
    for column in table.c:
        default = column.default
        if column.name in wanted or default is None or not hasattr(default, "arg"):
            continue
        found[column.name] = default.arg(None) if callable(default.arg) else default.arg
    return found


async def serialize_on(session: AsyncSession, key: str) -> None:
    """Hold a transaction-scoped lock on ``key`` so racing writers of one key go one at a time.

    PostgreSQL gets an advisory lock; SQLite's write transactions are already serial.
    """
    if dialect_of(session) != "postgresql":
        return
    await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(key)})


async def try_serialize_on(session: AsyncSession, key: str) -> bool:
    """Like ``serialize_on``, but False at once when another transaction holds ``key``."""
    if dialect_of(session) != "postgresql":
        return True
    taken = await session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _lock_key(key)})
    return bool(taken)


def _lock_key(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


async def next_counter(session: AsyncSession, name: str, count: int = 1) -> int:
    """Advance a named counter by ``count`` and return its new value (the last number taken).

    The row lock it takes is held until commit, so numbers are handed out in commit order.
    """
    result = await session.execute(
        text("UPDATE counter SET value = value + :n WHERE name = :name RETURNING value"),
        {"n": count, "name": name},
    )
    value = result.scalar_one_or_none()
    if value is None:
        await session.execute(
            text("INSERT INTO counter (name, value) VALUES (:name, :n)"), {"n": count, "name": name}
        )
        return count
    return int(value)


async def raise_counter(session: AsyncSession, name: str, value: int) -> None:
    """Set a named counter to ``value`` unless it is already higher (it never goes back)."""
    params = {"name": name, "v": value}
    await session.execute(text(
        "INSERT INTO counter (name, value) VALUES (:name, :v) ON CONFLICT (name) DO NOTHING"), params)
    await session.execute(text(
        "UPDATE counter SET value = :v WHERE name = :name AND value < :v"), params)


async def read_counter(session: AsyncSession, name: str) -> int:
    """A named counter's value; 0 when it was never set."""
    value = await session.scalar(text("SELECT value FROM counter WHERE name = :name"), {"name": name})
    return int(value or 0)


class Counter(SQLModel, table=True):
    """Named monotonically increasing numbers (event seq, ticket number)."""

    __tablename__ = "counter"

    name: str = Field(primary_key=True, max_length=40)
    value: int = Field(default=0, sa_type=BigInteger)
