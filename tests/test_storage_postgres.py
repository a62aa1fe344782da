"""On PostgreSQL, ``storage.prepared`` runs statements straight on asyncpg inside SQLAlchemy's
transaction: the same rows as SQLAlchemy's path, SQLAlchemy's exceptions, and nothing outside
the transaction (its first statement is SQLAlchemy's, which begins it)."""

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import NamedTuple

import pytest
from sqlalchemy import bindparam, event, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from helpdesk.customers.models import Customer, CustomerIdentity, IdentityKind, table_of
from helpdesk.db import create_sessionmaker
from helpdesk.storage import postgres, prepared

CUSTOMER, IDENTITY = table_of(Customer), table_of(CustomerIdentity)


class Profile(NamedTuple):
    id: int
    name: str | None
    tags: list[str]
    total_spent: Decimal
    last_order_at: datetime | None
    kind: IdentityKind


PROFILE = prepared.Query(
    select(CUSTOMER.c.id, CUSTOMER.c.name, CUSTOMER.c.tags, CUSTOMER.c.total_spent,
           CUSTOMER.c.last_order_at, IDENTITY.c.kind)
    .join(IDENTITY, IDENTITY.c.customer_id == CUSTOMER.c.id)
    .where(IDENTITY.c.value == bindparam("value")).order_by(CUSTOMER.c.id).limit(3), Profile)
NEW_IDENTITY = insert(IDENTITY).values(customer_id=bindparam("customer_id"), kind=bindparam("kind"),
                                       value=bindparam("value"), created_at=bindparam("created_at"))


class Key(NamedTuple):
    id: int


NEW_CUSTOMER = prepared.Query(
    insert(CUSTOMER).values(name=bindparam("name"), tags=bindparam("tags"), orders_count=0,
                            total_spent=bindparam("total_spent"), created_at=bindparam("at"),
                            updated_at=bindparam("at")).returning(CUSTOMER.c.id), Key)
WHEN = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


@pytest.fixture
def postgresql(engine: AsyncEngine, database_url: str) -> AsyncEngine:
    if not database_url.startswith("postgresql"):
        pytest.skip("the asyncpg path (set HELPDESK_TEST_DATABASE_URL)")
    return engine


