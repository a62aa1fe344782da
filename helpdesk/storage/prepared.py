"""Hot-path statements run straight on SQLite's driver, compiled once.

A Core statement through SQLAlchemy's async engine costs about 100 µs of Python on a small VM
(execution context, greenlet hop, result wrapping), several times what SQLite needs for an
indexed lookup. The screen pop and the profile run a dozen such statements per call, so on
SQLite they go through ``rows`` (``first``, ``execute``; ``rows_now``, ``first_now`` and
``execute_many_now`` in synchronous commit hooks) instead: the statement is compiled once, each
call binds its values through the columns' own processors and runs on the session's connection
(in its transaction), and rows come back with the columns' result processors applied. On
PostgreSQL the asynchronous calls run on asyncpg the same way (``storage.postgres``); what
neither can run takes SQLAlchemy's usual path and gets the same rows.

Each statement that returns rows is a ``Query``: the statement and the NamedTuple its rows come
back as, whose fields name the statement's columns in order (checked when the query is built),
so callers read ``row.inbox_id``, never ``row[1]``.

Only statements built once at import belong here (they are cached by identity).
"""

import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler

from helpdesk.storage import postgres
from helpdesk.storage.bulk import fast_bind_processor
from helpdesk.storage.context import RememberedConnection, session_context
from helpdesk.storage.sqlite import driver_connection
from helpdesk.storage.types import UTCDateTime, processed_rows

Processor = Callable[[Any], Any]
Row = TypeVar("Row", bound=tuple[Any, ...])
_POSTCOMPILE = re.compile(r"__\[POSTCOMPILE_(\w+)\]")


@dataclass(frozen=True)
class _Slot:
    """One ``?`` (or an expanding list of them) in the compiled SQL."""

    name: str
    process: Processor | None
    fixed: bool  # its value was given when the statement was built
    value: Any
    expanding: bool  # an IN list given per call: one ``?`` per item


