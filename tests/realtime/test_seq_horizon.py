"""The event log's order under concurrent writers: a reader that saw seq N saw everything before
it, every reader sees one order, and a seq whose transaction rolled back is skipped once known
dead. On PostgreSQL seqs come from a sequence and readers stop at holes still in flight; SQLite's
writers are serial, so only the cross-process test applies to it."""

import asyncio
import os
import sys
from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from helpdesk.db import create_engine
from helpdesk.realtime import log
from helpdesk.realtime.horizon import horizon_of
from helpdesk.realtime.log import event_sessions
from helpdesk.realtime.models import Event
from tests.support.waiting import wait_until

WRITER = """
import asyncio, sys
from helpdesk.db import create_engine
from helpdesk.realtime import log

async def main(url, name, count):
    engine = create_engine(url)
    sessions = log.event_sessions(engine)
    for n in range(count):
        async with sessions() as session:
            for part in range(1 + n % 3):
                log.record(session, type="test.write", data={"w": name, "n": n, "p": part},
                           broadcast=True)
            await session.commit()
    await engine.dispose()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


def postgresql_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite's writers are serial: seqs are handed out in commit order")


async def read_all(engine: AsyncEngine, after: int = 0) -> list[int]:
    """What a reader gets from the log after ``after``, through the log's own reader."""
    async with event_sessions(engine, read_only=True)() as session:
        return [event.seq for event in await log.live_events_after(session, after, 10_000)]


async def record(engine: AsyncEngine, name: str) -> int:
    """Commit one event; its seq."""
    async with event_sessions(engine)() as session:
        log.record(session, type="test.write", data={"w": name}, broadcast=True)
        await session.commit()
    async with event_sessions(engine, read_only=True)() as session:
        found = await session.scalar(select(col(Event.seq)).where(col(Event.data)["w"].as_string() == name))
    assert found is not None
    return int(found)


async def in_flight(engine: AsyncEngine, name: str) -> AsyncSession:
    """A session that has taken its seq and written its row (as its commit does first), left
    uncommitted: a writer between taking its seq and committing."""
    session = event_sessions(engine)()
    log.record(session, type="test.write", data={"w": name}, broadcast=True)
    await session.run_sync(log._write_pending)
    return session


async def test_two_processes_writing_at_once_give_one_gapless_order(
        database_url: str, engine: AsyncEngine) -> None:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    writers = [await asyncio.create_subprocess_exec(sys.executable, "-c", WRITER, database_url, name, "60",
                                                    env=env) for name in ("a", "b")]
    readers: list[list[int]] = [[], []]
    other = create_engine(database_url)  # a second reader with its own horizon, as in another process

    async def follow(target: list[int], reader_engine: AsyncEngine, done: Callable[[], bool]) -> None:
        while True:
            finished = done()
            async with event_sessions(reader_engine, read_only=True)() as session:
                target += [e.seq for e in await log.live_events_after(session, target[-1] if target else 0)]
            if finished:
                return
            await asyncio.sleep(0.01)

    def exited() -> bool:
        return all(w.returncode is not None for w in writers)

    follow_tasks = [asyncio.create_task(follow(readers[0], engine, exited)),
                    asyncio.create_task(follow(readers[1], other, exited))]
    for writer in writers:
        assert await writer.wait() == 0
    await asyncio.gather(*follow_tasks)
    await other.dispose()
    async with event_sessions(engine, read_only=True)() as session:
        stored = list(await session.scalars(select(col(Event.seq)).order_by(col(Event.seq))))
    assert len(stored) == 2 * sum(1 + n % 3 for n in range(60))
    assert readers[0] == readers[1] == stored  # every event once, in one order, for both readers
    assert stored == list(range(stored[0], stored[0] + len(stored)))  # nothing rolled back: no holes


async def test_a_reader_does_not_pass_a_seq_still_being_committed(
        database_url: str, engine: AsyncEngine) -> None:
    postgresql_only(database_url)
    start = await record(engine, "before")
    first = await in_flight(engine, "first")
    try:
        second = await record(engine, "second")  # committed, with a later seq than first's
        assert await read_all(engine, start) == []  # seq N is in flight: N+1 is not shown yet
        await first.commit()
    finally:
        await first.close()
    assert await read_all(engine, start) == [second - 1, second]


async def test_a_rolled_back_seq_is_skipped_once_its_transaction_is_known_gone(
        database_url: str, engine: AsyncEngine) -> None:
    postgresql_only(database_url)
    start = await record(engine, "before")
    doomed = await in_flight(engine, "doomed")
    second = await record(engine, "second")
    assert await read_all(engine, start) == []
    await doomed.rollback()
    await doomed.close()
    # No news comes from a rollback: the next look finds its holder gone and skips the hole.
    assert await wait_until(lambda: read_all(engine, start)) == [second]
    assert second == start + 2


async def test_a_new_reader_starts_after_what_is_being_committed(
        database_url: str, engine: AsyncEngine) -> None:
    postgresql_only(database_url)
    start = await record(engine, "before")
    pending = await in_flight(engine, "pending")
    later = await record(engine, "later")

    async def commit_soon() -> None:
        await asyncio.sleep(0.2)
        await pending.commit()

    committing = asyncio.create_task(commit_soon())
    async with event_sessions(engine, read_only=True)() as session:
        high = await log.settled_high(session)  # waits for the seq in flight
    await committing
    await pending.close()
    assert high == later
    assert await read_all(engine, start) == [later - 1, later]


async def test_the_horizon_moves_only_when_the_earlier_holders_are_done(
        database_url: str, engine: AsyncEngine) -> None:
    postgresql_only(database_url)
    await record(engine, "before")
    holder = await in_flight(engine, "holder")
    try:
        async with event_sessions(engine, read_only=True)() as session:
            horizon = horizon_of(session)
            settled = horizon.settled
            await horizon.advance(session)
            await horizon.advance(session)
            assert horizon.settled == settled  # the holder is still there
    finally:
        await holder.rollback()
        await holder.close()
    async with event_sessions(engine, read_only=True)() as session:
        await horizon.advance(session)
        assert horizon.settled >= settled + 1