@pytest.fixture
async def session(postgresql: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with create_sessionmaker(postgresql)() as made:
        yield made


@pytest.fixture
def direct(postgresql: AsyncEngine) -> Iterator[list[str]]:
    """The statements that reach the engine's listeners without a cursor: this path's."""
    seen: list[str] = []

    def note(_conn: object, cursor: object, statement: str, *_args: object) -> None:
        if cursor is None:
            seen.append(statement)

    event.listen(postgresql.sync_engine, "before_cursor_execute", note)
    yield seen
    event.remove(postgresql.sync_engine, "before_cursor_execute", note)


async def test_rows_and_inserts_match_sqlalchemy(session: AsyncSession, direct: list[str]) -> None:
    await session.execute(text("SELECT 1"))  # SQLAlchemy begins the transaction
    made = await prepared.first(session, NEW_CUSTOMER, {
        "name": "顧客①", "tags": ["VIP", "返品"], "total_spent": Decimal("1234.50"), "at": WHEN})
    assert made is not None
    await prepared.execute_many(session, NEW_IDENTITY, [
        {"customer_id": made.id, "kind": kind, "value": "a@example.jp", "created_at": WHEN}
        for kind in (IdentityKind.email, IdentityKind.line)])
    ours = await prepared.rows(session, PROFILE, {"value": "a@example.jp"})
    connection = await session.connection()
    theirs = (await connection.execute(PROFILE.statement, {"value": "a@example.jp"})).all()
    assert [tuple(row) for row in ours] == [tuple(row) for row in theirs]
    assert ours[0] == Profile(made.id, "顧客①", ["VIP", "返品"], Decimal("1234.50"), None, IdentityKind.email)
    assert type(ours[0].kind) is IdentityKind
    assert [r.kind for r in ours] == [IdentityKind.email, IdentityKind.line]
    assert len(direct) == 3, direct  # the insert, the executemany and the select


async def test_the_first_statement_of_a_transaction_is_sqlalchemys(
        session: AsyncSession, direct: list[str]) -> None:
    assert await prepared.rows(session, PROFILE, {"value": "x"}) == []
    assert direct == []  # nothing had begun the driver's transaction yet
    assert await prepared.rows(session, PROFILE, {"value": "x"}) == []
    assert len(direct) == 1


async def test_a_rollback_takes_back_what_this_path_wrote(postgresql: AsyncEngine) -> None:
    sessions = create_sessionmaker(postgresql)
    async with sessions() as session:
        await session.execute(text("SELECT 1"))
        await prepared.first(session, NEW_CUSTOMER, {"name": "消える", "tags": [],
                                                     "total_spent": Decimal(0), "at": WHEN})
        await session.rollback()
    async with sessions() as session:
        assert (await session.execute(select(CUSTOMER.c.id).where(CUSTOMER.c.name == "消える"))).all() == []


async def test_errors_are_sqlalchemys_and_the_session_recovers(postgresql: AsyncEngine,
                                                               session: AsyncSession) -> None:
    await session.execute(text("SELECT 1"))
    with pytest.raises(IntegrityError):  # no such customer: the foreign key refuses it
        await prepared.execute_many(session, NEW_IDENTITY, [
            {"customer_id": 10**9, "kind": IdentityKind.email, "value": "x@example.jp", "created_at": WHEN}])
    await session.rollback()
    await session.execute(text("SELECT 1"))
    assert await prepared.rows(session, PROFILE, {"value": "x@example.jp"}) == []


async def test_a_connection_found_dead_is_invalidated(postgresql: AsyncEngine, database_url: str) -> None:
    admin = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with create_sessionmaker(postgresql)() as session:
            pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            async with admin.connect() as conn:
                await conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
            with pytest.raises(DBAPIError) as failed:
                await prepared.rows(session, PROFILE, {"value": "x"})
            assert failed.value.connection_invalidated
        async with create_sessionmaker(postgresql)() as session:  # the pool connects anew
            assert (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one() != pid
    finally:
        await admin.dispose()


class Id(NamedTuple):
    id: int


IN_LIST = prepared.Query(select(CUSTOMER.c.id).where(
    CUSTOMER.c.id.in_(bindparam("ids", expanding=True)), CUSTOMER.c.name.not_in(["除外"]),
    CUSTOMER.c.name.is_not(None)).order_by(CUSTOMER.c.id), Id)


async def test_in_lists_go_as_arrays_with_the_same_rows(session: AsyncSession, direct: list[str]) -> None:
    await session.execute(text("SELECT 1"))
    made = [await prepared.first(session, NEW_CUSTOMER, {
        "name": name, "tags": [], "total_spent": Decimal(0), "at": WHEN}) for name in ("甲", "乙", "除外")]
    ids = [row.id for row in made if row is not None]
    connection = await session.connection()
    for wanted in (ids, ids[1:], [ids[0], ids[0]], [], [10**9]):
        ours = await prepared.rows(session, IN_LIST, {"ids": wanted})
        theirs = (await connection.execute(IN_LIST.statement, {"ids": wanted})).all()
        assert [tuple(row) for row in ours] == [tuple(row) for row in theirs]
    assert [row.id for row in await prepared.rows(session, IN_LIST, {"ids": ids})] == ids[:2]
    assert sum("= ANY(" in statement and "<> ALL(" in statement for statement in direct) == 6


def test_a_value_rendered_at_execution_is_left_to_sqlalchemy(postgresql: AsyncEngine) -> None:
    rendered = select(CUSTOMER.c.id).where(CUSTOMER.c.id == bindparam("id", literal_execute=True))
    assert postgres.compiled_for(rendered, postgresql.dialect) is None
    assert postgres.compiled_for(PROFILE.statement, postgresql.dialect) is not None
