"""Editing a customer's name, reading and notes from their page."""

from playwright.async_api import expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.audit.models import AuditLog
from helpdesk.auth.models import Role
from helpdesk.customers.models import Customer
from helpdesk.tickets.models import Ticket
from tests.conftest import Staff
from tests.web.conftest import Peek, Tabs, inbound


async def test_edit_name_kana_and_note_then_find_by_the_new_kana(
        tabs: Tabs, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    result = await inbound(db, "e1", name="yamada taro", email="yt@example.jp")
    customer_id = (await peek.get(Ticket, result.ticket_id)).customer_id
    tab = await tabs.open(sato)
    await tab.goto(f"/customers/{customer_id}")
    await tab.page.click(".edit-customer summary")
    form = tab.page.locator(".edit-customer form")
    await form.locator("input[name=name]").fill("山田 太郎")
    await form.locator("input[name=name_kana]").fill("やまだ たろう")
    note = "電話は午後のみ希望。\n贈答用の注文が多い。"
    await form.locator("textarea[name=note]").fill(note)
    await form.locator("button[type=submit]").click()
    await expect(tab.page.locator("#customer-note")).to_have_text(note)
    await expect(tab.page.locator("h1")).to_contain_text("山田 太郎")
    stored = await peek.get(Customer, customer_id)
    assert (stored.name, stored.name_kana) == ("山田 太郎", "やまだ たろう")
    assert await peek.scalars(select(AuditLog.action).where(AuditLog.action == "customer.update"))
    await tab.goto("/customers?q=ヤマダ")
    await expect(tab.page.locator("main")).to_contain_text("山田 太郎")
    tab.assert_clean()
