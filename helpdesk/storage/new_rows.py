"""New ORM rows for a hot path: made cheaply, inserted now by one statement, kept in the session.

The unit of work's flush costs several times the INSERT it runs (hooks, sorting, a greenlet hop,
result handling), and SQLModel's ``__init__`` assigns every field through SQLAlchemy's and
pydantic's ``__setattr__``. On ingest those were most of a new conversation's cost, so its
customer, ticket and message are ``made`` here and written by ``insert_new``; everywhere else,
plain ``session.add``.
"""

import copy
from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, TypeVar, cast

from pydantic.fields import FieldInfo
from sqlalchemy import Column, Table, bindparam, insert
from sqlalchemy import event as sa_event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapper, Session, configure_mappers, make_transient_to_detached

from helpdesk.storage import prepared
from helpdesk.storage.context import session_context

Made = TypeVar("Made")
_defaults: dict[type, tuple[tuple[str, Callable[[], Any]], ...]] = {}
_SHARED = (type(None), bool, int, float, str, bytes, Decimal, datetime, date, Enum)


def _default_of(info: FieldInfo) -> Callable[[], Any]:
    """What gives a field's default: its factory (ours take no arguments), the value itself
    when immutable, else a fresh copy each time (as pydantic gives)."""
    if info.default_factory is not None:
        return cast(Callable[[], Any], info.default_factory)
    value = info.default
    return (lambda: value) if isinstance(value, _SHARED) else (lambda: copy.deepcopy(value))


def made(kind: type[Made], **values: Any) -> Made:
    """A new (transient) instance of a SQLModel table class with ``values`` and the model's
    defaults, made the way SQLAlchemy makes a loaded row's object rather than by ``__init__``.
    Nothing is validated, as with ``__init__`` on a table class; unknown names raise."""
    defaults = _defaults.get(kind)
    if defaults is None:
        configure_mappers()  # attribute access on an object made before any query needs it
        defaults = tuple((name, _default_of(info))
                         for name, info in kind.model_fields.items()  # type: ignore[attr-defined]
                         if not info.is_required())
        _defaults[kind] = defaults
    unknown = values.keys() - kind.model_fields.keys()  # type: ignore[attr-defined]
    if unknown:
        raise TypeError(f"{kind.__name__} has no field {sorted(unknown)[0]}")
    obj: Made = sa_inspect(kind).class_manager.new_instance()
    state = obj.__dict__
    for name, default in defaults:
        if name not in values:
            state[name] = default()
    state.update(values)
    return obj


@dataclass(frozen=True)
class _NewRow:
    """How the rows of one mapped class are inserted: every column but the generated key."""

    query: prepared.Query[Any]
    attributes: tuple[tuple[str, str], ...]  # (attribute, bind name) of each column written
    key: str  # the attribute the generated primary key goes to


_new_rows: dict[type, _NewRow] = {}


def _new_row(kind: type) -> _NewRow:
    found = _new_rows.get(kind)
    if found is None:
        mapper: Mapper[Any] = sa_inspect(kind)
        table = cast(Table, mapper.local_table)
        (key_column,) = mapper.primary_key
        written = [(mapper.get_property_by_column(column).key, column)
                   for column in table.columns if column is not key_column]
        for _, column in written:
            if isinstance(column, Column) and column.server_default is not None:
                raise TypeError(f"{column} has a server default: not for insert_new")
        statement = insert(table).values({column.key: bindparam(column.key) for _, column in written})
        found = _NewRow(
            prepared.Query(statement.returning(key_column), namedtuple("Key", [str(key_column.key)])),
            tuple((attribute, column.key) for attribute, column in written),
            mapper.get_property_by_column(key_column).key)
        _new_rows[kind] = found
    return found


class _Inserted(list[Any]):
    """The objects ``insert_new`` put in a session's current transaction."""


async def insert_new(session: AsyncSession, obj: Any) -> None:
    """Insert a new mapped object now, by one INSERT … RETURNING its key, and keep it in the
    session as if it had been loaded, so later changes to it flush as UPDATEs (and a rollback
    takes it out of the session again, as it would a flushed new object).

    The object must carry every column's value (``made`` or ``__init__`` fill the defaults);
    flush hooks do not see it, so what they keep (ticket counters) is the caller's to write.
    """
    new = _new_row(type(obj))
    found = await prepared.first(session, new.query, {name: getattr(obj, attribute)
                                                      for attribute, name in new.attributes})
    assert found is not None
    setattr(obj, new.key, found[0])
    make_transient_to_detached(obj)
    session.add(obj)
    session_context(session).part(_Inserted).append(obj)


def _forget_inserted(session: Session, _previous: object) -> None:
    if session.in_transaction():
        return  # a savepoint rolled back: rows inserted before it stand
    inserted = session_context(session).drop(_Inserted)
    for obj in inserted or ():
        if obj in session:
            session.expunge(obj)


def _keep_inserted(session: Session) -> None:
    session_context(session).drop(_Inserted)


sa_event.listen(Session, "after_soft_rollback", _forget_inserted)
sa_event.listen(Session, "after_commit", _keep_inserted)
