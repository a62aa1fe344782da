"""static/js/live.js in a real Chromium: cookie sign-in, resume across forced reconnects, send()."""

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from helpdesk.auth.models import Role
from tests.realtime.conftest import ServerFactory, prune_all_but_the_newest
from tests.support.browser import chromium as launch_chromium
from tests.support.inbound import post_inbound
from tests.support.sockets import committed_events, open_socket, settled
from tests.support.staff import Staff
from tests.support.waiting import wait_until


async def until(page: Page, expression: str, *, seconds: float = 10.0) -> None:
    """Wait until ``expression`` is true in the page.

    Polled from here with ``evaluate`` (which the page's CSP does not govern): Playwright's
    ``wait_for_function`` builds its predicate with ``new Function`` inside the page, and the
    page's CSP rightly forbids eval.
    """
    async def true_in_page() -> bool:
        return bool(await page.evaluate(expression))

    try:
        await wait_until(true_in_page, within=seconds)
    except AssertionError:
        raise AssertionError(f"still false after {seconds} s: {expression}") from None


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless (never downloaded)."""
    async with launch_chromium() as browser:
        yield browser


async def test_live_js_resumes_across_reconnects_and_sends(
        live_servers: ServerFactory, client_for, chromium: Browser, staff: Staff,
        db: AsyncSession) -> None:
    live = live_servers(ws_max_lifetime_seconds=1.0)  # the server cuts every socket each second
    http = client_for(live)
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    context, page = await open_page(chromium, live.url,
                                    Staff.cookie(sato))
    await until(page, "window.states.includes('open')")

    for n in range(12):  # spread over several forced reconnects
        assert (await post_inbound(http, f"js-{n}")).status_code == 201
        await asyncio.sleep(0.25)  # the subject: posts spread over the server's 1 s socket lifetime
    expected = [e.seq for e in await committed_events(db)]
    await until(
        page,
        f"window.frames_seen.filter(f => f.seq !== undefined).length >= {len(expected)}",
        seconds=20.0)
    await asyncio.sleep(0.5)  # a duplicate frame, had one been sent, arrives within this
    frames = await page.evaluate("window.frames_seen.filter(f => f.seq !== undefined)")
    assert [f["seq"] for f in frames] == [e.seq for e in await committed_events(db)]
    assert all(set(f) == {"seq", "type", "at", "data"} for f in frames)
    assert (await page.evaluate("window.states")).count("open") >= 2  # it did reconnect
    assert await page.evaluate("sessionStorage.getItem('helpdesk.live.lastSeq')") == str(
        frames[-1]["seq"])

    await context.close()


async def open_page(chromium: Browser, base_url: str, cookie: str | None):  # type: ignore[no-untyped-def]
    """A same-origin page with live.js loaded, recording frames and states."""
    context = await chromium.new_context()
    if cookie:
        await context.add_cookies([{"name": "helpdesk_session", "value": cookie, "url": base_url}])
    page = await context.new_page()
    await page.goto(f"{base_url}/healthz")
    await page.evaluate("""() => {
        window.frames_seen = [];
        window.states = [];
        document.addEventListener('helpdesk:event', (e) => window.frames_seen.push(e.detail));
        document.addEventListener('helpdesk:live', (e) => window.states.push(e.detail.state));
    }""")
    await page.add_script_tag(url="/static/js/live.js")
    return context, page


async def test_live_js_send_reaches_the_other_operators(
        live_servers: ServerFactory, client_for, chromium: Browser, staff: Staff) -> None:
    live = live_servers()
    ticket_id = (await post_inbound(client_for(live), "t-1")).json()["ticket_id"]
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    tanaka = await staff.create("tanaka", Role.operator, inboxes=["default"])
    context, page = await open_page(chromium, live.url,
                                    Staff.cookie(sato))
    await until(page, "window.states.includes('open')")
    await until(page,   # its own arrival, so the page is surely live
        "window.frames_seen.some(f => f.type === 'presence.changed' && f.data.name === 'sato')")
    async with open_socket(live, Staff.token(tanaka), after=0) as other:
        await settled(other)  # viewing and typing are momentary: only live sockets get them
        assert await page.evaluate(f"window.helpdeskLive.viewing({ticket_id})") is True
        assert await page.evaluate(
            f"window.helpdeskLive.send({{type: 'typing', ticket_id: {ticket_id}}})") is True
        kinds = []
        async with asyncio.timeout(10):
            while len(kinds) < 2:
                frame = json.loads(await other.recv())
                if frame["type"] in ("ticket.viewing", "ticket.typing"):
                    assert frame["data"]["name"] == "sato"
                    kinds.append(frame["type"])
        assert kinds == ["ticket.viewing", "ticket.typing"]
        # the page heard tanaka come online, as an ordinary event
        await until(
        page,
            "window.frames_seen.some(f => f.type === 'presence.changed' && f.data.name === 'tanaka')")
    await context.close()


async def test_live_js_stops_when_signed_out(live_servers: ServerFactory,
                                             chromium: Browser) -> None:
    live = live_servers()
    context, page = await open_page(chromium, live.url, None)
    await until(page, "window.states.includes('signed-out')")
    await asyncio.sleep(1.5)  # long enough for a reconnect, had it tried
    assert await page.evaluate("window.states") == ["open", "signed-out"]
    await context.close()


async def test_live_js_resyncs_when_the_events_it_missed_were_pruned(
        live_servers: ServerFactory, client_for, chromium: Browser, staff: Staff,
        db: AsyncSession, database_url: str, engine: AsyncEngine) -> None:
    live = live_servers()
    http = client_for(live)
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    cookie = Staff.cookie(sato)
    for n in range(3):
        assert (await post_inbound(http, f"old-{n}")).status_code == 201
    first = (await committed_events(db))[0].seq
    pruned = await prune_all_but_the_newest(database_url, engine)

    # A tab that last saw `first` a month ago, on a page that refetches by itself.
    context = await chromium.new_context()
    await context.add_cookies([{"name": "helpdesk_session", "value": cookie, "url": live.url}])
    page = await context.new_page()
    await page.goto(f"{live.url}/healthz")
    await page.evaluate(f"""() => {{
        sessionStorage.setItem('helpdesk.live.lastSeq', '{first}');
        window.resyncs = [];
        window.frames_seen = [];
        document.addEventListener('helpdesk:resync', (e) => {{
            window.resyncs.push(e.detail);
            e.preventDefault();
        }});
        document.addEventListener('helpdesk:event', (e) => window.frames_seen.push(e.detail));
    }}""")
    await page.add_script_tag(url="/static/js/live.js")
    await until(page, "window.resyncs.length === 1")
    after = await page.evaluate("window.resyncs[0].data.after")
    assert after >= pruned
    assert await page.evaluate("window.frames_seen.filter(f => f.type === 'resync').length") == 0
    assert (await post_inbound(http, "new")).status_code == 201
    await until(page, "window.frames_seen.some(f => f.type === 'message.created')")
    seqs = await page.evaluate("window.frames_seen.filter(f => f.seq !== undefined).map(f => f.seq)")
    assert seqs and min(seqs) > after
    await context.close()

    # Nobody handles it: the page reloads, and the tab resumes from `after` from then on.
    context = await chromium.new_context()
    await context.add_cookies([{"name": "helpdesk_session", "value": cookie, "url": live.url}])
    page = await context.new_page()
    await page.goto(f"{live.url}/healthz")
    await page.evaluate(f"""() => {{
        sessionStorage.setItem('helpdesk.live.lastSeq', '{first}');
        window.before_reload = true;
    }}""")
    async with page.expect_navigation(timeout=10_000):
        await page.add_script_tag(url="/static/js/live.js")
    assert await page.evaluate("window.before_reload === undefined")
    stored = int(await page.evaluate("sessionStorage.getItem('helpdesk.live.lastSeq')"))
    assert stored >= pruned
    await context.close()
