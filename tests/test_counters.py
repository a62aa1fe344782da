"""Counters: on PostgreSQL ticket numbers come from a sequence, so a transaction taking one does
not wait for another that took one and has not committed yet."""

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from helpdesk.realtime.log import event_sessions
from helpdesk.storage.counters import next_counter


async def test_ticket_numbers_do_not_wait_for_each_others_commits(database_url: str,
                                                                  engine: AsyncEngine) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite's writers are serial: a counter row costs nothing more there")
    sessions = event_sessions(engine)
    async with sessions() as first, sessions() as second:
        taken = await next_counter(first, "ticket_number")  # and first stays uncommitted
        async with asyncio.timeout(5):
            other = await next_counter(second, "ticket_number")
        await second.commit()
        await first.rollback()
    async with sessions() as third:
        after = await next_counter(third, "ticket_number")
        await third.commit()
    assert other == taken + 1
    assert after == other + 1  # a rolled-back number is not handed out again


async def test_ticket_numbers_start_after_the_counter(engine: AsyncEngine) -> None:
    async with event_sessions(engine)() as session:
        assert await next_counter(session, "ticket_number") == 1001
        await session.commit()
