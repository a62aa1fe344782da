"""Ingest's thread look-ups through the storage kit read what SQLAlchemy's own path reads."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from helpdesk.customers.models import Customer
from helpdesk.db import create_sessionmaker, utcnow
from helpdesk.inboxes import service as inbox_service
from helpdesk.sla import service as sla
from helpdesk.sla.models import SlaConfig, SlaTarget
from helpdesk.storage import new_rows, prepared
from helpdesk.storage.sessions import begin_write
from helpdesk.tickets.ingest import THREAD_BY_CONVERSATION, THREAD_BY_CUSTOMER
from helpdesk.tickets.models import Channel, Direction, Message, Priority, Status, Ticket
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


async def _row(db: AsyncSession, obj: Any) -> dict[str, Any]:
    table = type(obj).__table__
    found = (await db.execute(select(table).where(table.c.id == obj.id))).one()._asdict()
    return {name: value for name, value in found.items() if name not in _DISTINCT}


_DISTINCT = {"id", "number", "token", "external_id", "ref_id", "customer_id", "ticket_id"}


async def test_new_rows_inserted_by_the_kit_are_the_rows_the_unit_of_work_writes(
        engine: AsyncEngine, db: AsyncSession) -> None:
    """``prepared.insert_new`` (ingest's new customer, ticket and message) against a flush."""
    await inbound(db, "seed")
    await begin_write(db)
    inbox_id = (await inbox_service.inbox_by_name(db, "default")).id
    assert inbox_id is not None
    at = utcnow() - timedelta(minutes=3)

    def made(n: int, make: Callable[..., Any]) -> tuple[Any, Any, Any]:
        customer = make(Customer, name="顧客\u3000様 ", tags=["vip", "返品"], blocked_at=at,
                        created_at=at, updated_at=at)
        ticket = make(Ticket, number=8000 + n, subject="返品 ｶﾅ", channel=Channel.line,
                      inbox_id=inbox_id, status=Status.no_action, conversation_key="k",
                      token=f"tok{n}", first_response_due_at=at, sla_due_at=at, created_at=at,
                      updated_at=at)
        message = make(Message, ticket_id=0, direction=Direction.inbound, channel=Channel.line,
                       body_text=" 本文\r\n  ", body_html="<p>x</p>", external_id=f"e{n}",
                       auto_reply=True, created_at=at, email_cc=["a@example.jp"])
        return customer, ticket, message

    # Made by __init__ and flushed, against made by the kit and inserted by it.
    by_flush, by_kit = made(1, lambda kind, **values: kind(**values)), made(2, new_rows.made)
    for customer, ticket, message in (by_flush, by_kit):
        kit = customer is by_kit[0]
        for obj in (customer, ticket, message):
            if obj is ticket:
                ticket.customer_id = customer.id
            if obj is message:
                message.ticket_id = ticket.id or 0
            if kit:
                await new_rows.insert_new(db, obj)
            else:
                db.add(obj)
                await db.flush()
    await db.commit()
    for flushed, inserted in zip(by_flush, by_kit, strict=True):
        assert await _row(db, inserted) == await _row(db, flushed)
        assert inserted.model_dump(exclude=_DISTINCT) == flushed.model_dump(exclude=_DISTINCT)
    # The inserted ticket is in the session as if loaded: a change flushes as an UPDATE.
    await begin_write(db)
    ticket = by_kit[1]
    assert await db.get(Ticket, ticket.id) is ticket
    ticket.subject = "変更後"
    await db.commit()
    db.expunge_all()
    assert (await db.get(Ticket, ticket.id)).subject == "変更後"  # type: ignore[union-attr]


async def test_each_message_takes_the_sla_settings_saved_last(engine: AsyncEngine, db: AsyncSession) -> None:
    """Ingest reads the settings with the inbox in one statement and keeps the parsed policy
    while they stay the same: a change saved elsewhere applies to the very next message."""
    every_hour = {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}

    async def save(minutes: int) -> None:
        async with create_sessionmaker(engine)() as other:  # as another worker would
            await begin_write(other)
            await sla.save_config(other, SlaConfig(hours=every_hour, public_holidays=None, targets=[
                SlaTarget(priority=Priority.normal, first_response_minutes=minutes,
                          next_response_minutes=minutes)]))
            await other.commit()

    async def first_response_due(key: str) -> timedelta:
        result = await inbound(db, key, email=f"{key}@example.jp")
        db.expunge_all()
        ticket = await db.get(Ticket, result.ticket_id)
        message = await db.get(Message, result.message_id)
        assert ticket is not None and ticket.first_response_due_at is not None and message is not None
        return ticket.first_response_due_at - message.created_at  # from the message's arrival

    for minutes in (60, 120, 60):
        await save(minutes)
        assert await first_response_due(f"m{minutes}-{utcnow().timestamp()}") == timedelta(minutes=minutes)


def test_objects_made_by_the_kit_have_their_own_defaults_and_refuse_unknown_fields() -> None:
    first, second = new_rows.made(Customer, name="a"), new_rows.made(Customer)
    first.tags.append("vip")
    assert second.tags == [] and second.name is None and first.name == "a"
    assert first.created_at is not None and first.created_at.tzinfo is not None
    with pytest.raises(TypeError, match="nme"):
        new_rows.made(Customer, nme="typo")


async def test_a_rollback_takes_inserted_rows_out_of_the_session(db: AsyncSession) -> None:
    """As it would flushed new objects: the next transaction may be given the same ids."""
    await begin_write(db)
    gone = new_rows.made(Customer, name="取り消し")
    await new_rows.insert_new(db, gone)
    assert gone in db
    await db.rollback()
    assert gone not in db
    await begin_write(db)
    kept = new_rows.made(Customer, name="残る")
    await new_rows.insert_new(db, kept)
    await db.commit()
    db.expunge_all()
    assert (await db.get(Customer, kept.id)).name == "残る"  # type: ignore[union-attr]
