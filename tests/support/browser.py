"""Debian's Chromium driven by Playwright (async API) against a live server.

The browser is never downloaded: ``HELPDESK_TEST_CHROMIUM`` (default /usr/bin/chromium) names
it. Without it the browser tests are skipped, unless ``HELPDESK_TEST_REQUIRE_SERVICES=1``, when
they fail. Every page request that leaves 127.0.0.1 is aborted, so the tests send nothing
outside the machine (htmx then comes from the vendored copy). Each xdist worker launches its
own browser.
"""

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright

from helpdesk.auth.dependencies import SESSION_COOKIE
from helpdesk.auth.models import User
from tests.support.server import LiveServer
from tests.support.services import unavailable
from tests.support.staff import Staff

CHROMIUM = os.environ.get("HELPDESK_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
HAVE_CHROMIUM = Path(CHROMIUM).exists()
LOCAL = re.compile(r"^(https?|wss?)://127\.0\.0\.1(:\d+)?/")


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless (the test is skipped, or in CI fails, without it)."""
    if not HAVE_CHROMIUM:
        unavailable(f"no Chromium at {CHROMIUM} (set HELPDESK_TEST_CHROMIUM)")
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
