"""What frames every page: the board's whole queue, a 403 with a way on, the icon, the CSP, and
the notice when the page's live updates stop."""

import httpx
from playwright.async_api import expect
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.models import Role
from helpdesk.storage.sessions import begin_write
from helpdesk.tickets import ingest as ticket_ingest
from helpdesk.tickets.models import Channel, InboundMessage, Sender
from tests.support.browser import Tabs
from tests.support.database import Peek
from tests.support.inbound import inbound
from tests.support.staff import Staff
from tests.support.waiting import wait_until


async def test_board_queue_shows_every_waiting_ticket_on_demand_and_keeps_them_live(
        tabs: Tabs, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    boss = await staff.create("boss", Role.supervisor)
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    await begin_write(db)
    for n in range(36):
        await ticket_ingest.ingest(db, InboundMessage(
            channel=Channel.api, external_id=f"q{n}", body_text=f"待っています {n}",
            sender=Sender(name=f"顧客 {n}", email=f"q{n}@example.jp")))
    await db.commit()
    tab = await tabs.open(boss)
    await tab.goto("/board")
    rows = tab.page.locator(".board-queue tr[data-ticket-id]")
    await expect(rows).to_have_count(12)
    await expect(tab.page.locator(".queue-shown")).to_contain_text("36件中12件を表示")
    # htmx wires the button up once the page has loaded; a click before that does nothing.
    await tab.page.wait_for_function("document.readyState === 'complete' && !!window.htmx")
    await tab.page.click("#queue-more")
    await expect(rows).to_have_count(36, timeout=15_000)  # swapped in late on a busy host
    await expect(tab.page.locator("#queue-more")).to_have_count(0)
    # A live change refreshes the board without folding the queue back to 12.
    seq = await peek.last_seq()
    await inbound(db, "q-late", email="late@example.jp")
    await tab.deliver(await peek.frames_after(seq))
    await expect(rows).to_have_count(37)
    assert sato.id is not None
    tab.assert_clean()


async def test_forbidden_page_leads_on_favicon_is_served_and_no_page_trips_the_csp(
        tabs: Tabs, staff: Staff, db: AsyncSession, web: httpx.AsyncClient) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    admin = await staff.create("admin", Role.admin, inboxes=["default"])
    result = await inbound(db, "c1")
    icon = await web.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"
    assert icon.content[:4] == b"\x00\x00\x01\x00"
    tab = await tabs.open(sato)
    await tab.goto("/board")
    await expect(tab.page.locator("main")).to_contain_text("この操作を行う権限がありません")
    await tab.page.locator(".error-nav").get_by_role("link", name="顧客").click()
    await tab.page.wait_for_url("**/customers")
    boss = await tabs.open(admin)
    for path in ("/inbox", f"/tickets/{result.ticket_id}", "/customers", "/calls", "/me", "/board",
                 "/admin/users", "/admin/inboxes", "/admin/channels", "/admin/templates",
                 "/admin/cti", "/admin/access", "/admin/audit", "/tickets/999999"):
        await boss.goto(path)
        await boss.page.wait_for_load_state("networkidle")
        assert await boss.csp_violations() == [], path
    boss.console.clear()  # /tickets/999999 rightly logged its 404
    await boss.goto("/inbox")
    await boss.page.click("#counts a[data-status='pending']")  # an htmx swap with its classes
    await boss.page.wait_for_url("**status=pending**")
    await boss.page.wait_for_load_state("networkidle")
    assert await boss.csp_violations() == []
    assert [c for c in boss.console if c.startswith("error")] == []
    tab.assert_clean()
    boss.assert_clean()


async def test_a_page_whose_session_ends_says_so_and_leads_to_sign_in(
        tabs: Tabs, staff: Staff, web: httpx.AsyncClient) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    tab = await tabs.open(sato)
    await tab.goto("/inbox")
    status = tab.page.locator("#live-status")

    async def online() -> bool:  # the page's socket has joined
        rows = (await web.get("/api/presence", headers=Staff.headers(sato))).json()
        return any(row["name"] == "sato" and row["status"] == "online" for row in rows)

    await wait_until(online)
    await expect(status).to_be_hidden()
    # Signing out everywhere (from another device) ends the page's own session too.
    ended = await web.post("/api/auth/logout-everywhere", headers=Staff.headers(sato))
    assert ended.status_code == 204
    await expect(status).to_be_visible()
    await expect(status).to_contain_text("サインアウトされたため、この画面は更新されなくなりました")
    login = status.get_by_role("link", name="ログイン")
    await expect(login).to_be_visible()
    await login.click()
    await tab.page.wait_for_url("**/login**")
    tab.assert_clean()
