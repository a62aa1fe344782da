"""@mentions in internal notes tell the colleagues named, on their own socket."""

from playwright.async_api import expect
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.models import Role
from helpdesk.tickets import mentions
from helpdesk.tickets.models import Ticket
from tests.support.browser import Tabs
from tests.support.database import Peek
from tests.support.inbound import inbound
from tests.support.staff import Staff


async def test_a_note_naming_a_colleague_tells_them_and_nobody_else(
        tabs: Tabs, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    suzuki = await staff.create("suzuki", Role.operator, inboxes=["default"])
    tanaka = await staff.create("tanaka", Role.operator, inboxes=["default"])
    result = await inbound(db, "n1", body="至急確認お願いします")
    told = await tabs.open(suzuki)
    await told.goto("/inbox")
    bystander = await tabs.open(tanaka)
    await bystander.goto("/inbox")
    await told.page.wait_for_timeout(800)  # both sockets are open
    tab = await tabs.open(sato)
    await tab.goto(f"/tickets/{result.ticket_id}")
    await tab.page.fill("#reply-body", "@suzuki 在庫の確認をお願いします。")
    await tab.page.check("#composer input[name=internal]")
    await tab.page.click("#composer button[type=submit]")
    await tab.page.wait_for_selector("#thread .msg-note")
    toast = told.page.locator("#toasts .toast-mention a")
    number = (await peek.get(Ticket, result.ticket_id)).number
    await expect(toast).to_have_text(f"satoさんが#{number}であなたをメンションしました")
    assert (await toast.get_attribute("href") or "").startswith(f"/tickets/{result.ticket_id}#message-")
    await bystander.page.wait_for_timeout(500)
    await expect(bystander.page.locator("#toasts .toast-mention")).to_have_count(0)
    await expect(tab.page.locator("#toasts .toast-mention")).to_have_count(0)  # not the author
    for t in (tab, told, bystander):
        t.assert_clean()


def test_handles_are_email_names_and_names_and_end_at_a_boundary() -> None:
    from helpdesk.auth.models import User

    sato = User(id=1, email="sato@example.com", name="佐藤 美咲", role=Role.operator, password_hash="x")
    satoh = User(id=2, email="satoh@example.com", name="佐藤 一", role=Role.operator, password_hash="x")
    staff = [sato, satoh]
    assert mentions.mentioned("@sato 見てください", staff) == [sato]
    assert mentions.mentioned("@satoh、お願いします", staff) == [satoh]
    assert mentions.mentioned("＠佐藤美咲 さん", staff) == [sato]
    assert mentions.mentioned("@佐藤 美咲", staff) == [sato]
    assert mentions.mentioned("mail sato@example.com", staff) == []
    assert mentions.mentioned("@satoshi", staff) == []
