"""Phone numbers are stored E.164 and shown as their readers write them, on every page."""

from playwright.async_api import expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.models import Role
from helpdesk.customers.models import CustomerIdentity, IdentityKind
from helpdesk.tickets.models import Channel
from tests.support.browser import Tabs
from tests.support.database import Peek
from tests.support.inbound import inbound
from tests.support.staff import Staff


async def test_domestic_numbers_national_and_foreign_ones_international(
        tabs: Tabs, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    home = await inbound(db, "s1", body="電話ください", name="山田 太郎", email=None,
                         phone="09010727576", channel=Channel.sms)
    abroad = await inbound(db, "s2", body="Call me", name="Jane Doe", email=None,
                           phone="+1 415 555 2671", channel=Channel.sms)
    stored = await peek.scalars(select(CustomerIdentity.value).where(
        CustomerIdentity.kind == IdentityKind.phone).order_by(CustomerIdentity.id))
    assert stored == ["+819010727576", "+14155552671"]
    tab = await tabs.open(sato)
    await tab.goto(f"/tickets/{home.ticket_id}")
    await expect(tab.page.locator("#customer-panel")).to_contain_text("090-1072-7576")
    assert "+819010727576" not in await tab.page.inner_text("body")
    await tab.goto(f"/tickets/{abroad.ticket_id}")
    await expect(tab.page.locator("#customer-panel")).to_contain_text("+1 415-555-2671")
    await tab.goto("/customers?q=090-1072-7576")
    await expect(tab.page.locator("main")).to_contain_text("090-1072-7576")
    await tab.page.click("text=山田 太郎")
    await tab.page.wait_for_url("**/customers/*")
    await expect(tab.page.locator("main")).to_contain_text("090-1072-7576")
    tab.assert_clean()
