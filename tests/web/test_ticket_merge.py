"""Merging two tickets of one customer from the ticket page."""

from playwright.async_api import expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.models import Role
from helpdesk.tickets.models import Channel, Message, Status, Ticket
from tests.support.browser import Tabs
from tests.support.database import Peek
from tests.support.inbound import inbound
from tests.support.staff import Staff


async def test_the_other_ticket_of_the_customer_is_merged_into_this_one(
        tabs: Tabs, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    first = await inbound(db, "t1", body="注文番号EC-1の件です", email="k@example.jp",
                          channel=Channel.email, subject="注文について")
    second = await inbound(db, "t2", body="先ほどの件、追加で質問です", email="k@example.jp",
                           channel=Channel.email, subject="追加の質問")
    assert first.ticket_id != second.ticket_id
    tab = await tabs.open(sato)
    await tab.goto(f"/tickets/{first.ticket_id}")
    other = tab.page.locator(f"#customer-panel .others li[data-ticket-id='{second.ticket_id}']")
    await other.locator(".merge-ticket button").click()
    await tab.page.wait_for_url(f"**/tickets/{first.ticket_id}")
    thread = tab.page.locator("#thread")
    await expect(thread).to_contain_text("先ほどの件、追加で質問です")
    number = (await peek.get(Ticket, second.ticket_id)).number
    note = thread.locator(".msg-note").last
    await expect(note).to_contain_text(f"チケット#{number}をこのチケットに統合しました。")
    moved = await peek.scalars(select(Message.ticket_id).where(Message.internal.is_(False)))
    assert moved == [first.ticket_id, first.ticket_id]
    gone = await peek.get(Ticket, second.ticket_id)
    assert gone.status == Status.resolved
    notes = await peek.scalars(select(Message.body_text).where(Message.ticket_id == second.ticket_id))
    assert notes == [f"#{(await peek.get(Ticket, first.ticket_id)).number}に統合しました。"]
    await tab.goto("/inbox?q=追加で質問")
    await expect(tab.page.locator(f".ticket-row[data-ticket-id='{first.ticket_id}']")).to_have_count(1)
    tab.assert_clean()
