"""Browser fixtures: Debian's Chromium driven by Playwright against a live server
(see ``tests.support.browser``), on a database whose event seqs carry on between tests."""

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from playwright.async_api import Browser
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from helpdesk.db import create_engine
from tests.support.browser import Tab, Tabs, chromium
from tests.support.database import Peek, reset
from tests.support.inbound import inbound
from tests.support.server import LiveServer, make_settings

# Names tests imported from here before they moved to tests.support.
__all__ = ["Peek", "Tab", "Tabs", "inbound"]


@pytest.fixture(scope="session")
def web_server(database_url: str) -> Iterator[LiveServer]:
    """A server for the browser: htmx from the vendored copy only (no CDN outside the machine)."""
    with LiveServer(make_settings(database_url, htmx_cdn_url="")) as live:
        yield live


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the emptied test database, whose event seqs carry on from the last test.

    The browser's servers live through the whole run, and their socket hubs remember the last
    seq they passed on. Seqs never go back in a real log, so here the emptied log does not start
    over either: it goes on from where the previous test left it.
    """
    eng = create_engine(database_url)
    # On PostgreSQL the seqs come from a sequence (emptying the log restarts it), else a counter.
    on_pg = eng.dialect.name == "postgresql"
    async with eng.connect() as conn:
        high = await conn.scalar(text(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM event_log_seq" if on_pg else
            "SELECT value FROM counter WHERE name = 'event_seq'"))
    await reset(eng)
    async with eng.begin() as conn:
        if on_pg and high:
            await conn.execute(text("SELECT setval('event_log_seq', :v)"), {"v": int(high)})
        elif not on_pg:
            await conn.execute(text("UPDATE counter SET value = :v WHERE name = 'event_seq'"),
                               {"v": int(high or 0)})
    yield eng
    await eng.dispose()


@pytest.fixture
async def web(web_server: LiveServer, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client on the browser's server, on an emptied database."""
    async with httpx.AsyncClient(base_url=web_server.url, timeout=30) as client:
        yield client


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless."""
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def tabs(browser: Browser, web_server: LiveServer, engine: AsyncEngine) -> Tabs:
    """Opens signed-in browser tabs on an emptied database."""
    return Tabs(browser, web_server)


@pytest.fixture
def peek(engine: AsyncEngine) -> Peek:
    return Peek(engine)
