"""Hot-path statements run straight on asyncpg, inside the transaction SQLAlchemy began.

``storage.prepared`` runs its statements on SQLite's driver directly; this is the same for
PostgreSQL. Through SQLAlchemy's async engine each Core statement builds an execution context,
hops through a greenlet, goes through the DB-API adapter's cursor and is wrapped in a Result:
several times the Python that asyncpg itself spends sending it and reading the reply. Here a
statement is compiled once (for the asyncpg dialect, so the SQL and its ``$n::TYPE`` casts are
what SQLAlchemy would send), its values go through the columns' bind processors, and its rows
come back through their result processors: the same rows, in the same transaction.

SQLAlchemy's asyncpg adapter begins the driver's transaction lazily, at a transaction's first
statement; until it has, a statement sent here would run outside it. So the first statement of
each transaction is left to SQLAlchemy, as is any statement this module cannot bind (a value
SQLAlchemy renders into the SQL at execution; IN lists go as arrays). Errors come back as
SQLAlchemy's own exception classes, as they would through the engine. Only this module reads
the adapter's private state.
"""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect, exc
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeEngine
from sqlalchemy.util import await_

from helpdesk.storage.types import processed_rows

Processor = Callable[[Any], Any]
_POSTCOMPILE = re.compile(r"__\[POSTCOMPILE_\w+\]")
_NUMBERED = re.compile(r"\$(\d+)")
_IN_LIST = re.compile(r"(NOT )?IN \(__\[POSTCOMPILE_(\w+)\]\)")


@dataclass
class Compiled:
    """A statement compiled for asyncpg: its SQL, what fills each ``$n``, how rows come back."""

    statement: Executable
    sql: str
    names: tuple[str, ...]  # the bind name behind $1, $2, …
    given: dict[str, Any]  # values fixed when the statement was built (a LIMIT, a literal)
    binds: tuple[Processor | None, ...]
    lists: frozenset[str]  # names bound to a list: an IN list, sent as one array
    columns: tuple[TypeEngine[Any], ...]  # what its rows hold, in order (none: it returns none)
    # Each column's result processor; some depend on the type PostgreSQL names for the column
    # (a NUMERIC or a float), so they are made at the statement's first run (see ``_know_results``).
    results: tuple[Processor | None, ...] | None = None

    def values(self, params: dict[str, Any]) -> list[Any]:
        """The positional values for ``params`` (a missing name raises KeyError, as it should)."""
        values = []
        for name, process in zip(self.names, self.binds, strict=True):
            value = params[name] if name in params or name not in self.given else self.given[name]
            if name in self.lists:
                values.append([item if process is None or item is None else process(item)
                               for item in value])
            else:
                values.append(value if process is None or value is None else process(value))
        return values

    def shape(self, rows: Sequence[Any]) -> list[tuple[Any, ...]]:
        """asyncpg's records as tuples, with each column's result processor applied."""
        assert self.results is not None
        return processed_rows(rows, self.results)


_cache: dict[tuple[int, bool], Compiled | None] = {}


def compiled_for(statement: Executable, dialect: Dialect, *, many: bool = False) -> Compiled | None:
    """``statement`` compiled once, for one parameter set or for executemany (where an INSERT
    gets no implicit RETURNING); None: SQLAlchemy must run it every time."""
    key = (id(statement), many)
    if key in _cache:
        found = _cache[key]
        if found is None or found.statement is statement:
            return found
    made = _compile(statement, dialect, many)
    _cache[key] = made
    return made


def _compile(statement: Executable, dialect: Dialect, many: bool) -> Compiled | None:
    compiled = statement.compile(dialect=dialect, for_executemany=many)  # type: ignore[attr-defined]
    assert isinstance(compiled, SQLCompiler)
    # SQLAlchemy numbers the other values $1, $2, … in order and spells an IN list out per
    # execution; here each list goes as one array value numbered after them, which PostgreSQL
    # reads with ``= ANY`` (``<> ALL`` for NOT IN): the same rows, an empty list included.
    names = [name for name in compiled.positiontup or () if not compiled.binds[name].expanding]
    if max(map(int, _NUMBERED.findall(compiled.string)), default=0) != len(names):
        return None  # numbered some other way than this module expects
    lists: list[str] = []

    def as_array(match: re.Match[str]) -> str:
        name = match.group(2)
        lists.append(name)
        element = dialect.type_compiler_instance.process(compiled.binds[name].type)
        operator = "<> ALL" if match.group(1) else "= ANY"
        return f"{operator}(${len(names) + len(lists)}::{element}[])"

    sql = _IN_LIST.sub(as_array, compiled.string)
    if _POSTCOMPILE.search(sql):
        return None  # a literal SQLAlchemy renders at execution other than an IN list
    names += lists
    binds = [compiled.binds[name] for name in names]
    columns = tuple(column.type for column in compiled._result_columns)
    return Compiled(
        statement, sql, tuple(names),
        {name: bind.value for name, bind in zip(names, binds, strict=True) if not bind.required},
        tuple(bind.type.dialect_impl(dialect).bind_processor(dialect) for bind in binds),
        frozenset(lists), columns, results=None if columns else ())


