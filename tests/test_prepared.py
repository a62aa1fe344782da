"""Statements run through ``storage.prepared`` read exactly what SQLAlchemy's own path reads."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import NamedTuple

import pytest
from sqlalchemy import bindparam, event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from helpdesk.customers.models import Customer, CustomerIdentity, IdentityKind, table_of
from helpdesk.db import create_sessionmaker
from helpdesk.storage import prepared
from helpdesk.storage.sessions import begin_write

CUSTOMER, IDENTITY = table_of(Customer), table_of(CustomerIdentity)
# An IN list given per call, a literal IN list, a literal rendered at execution (the separator)
# and a LIMIT: every way a value reaches a compiled statement here.


class Listed(NamedTuple):
    id: int
    name: str | None
    total_spent: Decimal
    last_order_at: datetime | None
    contacts: str | None


class Named(NamedTuple):
    name: str | None


BY_IDS_STATEMENT = (select(CUSTOMER.c.id, CUSTOMER.c.name, CUSTOMER.c.total_spent, CUSTOMER.c.last_order_at,
                 select(func.aggregate_strings(IDENTITY.c.value, "|"))
                 .where(IDENTITY.c.customer_id == CUSTOMER.c.id,
                        IDENTITY.c.kind.in_([IdentityKind.email, IdentityKind.phone]))
                 .correlate(CUSTOMER).scalar_subquery())
          .where(CUSTOMER.c.id.in_(bindparam("ids", expanding=True)))
          .order_by(CUSTOMER.c.id).limit(2))
BY_IDS = prepared.Query(BY_IDS_STATEMENT, Listed)
NAMED = prepared.Query(select(CUSTOMER.c.name).where(CUSTOMER.c.name == bindparam("name")), Named)


async def _customers(db: AsyncSession) -> list[int]:
    await begin_write(db)
    last = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
    made = [Customer(name=f"顧客{n}", total_spent=Decimal("1234.50") * n, last_order_at=last)
            for n in (1, 2, 3)]
    db.add_all(made)
    await db.flush()
    db.add_all([CustomerIdentity(customer_id=made[0].id or 0, kind=IdentityKind.email, value="a@example.jp"),
                CustomerIdentity(customer_id=made[0].id or 0, kind=IdentityKind.line, value="U1")])
    await db.commit()
    return [c.id or 0 for c in made]


async def test_rows_match_sqlalchemy(engine: AsyncEngine, db: AsyncSession) -> None:
    ids = await _customers(db)
    async with create_sessionmaker(engine, read_only=True)() as session:
        connection = await session.connection()
        for wanted in (ids, ids[1:], [ids[2]], []):
            ours = await prepared.rows(session, BY_IDS, {"ids": wanted})
            theirs = (await connection.execute(BY_IDS_STATEMENT, {"ids": wanted})).all()
            assert [tuple(r) for r in ours] == [tuple(r) for r in theirs]
            assert len(ours) == min(2, len(wanted))
        first = await prepared.first(session, BY_IDS, {"ids": ids})
        assert first == Listed(ids[0], "顧客1", Decimal("1234.50"),
                               datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC), "a@example.jp")
        assert type(first) is Listed
        assert await prepared.first(session, NAMED, {"name": "顧客3"}) == Named("顧客3")
        assert await prepared.first(session, NAMED, {"name": "いない"}) is None


def test_a_row_class_must_have_one_field_per_column() -> None:
    with pytest.raises(TypeError, match="Named has fields"):
        prepared.Query(BY_IDS_STATEMENT, Named)


async def test_statements_reach_cursor_listeners(engine: AsyncEngine, db: AsyncSession) -> None:
    await _customers(db)
    seen: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", note)
    try:
        async with create_sessionmaker(engine, read_only=True)() as session:
            await prepared.rows(session, NAMED, {"name": "顧客1"})
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", note)
    assert [s for s in seen if s.startswith("SELECT customer.name")], seen
