"""Shared fixtures: a real database (SQLite, or PostgreSQL via HELPDESK_TEST_DATABASE_URL), a real
server on a loopback port, and helpers that create staff and tokens (from ``tests.support``).

The server commits for real, so tests cannot hide their data in a rolled-back transaction;
instead every table is emptied before each test. Under ``pytest -n`` each worker has its own
database (see ``tests.support.database``), so workers never empty each other's tables.
"""

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from helpdesk.db import create_engine
from helpdesk.migrations import run_upgrade
from helpdesk.realtime.log import event_sessions
from helpdesk.storage.sessions import begin_write
from tests.support import ROOT
from tests.support.database import configured_url, prepare_postgresql, reset
from tests.support.inbound import INBOUND_HEADERS, inbound_body, post_inbound
from tests.support.server import INBOUND_TOKEN, SECRET, LiveServer, free_port, make_settings
from tests.support.services import shared_redis_url
from tests.support.staff import PASSWORD, Staff

# Names tests imported from here before they moved to tests.support.
__all__ = ["INBOUND_HEADERS", "INBOUND_TOKEN", "PASSWORD", "ROOT", "SECRET", "LiveServer", "Staff",
           "begin_write", "free_port", "inbound_body", "make_settings", "post_inbound", "reset"]


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated database, from scratch for this run (one per xdist worker)."""
    url = configured_url(tmp_path_factory)
    if url.startswith("postgresql"):
        asyncio.run(prepare_postgresql(url))
    run_upgrade(url)
    return url


@pytest.fixture(scope="session")
def server(database_url: str) -> Iterator[LiveServer]:
    """One real server for the whole run."""
    with LiveServer(make_settings(database_url)) as live:
        yield live


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The shared test Redis (a test that asks for it is skipped, or in CI fails, without it)."""
    return shared_redis_url()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the test database, emptied before the test."""
    eng = create_engine(database_url)
    await reset(eng)
    yield eng
    await eng.dispose()


@pytest.fixture
async def db(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session for arranging and checking data (commit to make it visible to the server)."""
    async with event_sessions(engine, read_only=True)() as session:
        yield session


@pytest.fixture
async def staff(db: AsyncSession) -> Staff:
    return Staff(db)


@pytest.fixture
async def http(server: LiveServer, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    """A real HTTP client against the live server, on an emptied database."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client

