"""A leased queue's workers wake for the commits that write to its table, and for no other:
in this process at once, in the others over Redis."""

import asyncio
from collections import Counter

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from helpdesk.channels.models import MediaFetch
from helpdesk.customers.models import Customer
from helpdesk.outbox.models import OutboxItem
from helpdesk.outbox.service import enqueue
from helpdesk.realtime.bus import MemoryBus, RedisBus
from helpdesk.realtime.log import event_sessions
from helpdesk.storage import wakes
from helpdesk.storage.sessions import begin_write
from tests.support.services import unique_prefix
from tests.support.waiting import wait_until

OUTBOX, MEDIA = wakes.queue_name(OutboxItem), wakes.queue_name(MediaFetch)


def listening(bus: MemoryBus) -> Counter[str]:
    woken: Counter[str] = Counter()
    for name in (OUTBOX, MEDIA):
        bus.listen_queue(name, lambda name=name: woken.update([name]))
    return woken


@pytest.fixture
def bus() -> MemoryBus:
    return MemoryBus()


@pytest.fixture
def sessions(engine: AsyncEngine, bus: MemoryBus) -> async_sessionmaker[AsyncSession]:
    made = event_sessions(engine)
    wakes.install(made, bus.wake_queues)
    return made


async def test_a_commit_that_adds_a_queue_row_wakes_that_queue_alone(
        sessions: async_sessionmaker[AsyncSession], bus: MemoryBus) -> None:
    woken = listening(bus)
    async with sessions() as session:
        await begin_write(session)
        enqueue(session, kind="reply.api", message_id=None, payload={"text": "届け"})
        await session.flush()
        assert woken == Counter()  # not before the commit
        await session.commit()
    assert woken == Counter({OUTBOX: 1})


async def test_commits_without_queue_rows_and_rollbacks_wake_nothing(
        sessions: async_sessionmaker[AsyncSession], bus: MemoryBus) -> None:
    woken = listening(bus)
    async with sessions() as session:
        await begin_write(session)
        session.add(Customer(name="顧客"))
        await session.commit()
    async with sessions() as session:
        await begin_write(session)
        enqueue(session, kind="reply.api", message_id=None, payload={})
        await session.flush()
        await session.rollback()
    async with sessions() as session:  # the rolled-back row is not remembered for this commit
        await begin_write(session)
        session.add(Customer(name="別の顧客"))
        await session.commit()
    assert woken == Counter()


async def test_changing_a_queue_row_wakes_its_queue(sessions: async_sessionmaker[AsyncSession],
                                                    bus: MemoryBus) -> None:
    async with sessions() as session:
        await begin_write(session)
        enqueue(session, kind="reply.api", message_id=None, payload={})
        await session.commit()
    woken = listening(bus)
    async with sessions() as session:
        await begin_write(session)
        item = await session.scalar(select(OutboxItem))
        assert item is not None
        item.attempts = 0  # "send again" puts a failed row back like this
        item.state = "pending"
        await session.commit()
    assert woken == Counter({OUTBOX: 1})


def test_only_a_sessionmaker_with_its_own_session_class_takes_the_hooks(engine: AsyncEngine) -> None:
    with pytest.raises(ValueError, match="class of their own"):
        wakes.install(async_sessionmaker(engine), MemoryBus().wake_queues)


async def test_a_wake_reaches_the_queue_listeners_of_another_process_over_redis(redis_url: str) -> None:
    channel = f"{unique_prefix()}:events"
    here, there = (RedisBus(redis_url, channel=channel, node=node) for node in ("here", "there"))
    await here.start()
    await there.start()
    try:
        await wait_until(lambda: here.connected and there.connected)
        woken_here, woken_there = listening(here), listening(there)
        here.wake_queues([MEDIA])
        await wait_until(lambda: woken_there[MEDIA] == 1)
        await asyncio.sleep(0.1)  # nothing more arrives: not the outbox, not our own echo
        assert woken_there == Counter({MEDIA: 1})
        assert woken_here == Counter({MEDIA: 1})  # the local listener, at once
    finally:
        await here.stop()
        await there.stop()
