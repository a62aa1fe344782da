"""The leased queue on a real table (the outbox's): exclusive claims, leases that run out, a
backoff that grows, and outcomes settled with their reason. Jobs here are plain functions; the
outbox and media tests run the same queue with real senders and fetchers."""

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from helpdesk.background.queue import Job, LeasedQueue, QueueOptions, States, TaskError
from helpdesk.db import utcnow
from helpdesk.outbox.models import OutboxItem
from helpdesk.realtime.log import event_sessions
from tests.support.database import fetch

NOW = utcnow().replace(microsecond=0)
STATES = States(done_at="sent_at")


@dataclass(frozen=True)
class Work:
    id: int
    attempt: int


@dataclass
class Recorder:
    """A job that fails as told and notes every outcome it was asked to record."""

    fail_with: list[Exception]
    done: list[tuple[int, int]]
    failed: list[tuple[int, str]]

    async def work(self, item: Work) -> str:
        if self.fail_with:
            raise self.fail_with.pop(0)
        return f"done {item.id}"

    async def on_done(self, _session: AsyncSession, item: Work, _result: str) -> None:
        self.done.append((item.id, item.attempt))

    async def on_failed(self, _session: AsyncSession, item: Work, reason: str,
                        _error: Exception) -> None:
        self.failed.append((item.id, reason))


def queue(sessions: async_sessionmaker[AsyncSession], recorder: Recorder | None = None,
          **options: Any) -> LeasedQueue[Work, str]:
    recorder = recorder or Recorder([], [], [])
    job = Job(read=lambda row, attempt: Work(row.id, attempt), work=recorder.work,
              done=recorder.on_done, failed=recorder.on_failed)
    return LeasedQueue("test queue", OutboxItem, sessions, job, QueueOptions(**options), STATES)


async def add_items(engine: AsyncEngine, count: int) -> list[int]:
    async with event_sessions(engine)() as session:
        items = [OutboxItem(kind="test", message_id=None, next_attempt_at=NOW - timedelta(seconds=1))
                 for _ in range(count)]
        session.add_all(items)
        await session.commit()
        return [item.id for item in items if item.id is not None]


async def rows(db: AsyncSession) -> list[OutboxItem]:
    return await fetch(db, select(OutboxItem).order_by(OutboxItem.id))


async def test_two_claimers_at_once_on_postgresql_never_take_the_same_row(
        database_url: str, engine: AsyncEngine, db: AsyncSession) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer: a second claim waits for the first to commit")
    ids = await add_items(engine, 6)
    sessions = event_sessions(engine)
    work = queue(sessions, batch=4)
    async with sessions() as first, sessions() as second:
        mine = await work.claim_in(first, now=NOW)
        # The first claim's rows stay locked until it commits: the second skips them, not waits.
        theirs = await asyncio.wait_for(work.claim_in(second, now=NOW), timeout=10)
        await first.commit()
        await second.commit()
    assert len(mine) == 4 and len(theirs) == 2
    assert sorted(item.id for item in mine + theirs) == ids
    assert {row.state for row in await rows(db)} == {"sending"}
    assert await work.claim(now=NOW) == []  # all leased


async def test_concurrent_passes_try_each_row_once(engine: AsyncEngine, db: AsyncSession) -> None:
    ids = await add_items(engine, 9)
    recorder = Recorder([], [], [])
    sessions = event_sessions(engine)
    passes = [queue(sessions, recorder, batch=4) for _ in range(3)]
    counts = await asyncio.gather(*(work.run_once(now=NOW) for work in passes))
    assert sum(counts) == 9
    assert sorted(recorder.done) == [(item_id, 1) for item_id in ids]
    assert [(row.state, row.attempts, row.sent_at) for row in await rows(db)] == [("sent", 1, NOW)] * 9


