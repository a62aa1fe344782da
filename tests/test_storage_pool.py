"""Pooled PostgreSQL connections are checked before use only after sitting idle: a dead one found
then is replaced; one handed back a moment ago is used without a check, and if its server went
away meanwhile the statement fails once and the pool starts afresh."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool, QueuePool

from helpdesk.db import create_engine
from helpdesk.storage.pool import ping_when_idle


@pytest.fixture
def postgresql_url(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no connection pool to check (set HELPDESK_TEST_DATABASE_URL)")
    return database_url


@pytest.fixture
async def admin(postgresql_url: str) -> AsyncIterator[AsyncEngine]:
    """A connection of its own, to end other backends with."""
    engine = create_async_engine(postgresql_url, poolclass=NullPool)
    yield engine
    await engine.dispose()


async def backend_of(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def end_backend(admin: AsyncEngine, pid: int) -> None:
    async with admin.connect() as conn:
        assert (await conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})).scalar()


async def test_an_idle_connection_that_died_is_replaced_at_checkout(postgresql_url: str,
                                                                    admin: AsyncEngine) -> None:
    engine = create_async_engine(postgresql_url, pool_size=1, max_overflow=0)
    ping_when_idle(engine.sync_engine, idle_seconds=0.0)  # every pooled connection counts as idle
    try:
        dead = await backend_of(engine)
        await end_backend(admin, dead)
        fresh = await backend_of(engine)  # no error: the check found it dead and connected again
        assert fresh != dead
    finally:
        await engine.dispose()


async def test_a_connection_back_a_moment_ago_is_used_unchecked_and_a_failure_resets_the_pool(
        postgresql_url: str, admin: AsyncEngine) -> None:
    engine = create_engine(postgresql_url, pool_size=2, max_overflow=0)
    try:
        async with engine.connect() as one, engine.connect() as two:  # two pooled connections
            pids = {int((await c.execute(text("SELECT pg_backend_pid()"))).scalar_one()) for c in (one, two)}
        for pid in pids:
            await end_backend(admin, pid)
        with pytest.raises(DBAPIError) as failed:
            await backend_of(engine)  # not checked: it was handed back just now
        assert failed.value.connection_invalidated
        # The disconnect dropped the other pooled connection too: the next checkout connects anew.
        assert await backend_of(engine) not in pids
    finally:
        await engine.dispose()


async def test_connections_opened_for_a_burst_are_kept_for_the_next(postgresql_url: str) -> None:
    engine = create_engine(postgresql_url)
    try:
        async def busy() -> int:
            async with engine.connect() as conn:
                return int((await conn.execute(text("SELECT pg_backend_pid(), pg_sleep(0.2)"))).one()[0])

        first = set(await asyncio.gather(*(busy() for _ in range(20))))
        assert len(first) == 20
        # Closing connections beyond a pool of 10 would make the next burst start new backends.
        pool = engine.sync_engine.pool
        assert isinstance(pool, QueuePool)
        assert pool.checkedin() == 20
        assert set(await asyncio.gather(*(busy() for _ in range(20)))) == first
    finally:
        await engine.dispose()
