"""Browser fixtures: Debian's Chromium driven by Playwright (async API) against a live server.

The browser is never downloaded: ``HELPDESK_TEST_CHROMIUM`` (default /usr/bin/chromium) names
it. Without it the browser tests are skipped, unless ``HELPDESK_TEST_REQUIRE_SERVICES=1``, when
they fail. Every page request that leaves 127.0.0.1 is aborted, so the tests send nothing
outside the machine (htmx then comes from the vendored copy).
"""

import os
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from helpdesk.auth.dependencies import SESSION_COOKIE
from helpdesk.auth.models import User
from helpdesk.db import create_engine
from helpdesk.realtime import log as events
from helpdesk.realtime.log import event_sessions
from helpdesk.storage.sessions import begin_write
from helpdesk.tickets import ingest as ticket_ingest
from helpdesk.tickets.models import Channel, InboundMessage, IngestResult, Sender
from tests.conftest import LiveServer, Staff, make_settings, reset

CHROMIUM = os.environ.get("HELPDESK_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
REQUIRE = os.environ.get("HELPDESK_TEST_REQUIRE_SERVICES") == "1"
HAVE_CHROMIUM = Path(CHROMIUM).exists()
LOCAL = re.compile(r"^(https?|wss?)://127\.0\.0\.1(:\d+)?/")


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
    async with eng.connect() as conn:
        high = await conn.scalar(text("SELECT value FROM counter WHERE name = 'event_seq'"))
    await reset(eng)
    async with eng.begin() as conn:
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
    if not HAVE_CHROMIUM:
        message = f"no Chromium at {CHROMIUM} (set HELPDESK_TEST_CHROMIUM)"
        if REQUIRE:
            pytest.fail(message)
        pytest.skip(message)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Tab:
    """A signed-in (or anonymous) browser page, with what went wrong in it."""

    page: Page
    context: BrowserContext
    base: str
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    async def goto(self, path: str) -> None:
        await self.page.goto(self.base + path)

    async def deliver(self, frames: list[dict[str, Any]]) -> None:
        """Hand socket frames to the page the way live.js does (a helpdesk:event per frame)."""
        await self.page.evaluate(
            "frames => frames.forEach(f => document.dispatchEvent("
            "new CustomEvent('helpdesk:event', {detail: f})))", frames)

    async def csp_violations(self) -> list[str]:
        return list(await self.page.evaluate("window.__csp || []"))

    def assert_clean(self) -> None:
        """No uncaught script error happened in the page."""
        assert self.errors == [], self.errors


WATCH = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
  e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
"""


async def _guard(route: Any) -> None:
    if LOCAL.match(route.request.url) or route.request.url.startswith(("data:", "blob:")):
        await route.continue_()
    else:
        await route.abort()


@dataclass
class Tabs:
    browser: Browser
    server: LiveServer

    async def open(self, user: User | None = None, *, language: str | None = None,
                   width: int = 1366, height: int = 800) -> Tab:
        """A new browser context, signed in as ``user`` through the session cookie."""
        context = await self.browser.new_context(viewport={"width": width, "height": height},
                                                 locale="ja-JP", timezone_id="Asia/Tokyo")
        context.set_default_timeout(10_000)
        await context.route("**/*", _guard)
        await context.add_init_script(WATCH)
        if user is not None:
            token = Staff.cookie(user)
            await context.add_cookies([{"name": SESSION_COOKIE, "value": token, "url": self.server.url}])
        if language is not None:
            await context.add_cookies([{"name": "helpdesk_lang", "value": language, "url": self.server.url}])
        page = await context.new_page()
        tab = Tab(page=page, context=context, base=self.server.url)
        page.on("pageerror", lambda exc: tab.errors.append(str(exc)))
        page.on("console", lambda msg: _console(tab, msg))
        return tab


def _console(tab: Tab, message: ConsoleMessage) -> None:
    tab.console.append(f"{message.type}: {message.text}")


@pytest.fixture
async def tabs(browser: Browser, web_server: LiveServer, engine: AsyncEngine) -> Tabs:
    """Opens signed-in browser tabs on an emptied database."""
    return Tabs(browser, web_server)


async def inbound(db: AsyncSession, key: str, *, body: str = "注文の件で質問です", name: str = "山田 太郎",
                  email: str | None = "taro@example.jp", phone: str | None = None,
                  channel: Channel = Channel.api, subject: str | None = None,
                  body_html: str | None = None, inbox: str = "default") -> IngestResult:
    """A message through the one ingest path, committed so the server sees it."""
    await begin_write(db)
    result = await ticket_ingest.ingest(db, InboundMessage(
        channel=channel, external_id=key, sender=Sender(name=name, email=email, phone=phone),
        body_text=body, body_html=body_html, subject=subject, inbox=inbox))
    await db.commit()
    return result


class Peek:
    """Reads what the server committed, each read in its own short session.

    Tests must not keep a transaction open while the server works: SQLite write transactions
    begin IMMEDIATE here, and a read left open in the arranging session would block the server.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.sessions = event_sessions(engine)

    async def scalars(self, stmt: Any) -> list[Any]:
        async with self.sessions() as session:
            return list(await session.scalars(stmt))

    async def scalar(self, stmt: Any) -> Any:
        async with self.sessions() as session:
            return await session.scalar(stmt)

    async def get(self, model: type, ident: Any) -> Any:
        async with self.sessions() as session:
            return await session.get(model, ident)

    async def frames_after(self, seq: int) -> list[dict[str, Any]]:
        """Committed events after ``seq`` as socket frames (what /ws sends)."""
        async with self.sessions() as session:
            return [{"seq": e.seq, "type": e.type, "at": e.at.isoformat(), "data": e.data}
                    for e in await events.events_after(session, seq)]

    async def last_seq(self) -> int:
        frames = await self.frames_after(0)
        return frames[-1]["seq"] if frames else 0


@pytest.fixture
def peek(engine: AsyncEngine) -> Peek:
    return Peek(engine)