async def _know_results(compiled: Compiled, driver: Any, dialect: Dialect) -> None:
    """Make ``compiled``'s result processors from the column types PostgreSQL reports."""
    described = await driver.prepare(compiled.sql)
    oids = [attribute.type.oid for attribute in described.get_attributes()]
    compiled.results = tuple(type_.dialect_impl(dialect).result_processor(dialect, oid)
                             for type_, oid in zip(compiled.columns, oids, strict=True))


def _ready(
    connection: Connection | None, statement: Executable, *, many: bool = False
) -> tuple[Compiled, Any] | None:
    """``statement`` compiled and the asyncpg connection to run it on, once SQLAlchemy's
    adapter has begun the transaction (None: SQLAlchemy's path runs it, and begins it)."""
    if connection is None or connection.dialect.driver != "asyncpg":
        return None
    pooled = connection.connection
    if getattr(pooled.dbapi_connection, "_transaction", None) is None:
        return None  # not begun yet, or autocommit
    compiled = compiled_for(statement, connection.dialect, many=many)
    return None if compiled is None else (compiled, pooled.driver_connection)


async def rows(
    connection: Connection | None, statement: Executable, params: dict[str, Any]
) -> list[tuple[Any, ...]] | None:
    """The rows of ``statement`` run on asyncpg directly (None: run it through SQLAlchemy).

    ``connection`` is an ``AsyncConnection``'s ``sync_connection``.
    """
    ready = _ready(connection, statement)
    if ready is None:
        return None
    assert connection is not None
    compiled, driver = ready
    values = compiled.values(params)
    _announce(connection, compiled.sql, values, many=False)
    try:
        if compiled.results is None:
            await _know_results(compiled, driver, connection.dialect)
        found = await driver.fetch(compiled.sql, *values)
    except Exception as error:
        raise _translated(connection, error, compiled.sql, values) from error
    return compiled.shape(found)


async def execute_many(
    connection: Connection | None, statement: Executable, many: list[dict[str, Any]]
) -> bool:
    """Run ``statement`` once per parameter set in one asyncpg executemany (False: not run)."""
    ready = _ready(connection, statement, many=True)
    if ready is None or ready[0].columns:
        return False
    assert connection is not None
    compiled, driver = ready
    values = [compiled.values(params) for params in many]
    _announce(connection, compiled.sql, values, many=True)
    try:
        await driver.executemany(compiled.sql, values)
    except Exception as error:
        raise _translated(connection, error, compiled.sql, values) from error
    return True


def rows_now(
    connection: Connection, statement: Executable, params: dict[str, Any]
) -> list[tuple[Any, ...]] | None:
    """``rows`` for synchronous code that SQLAlchemy runs on the event loop (commit hooks)."""
    if _ready(connection, statement) is None:
        return None
    return await_(rows(connection, statement, params))


def execute_many_now(connection: Connection, statement: Executable, many: list[dict[str, Any]]) -> bool:
    """``execute_many`` for synchronous code that SQLAlchemy runs on the event loop."""
    if _ready(connection, statement, many=True) is None:
        return False
    return await_(execute_many(connection, statement, many))


def _announce(connection: Connection, sql: str, values: Any, *, many: bool) -> None:
    # Listeners of the engine's statements (tests counting them) see these too.
    if connection._has_events or connection.engine._has_events:
        connection.dispatch.before_cursor_execute(connection, None, sql, values, None, many)


def _translated(connection: Connection, error: Exception, sql: str, values: Any) -> Exception:
    """``error`` as SQLAlchemy raises it through the engine (IntegrityError and the like); a
    connection found dead is invalidated, so the pool does not hand it out again."""
    adapter: Any = connection.connection.dbapi_connection
    dialect = connection.dialect
    dbapi_error_class = dialect.loaded_dbapi.Error
    try:
        adapter._handle_exception(error)  # raises the DB-API's form of the driver's error
    except dbapi_error_class as dbapi_error:
        dead = dialect.is_disconnect(dbapi_error, adapter, None)
        if dead:
            connection.invalidate(dbapi_error)
        return exc.DBAPIError.instance(sql, values, dbapi_error, dbapi_error_class,
                                       connection_invalidated=dead)
    except Exception as other:  # not the driver's: handed on as it is
        return other
    return error