async def test_an_expired_lease_is_claimed_again_and_the_old_attempt_cannot_settle(
        engine: AsyncEngine, db: AsyncSession) -> None:
    [item_id] = await add_items(engine, 1)
    sessions = event_sessions(engine)
    work = queue(sessions, lease=timedelta(minutes=1))
    [first] = await work.claim(now=NOW)
    assert first == Work(item_id, 1)
    assert await work.claim(now=NOW + timedelta(seconds=59)) == []  # still leased
    [again] = await work.claim(now=NOW + timedelta(seconds=61))  # its process died, say
    assert again == Work(item_id, 2)
    async with sessions() as session:
        assert not await work.settle_done(session, first, now=NOW)  # the lease is not its own
        assert await work.settle_done(session, again, now=NOW)
        await session.commit()
    [row] = await rows(db)
    assert (row.state, row.attempts) == ("sent", 2)


async def test_the_backoff_doubles_up_to_its_ceiling_and_the_reason_is_kept(
        engine: AsyncEngine, db: AsyncSession) -> None:
    options = QueueOptions(backoff=timedelta(seconds=10), max_backoff=timedelta(seconds=60))
    assert [options.delay(n).total_seconds() for n in range(1, 6)] == [10, 20, 40, 60, 60]
    await add_items(engine, 1)
    recorder = Recorder([TaskError("provider answered 503"), ValueError("boom")], [], [])
    work = queue(event_sessions(engine), recorder, backoff=timedelta(seconds=10))
    assert await work.run_once(now=NOW) == 1
    [row] = await rows(db)
    assert (row.state, row.attempts, row.last_error) == ("pending", 1, "provider answered 503")
    assert row.next_attempt_at == NOW + timedelta(seconds=10)
    assert await work.run_once(now=NOW + timedelta(seconds=9)) == 0  # backing off
    later = NOW + timedelta(seconds=10)
    assert await work.run_once(now=later) == 1
    [row] = await rows(db)
    assert (row.state, row.attempts, row.last_error) == ("pending", 2, "ValueError: boom")
    assert row.next_attempt_at == later + timedelta(seconds=20)  # the delay doubled
    assert await work.run_once(now=later + timedelta(seconds=20)) == 1
    [row] = await rows(db)
    assert (row.state, row.attempts, row.last_error) == ("sent", 3, None)
    assert recorder.failed == []


async def test_failing_for_good_keeps_the_reason_and_tells_the_job(
        engine: AsyncEngine, db: AsyncSession) -> None:
    refused, exhausted = await add_items(engine, 2)
    recorder = Recorder([TaskError("recipient refused (400)", permanent=True),
                         RuntimeError("timed out"), RuntimeError("timed out again")], [], [])
    work = queue(event_sessions(engine), recorder, max_attempts=2, backoff=timedelta(seconds=1),
                 batch=1)
    assert await work.run_once(now=NOW) == 1  # refused: failed at once
    assert await work.run_once(now=NOW) == 1  # the other: first attempt
    assert await work.run_once(now=NOW + timedelta(seconds=1)) == 1  # the last attempt
    assert await work.run_once(now=NOW + timedelta(days=1)) == 0  # nothing is tried again
    assert [(row.id, row.state, row.attempts, row.last_error) for row in await rows(db)] == [
        (refused, "failed", 1, "recipient refused (400)"),
        (exhausted, "failed", 2, "RuntimeError: timed out again")]
    assert recorder.failed == [(refused, "recipient refused (400)"),
                               (exhausted, "RuntimeError: timed out again")]
    assert recorder.done == []


async def test_a_queue_that_keeps_no_settled_rows_deletes_them(
        engine: AsyncEngine, db: AsyncSession) -> None:
    await add_items(engine, 2)
    recorder = Recorder([TaskError("gone", permanent=True)], [], [])
    job = Job(read=lambda row, attempt: Work(row.id, attempt), work=recorder.work,
              done=recorder.on_done, failed=recorder.on_failed)
    work = LeasedQueue("deleting", OutboxItem, event_sessions(engine), job, QueueOptions())
    assert await work.run_once(now=NOW) == 2
    assert await rows(db) == []
    assert len(recorder.done) == 1 and [reason for _, reason in recorder.failed] == ["gone"]
