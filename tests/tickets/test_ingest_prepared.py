"""Ingest's thread look-ups through the storage kit read what SQLAlchemy's own path reads."""

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from helpdesk.db import create_sessionmaker, utcnow
from helpdesk.inboxes import service as inbox_service
from helpdesk.storage import prepared
from helpdesk.storage.sessions import begin_write
from helpdesk.tickets.ingest import THREAD_BY_CONVERSATION, THREAD_BY_CUSTOMER
from helpdesk.tickets.models import Channel, Status, Ticket
from tests.support.inbound import inbound


async def test_thread_lookups_match_sqlalchemy(engine: AsyncEngine, db: AsyncSession) -> None:
    customer_id = (await db.get(Ticket, (await inbound(db, "seed")).ticket_id)).customer_id  # type: ignore[union-attr]
    await begin_write(db)
    inbox_id = (await inbox_service.inbox_by_name(db, "default")).id
    now = utcnow()
    for n, (status, age_days) in enumerate([(Status.resolved, 30), (Status.no_action, 40),
                                            (Status.resolved, 2), (Status.pending, 50)]):
        db.add(Ticket(number=9000 + n, subject=f"件名{n}", channel=Channel.line, inbox_id=inbox_id,
                      customer_id=customer_id, conversation_key=f"k{n % 2}", token=f"t{n}",
                      status=status, updated_at=now - timedelta(days=age_days)))
    await db.commit()
    cases: list[tuple[Any, dict[str, Any]]] = [
        (query, {"channel": channel, "inbox_id": inbox_id, "key": key, "cutoff": now - timedelta(days=days)})
        for query, key in ((THREAD_BY_CONVERSATION, "k0"), (THREAD_BY_CONVERSATION, "k1"),
                           (THREAD_BY_CONVERSATION, "none"), (THREAD_BY_CUSTOMER, customer_id))
        for channel in (Channel.line, Channel.api) for days in (14, 1, 100)]
    async with create_sessionmaker(engine, read_only=True)() as session:
        connection = await session.connection()
        found = []
        for query, params in cases:
            fast = await prepared.rows(session, query, params)
            plain = [tuple(row) for row in (await connection.execute(query.statement, params)).all()]
            assert [tuple(row) for row in fast] == plain, params
            found.append(len(fast))
    assert 0 in found and 1 in found  # both outcomes were compared


@pytest.mark.parametrize("query", [THREAD_BY_CONVERSATION, THREAD_BY_CUSTOMER],
                         ids=["conversation", "customer"])
async def test_thread_lookups_go_by_their_key_not_the_inbox(engine: AsyncEngine, query: Any) -> None:
    """Without statistics SQLite would pick the inbox's index and walk every ticket in it."""
    if engine.dialect.name != "sqlite":
        pytest.skip("a SQLite query plan")
    compiled = prepared.prepare(query.statement, engine.dialect)
    assert compiled is not None
    sql, values = compiled.bind({"channel": Channel.api, "inbox_id": 1, "key": "k", "cutoff": utcnow()})
    async with engine.connect() as connection:
        plan = " ".join(str(row[-1]) for row in await connection.exec_driver_sql(
            "EXPLAIN QUERY PLAN " + sql, tuple(values)))
    assert "ix_ticket_inbox_id" not in plan and "USING INDEX" in plan, plan
