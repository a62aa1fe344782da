"""What an inbox row and an inbox search show an operator at a glance."""

import re
from datetime import timedelta

from playwright.async_api import expect
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.models import Role
from helpdesk.storage.sessions import begin_write
from helpdesk.tickets import service as tickets
from helpdesk.tickets.models import Status, Ticket, TicketUpdate
from tests.support.browser import Tabs
from tests.support.inbound import inbound
from tests.support.staff import Staff


async def _move(db: AsyncSession, ticket_id: int, status: Status, actor) -> None:  # type: ignore[no-untyped-def]
    await begin_write(db)
    ticket = await db.get(Ticket, ticket_id)
    assert ticket is not None
    await tickets.update(db, ticket, TicketUpdate(version=ticket.version, status=status),
                         actor=actor)
    await db.commit()


async def test_search_looks_in_every_status_and_shows_each_status(
        tabs: Tabs, staff: Staff, db: AsyncSession) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    charged = await inbound(db, "a", body="二重請求されています", name="中村 大翔", email="n@example.jp")
    await inbound(db, "b", body="領収書をください", name="小林 結衣", email="k@example.jp")
    await _move(db, charged.ticket_id, Status.in_progress, sato)
    tab = await tabs.open(sato)
    await tab.goto("/inbox")
    await expect(tab.page.locator(".ticket-row")).to_have_count(1)  # 未対応 only
    await tab.page.fill("#search-box", "二重請求")
    await tab.page.press("#search-box", "Enter")
    await tab.page.wait_for_url("**q=**")
    row = tab.page.locator(".ticket-row")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("中村 大翔")
    await expect(row.locator(".badge")).to_have_text("対応中")
    await expect(tab.page.locator("#counts a[aria-current=page]")).to_have_text("すべての状態")
    assert "status=" not in tab.page.url
    # A tab narrows the search; a new search leaves the tab behind again.
    await tab.page.click("#counts a[data-status='unhandled']")
    await tab.page.wait_for_url("**status=unhandled**")
    await expect(tab.page.locator(".ticket-row")).to_have_count(0)
    await tab.page.fill("#search-box", "請求")
    await tab.page.press("#search-box", "Enter")
    await tab.page.wait_for_url(lambda url: "status=" not in url)
    await expect(tab.page.locator(".ticket-row")).to_have_count(1)
    tab.assert_clean()


async def test_row_shows_age_unread_and_preview_and_opens_from_anywhere(
        tabs: Tabs, staff: Staff, db: AsyncSession) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    first = await inbound(db, "a", body="湯呑みが割れていました。\n交換をお願いします。", name="中村 大翔",
                          email="n@example.jp")
    await begin_write(db)
    ticket = await db.get(Ticket, first.ticket_id)
    assert ticket is not None
    ticket.created_at = ticket.created_at - timedelta(hours=3, minutes=5)
    await db.commit()
    tab = await tabs.open(sato)
    await tab.goto("/inbox")
    row = tab.page.locator(f".ticket-row[data-ticket-id='{first.ticket_id}']")
    await expect(row).to_have_class(re.compile("is-unread"))
    await expect(row.locator(".unread-dot")).to_have_count(1)
    await expect(row.locator(".preview")).to_have_text("湯呑みが割れていました。 交換をお願いします。")
    await expect(row.locator(".age")).to_have_text("3 時間")
    await row.locator("td").nth(3).click()  # the channel cell, not the subject link
    await tab.page.wait_for_url(f"**/tickets/{first.ticket_id}")
    await tab.goto("/inbox")
    await expect(row).not_to_have_class(re.compile("is-unread"))  # opened: read
    # The customer writes again: unread again, and the preview follows the thread.
    await inbound(db, "b", body="追加で質問です", name="中村 大翔", email="n@example.jp")
    await tab.goto("/inbox")
    await expect(row).to_have_class(re.compile("is-unread"))
    await expect(row.locator(".preview")).to_have_text("追加で質問です")
    tab.assert_clean()
