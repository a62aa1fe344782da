"""Retention: old events, finished outbox items and receipts go, in batches; the rest stays."""

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from helpdesk.db import utcnow
from helpdesk.outbox.models import OutboxItem
from helpdesk.realtime import log as events
from helpdesk.realtime.log import event_sessions
from helpdesk.realtime.models import Event
from helpdesk.receipts import service as receipts
from helpdesk.receipts.models import DeliveryReceipt
from helpdesk.retention import tasks as retention
from tests.support.server import LiveServer, make_settings
from tests.support.waiting import wait_until

NOW = utcnow()
OLD = NOW - timedelta(days=40)
RECENT = NOW - timedelta(days=3)


async def arrange(engine: AsyncEngine) -> None:
    """Events 1–10 (8 recent, the rest old), outbox items in every state, two receipts."""
    async with event_sessions(engine)() as session:
        for seq in range(1, 11):
            session.add(Event(seq=seq, type="ticket.updated", at=RECENT if seq == 8 else OLD,
                              data={"n": seq}))
        await session.execute(text("UPDATE counter SET value = 10 WHERE name = 'event_seq'"))
        for state, tried in [("sent", OLD), ("failed", OLD), ("pending", OLD), ("sending", OLD),
                             ("sent", RECENT), ("sent", OLD)]:
            session.add(OutboxItem(kind="email", message_id=None, state=state,
                                   next_attempt_at=tried, created_at=tried))
        session.add(DeliveryReceipt(provider="shopify", delivery_id="old",
                                    received_at=NOW - timedelta(days=8)))
        session.add(DeliveryReceipt(provider="line", delivery_id="recent", received_at=RECENT))
        await session.commit()


async def remaining(db: AsyncSession, column: object) -> list[object]:
    await db.rollback()
    found = list(await db.scalars(select(column).order_by(column)))  # type: ignore[call-overload]
    await db.rollback()
    return found


async def test_only_old_rows_go_in_bounded_batches(database_url: str, engine: AsyncEngine,
                                                    db: AsyncSession) -> None:
    await arrange(engine)
    sessionmaker = event_sessions(engine)
    batches: list[int] = []

    async def counted(session: AsyncSession, *, before: datetime, limit: int) -> int:
        deleted = await events.prune_events(session, before=before, limit=limit)
        batches.append(deleted)
        return deleted

    gone = await retention.prune_in_batches(sessionmaker, counted, before=NOW - timedelta(days=30),
                                            batch=3)
    assert (gone, batches) == (7, [3, 3, 1])
    # 9 is old but recorded after 8, and 10 is the newest: the log stays a contiguous tail.
    assert await remaining(db, col(Event.seq)) == [8, 9, 10]
    async with sessionmaker() as session:
        assert await events.pruned_through(session) == 7

    settings = make_settings(database_url, event_retention_days=30, receipt_retention_days=7,
                             retention_batch=2)
    done = await retention.prune_all(sessionmaker, settings, now=NOW)
    assert done == {"event": 0, "outbox": 2, "delivery_receipt": 1}
    states = await remaining(db, col(OutboxItem.id))
    kept = [(await db.get(OutboxItem, i)) for i in states]
    assert [(o.state, o.next_attempt_at == OLD) for o in kept if o] == [
        ("pending", True), ("sending", True), ("sent", False), ("sent", True)]  # the last: newest
    assert await remaining(db, col(DeliveryReceipt.delivery_id)) == ["recent"]
    await db.rollback()


async def test_a_pruned_receipt_lets_the_delivery_in_again_and_a_kept_one_does_not(
        engine: AsyncEngine) -> None:
    sessionmaker = event_sessions(engine)
    async with sessionmaker() as session:
        assert await receipts.first_delivery(session, provider="line", delivery_id="E1")
        assert not await receipts.first_delivery(session, provider="line", delivery_id="E1")
        assert await receipts.first_delivery(session, provider="shopify", delivery_id="E1")
        await session.commit()
    async with sessionmaker() as session:
        assert await receipts.prune(session, before=NOW - timedelta(days=7), limit=10) == 0
        assert await receipts.prune(session, before=utcnow() + timedelta(seconds=1), limit=10) == 2
        assert await receipts.first_delivery(session, provider="line", delivery_id="E1")
        await session.commit()


def test_retention_refuses_windows_shorter_than_provider_retries(database_url: str) -> None:
    with pytest.raises(ValueError, match="receipt_retention_days"):
        make_settings(database_url, receipt_retention_days=2)


async def test_the_app_prunes_in_the_background_and_stops_cleanly(
        database_url: str, engine: AsyncEngine, db: AsyncSession) -> None:
    await arrange(engine)
    settings = make_settings(database_url, run_workers=True, retention_interval_seconds=0.2,
                             receipt_retention_days=7)
    with LiveServer(settings) as live:
        # Events go only once the reports rollup has folded them, which may be a pass after the
        # receipts went: wait for both.
        async def only_recent_left() -> bool:
            return (await remaining(db, col(DeliveryReceipt.delivery_id)) == ["recent"]
                    and await remaining(db, col(Event.seq)) == [8, 9, 10])

        await wait_until(only_recent_left, within=10, interval=0.1)
        assert await remaining(db, col(Event.seq)) == [8, 9, 10]
        assert await remaining(db, col(DeliveryReceipt.delivery_id)) == ["recent"]
    assert not live.thread.is_alive()