@dataclass(frozen=True)
class Prepared:
    """A statement compiled for SQLite, ready to bind and run."""

    statement: Executable
    sql: str
    slots: tuple[_Slot, ...]
    results: tuple[Processor | None, ...]

    def bind(self, params: dict[str, Any]) -> tuple[str, list[Any]]:
        """The SQL (IN lists spelled out) and its positional values for ``params``."""
        values: list[Any] = []
        sql = self.sql
        for slot in self.slots:
            value = params[slot.name] if not slot.fixed or slot.name in params else slot.value
            if slot.expanding:
                items = list(value)
                if not items:
                    raise _NeedsSqlAlchemy  # SQLAlchemy's empty-IN rendering
                sql = sql.replace(f"__[POSTCOMPILE_{slot.name}]", ", ".join("?" * len(items)), 1)
                process = slot.process
                values.extend(item if process is None or item is None else process(item)
                              for item in items)
            elif slot.process is None or value is None:
                values.append(value)
            else:
                values.append(slot.process(value))
        return sql, values

    def shape(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Rows with each column's result processor applied."""
        if not any(self.results):
            return rows
        return processed_rows(rows, self.results)


@dataclass(frozen=True)
class Query(Generic[Row]):
    """A statement built once at import, and the NamedTuple class its rows come back as."""

    statement: Executable
    row: type[Row]
    make: Callable[[Iterable[Any]], Row] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields: tuple[str, ...] = getattr(self.row, "_fields", ())
        columns = [column.key for column in getattr(self.statement, "exported_columns", ())]
        if len(fields) != len(columns):
            raise TypeError(f"{self.row.__name__} has fields {fields}, the statement returns {columns}")
        object.__setattr__(self, "make", getattr(self.row, "_make"))  # noqa: B009 (not on tuple[Any, ...])


class _NeedsSqlAlchemy(Exception):
    """This statement or these values are left to SQLAlchemy's own path."""


_cache: dict[int, Prepared | None] = {}


def prepare(statement: Executable, dialect: Dialect) -> Prepared | None:
    """``statement`` compiled for SQLite once (None: SQLAlchemy must run it)."""
    key = id(statement)
    if key in _cache:
        found = _cache[key]
        if found is None or found.statement is statement:
            return found
    try:
        prepared: Prepared | None = _compile(statement, dialect)
    except _NeedsSqlAlchemy:
        prepared = None
    _cache[key] = prepared
    return prepared


def _compile(statement: Executable, dialect: Dialect) -> Prepared:
    compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    assert isinstance(compiled, SQLCompiler)
    sql = compiled.string
    slots: list[_Slot] = []
    for name in compiled.positiontup or ():
        bind = compiled.binds[name]
        process = fast_bind_processor(bind.type, dialect)
        fixed = not bind.required  # a literal, a LIMIT: given when the statement was built
        token = f"__[POSTCOMPILE_{name}]"
        if token in sql and fixed:
            # A literal IN list or a literal rendered at execution: bound as plain values now.
            items = list(bind.value or ()) if bind.expanding else [bind.value]
            sql = sql.replace(token, ", ".join("?" * len(items)), 1)
            slots.extend(_Slot(name, process, True, item, False) for item in items)
        else:
            slots.append(_Slot(name, process, fixed, bind.value, bind.expanding))
    left = {m.group(1) for m in _POSTCOMPILE.finditer(sql)} - {s.name for s in slots if s.expanding}
    if left:
        raise _NeedsSqlAlchemy(left)
    columns = compiled._result_columns
    results = tuple(_result_processor(column.type, dialect) for column in columns)
    return Prepared(statement, sql, tuple(slots), results)


def _result_processor(type_: Any, dialect: Dialect) -> Processor | None:
    if isinstance(type_, UTCDateTime):
        return _utc_from_sqlite
    processor: Processor | None = type_.dialect_impl(dialect).result_processor(dialect, None)
    return processor


def _utc_from_sqlite(value: Any) -> Any:
    # SQLite's DATETIME text as UTCDateTime reads it, by C methods rather than a regex.
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def rows(
    on: AsyncSession | AsyncConnection, query: Query[Row], params: dict[str, Any] | None = None
) -> list[Row]:
    """All rows of ``query``, in ``on``'s transaction."""
    make = query.make
    return [make(row) for row in await _tuples(on, query.statement, params)]


async def first(
    on: AsyncSession | AsyncConnection, query: Query[Row], params: dict[str, Any] | None = None
) -> Row | None:
    """The first row of ``query``, or None."""
    found = await _tuples(on, query.statement, params)
    return query.make(found[0]) if found else None


async def execute(
    on: AsyncSession | AsyncConnection, statement: Executable, params: dict[str, Any] | None = None
) -> None:
    """Run a statement that returns no rows (an INSERT without RETURNING)."""
    await _tuples(on, statement, params)


async def _tuples(
    on: AsyncSession | AsyncConnection, statement: Executable, params: dict[str, Any] | None
) -> Sequence[Any]:
    connection = await _connection_of(on) if isinstance(on, AsyncSession) else on
    found = _on_sqlite(connection.sync_connection, statement, params or {})
    if found is not None:
        return found
    found = await postgres.rows(connection.sync_connection, statement, params or {})
    if found is not None:
        return found
    result = await connection.execute(statement, params)
    return result.all() if result.returns_rows else ()


async def execute_many(session: AsyncSession, statement: Executable, many: list[dict[str, Any]]) -> None:
    """Run ``statement`` once per parameter set (a few rows: on SQLite no greenlet hop at all)."""
    if not many:
        return
    connection = await _connection_of(session)
    sync = connection.sync_connection
    if sync is not None and connection.dialect.name == "sqlite":
        execute_many_now(sync, statement, many)
    elif not await postgres.execute_many(sync, statement, many):
        await connection.execute(statement, many)


async def _connection_of(session: AsyncSession) -> AsyncConnection:
    # AsyncSession.connection() hops through a greenlet on every call (about as long as the
    # statement); the connection is remembered for as long as the session's transaction lasts.
    context = session_context(session)
    transaction = session.sync_session.get_transaction()
    known = context.connection
    if known is not None and transaction is known.transaction and transaction.is_active:
        return known.connection
    connection = await session.connection()
    current = session.sync_session.get_transaction()
    assert current is not None  # the connection just began it
    context.connection = RememberedConnection(current, connection)
    return connection


def rows_now(
    connection: Connection, query: Query[Row], params: dict[str, Any] | None = None
) -> list[Row]:
    """``rows`` for synchronous code on a session's connection (the session's commit hooks)."""
    found: Sequence[Any] | None = _on_sqlite(connection, query.statement, params or {})
    if found is None:
        found = postgres.rows_now(connection, query.statement, params or {})
    if found is None:
        found = connection.execute(query.statement, params).all()
    make = query.make
    return [make(row) for row in found]


def first_now(
    connection: Connection, query: Query[Row], params: dict[str, Any] | None = None
) -> Row | None:
    """``first`` for synchronous code on a session's connection."""
    found = rows_now(connection, query, params)
    return found[0] if found else None


def execute_many_now(connection: Connection, statement: Executable, many: list[dict[str, Any]]) -> None:
    """Run ``statement`` once per parameter set, as one executemany."""
    compiled = _prepared_for(connection, statement)
    if compiled is None or not many:
        if not many or not postgres.execute_many_now(connection, statement, many):
            connection.execute(statement, many)
        return
    try:
        bound = [compiled.bind(params) for params in many]
    except _NeedsSqlAlchemy:
        connection.execute(statement, many)
        return
    sql, values = bound[0][0], [values for _, values in bound]
    cursor = _cursor(connection, sql, values, many=True)
    try:
        cursor.executemany(sql, values)
    finally:
        cursor.close()


def _prepared_for(connection: Connection | None, statement: Executable) -> Prepared | None:
    if connection is None or connection.dialect.name != "sqlite":
        return None
    return prepare(statement, connection.dialect)


def _on_sqlite(
    connection: Connection | None, statement: Executable, params: dict[str, Any]
) -> list[tuple[Any, ...]] | None:
    compiled = _prepared_for(connection, statement)
    if compiled is None:
        return None
    assert connection is not None
    try:
        sql, values = compiled.bind(params)
    except _NeedsSqlAlchemy:
        return None
    cursor = _cursor(connection, sql, values)
    try:
        cursor.execute(sql, values)
        return compiled.shape(cursor.fetchall())
    finally:
        cursor.close()


def _cursor(connection: Connection, sql: str, values: Any, *, many: bool = False) -> sqlite3.Cursor:
    cursor = driver_connection(connection).cursor()
    if connection._has_events or connection.engine._has_events:  # listeners, e.g. tests counting
        connection.dispatch.before_cursor_execute(connection, cursor, sql, values, None, many)
    return cursor
