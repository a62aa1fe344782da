"""Macros: an admin makes a template that sets a status and adds tags; one choice and Send."""

from playwright.async_api import expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.models import Role
from helpdesk.replies.models import ReplyTemplate
from helpdesk.storage.sessions import begin_write
from helpdesk.tickets.models import Message, Status, Tag, Ticket, TicketTag
from tests.support.browser import Tabs
from tests.support.database import Peek
from tests.support.inbound import inbound
from tests.support.staff import Staff


async def test_admin_makes_a_macro_and_an_operator_applies_it_with_the_reply(
        tabs: Tabs, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    admin = await staff.create("admin", Role.admin)
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    result = await inbound(db, "m1", body="返品したいです", name="返品 太郎", email="r@example.jp")
    boss = await tabs.open(admin)
    await boss.goto("/admin/templates")
    new = boss.page.locator("form[hx-post='/admin/templates']")
    await new.locator("input[name=name]").fill("返品受付の完了")
    await new.locator("textarea[name=body]").fill("{customer_name}様\n返品を承りました。")
    await new.locator("select[name=set_status]").select_option("resolved")
    await new.locator("input[name=add_tags]").fill("返品、受付済")
    await new.locator("button[type=submit]").click()
    await expect(boss.page.locator("#template-list select[name=set_status]")).to_have_value("resolved")
    stored = await peek.scalar(select(ReplyTemplate))
    assert (stored.set_status, stored.add_tags) == ("resolved", "返品, 受付済")

    tab = await tabs.open(sato)
    await tab.goto(f"/tickets/{result.ticket_id}")
    await tab.page.select_option("#composer select[name=template_id]", label="返品受付の完了")
    await expect(tab.page.locator("#reply-body")).to_have_value("返品 太郎様\n返品を承りました。")
    await expect(tab.page.locator("#macro-note")).to_contain_text("対応済")
    await tab.page.click("#composer button[type=submit]")
    await expect(tab.page.locator("#sent-note")).to_contain_text("マクロを適用しました：返品受付の完了")
    await expect(tab.page.locator("#current-status")).to_contain_text("対応済")
    ticket = await peek.get(Ticket, result.ticket_id)
    assert ticket.status == Status.resolved
    assert sorted(await peek.scalars(select(Tag.name).join(TicketTag).where(
        TicketTag.ticket_id == result.ticket_id))) == ["受付済", "返品"]
    bodies = await peek.scalars(select(Message.body_text).where(Message.ticket_id == result.ticket_id))
    assert bodies[-1] == "返品 太郎様\n返品を承りました。"
    boss.assert_clean()
    tab.assert_clean()


async def test_a_dropped_macro_sends_only_the_reply(
        tabs: Tabs, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    result = await inbound(db, "m2", body="質問です", email="q@example.jp")
    await begin_write(db)
    db.add(ReplyTemplate(name="締め", body="ありがとうございました。", set_status="resolved"))
    await db.commit()
    tab = await tabs.open(sato)
    await tab.goto(f"/tickets/{result.ticket_id}")
    await tab.page.select_option("#composer select[name=template_id]", label="締め")
    await tab.page.click("#macro-note [data-drop-macro]")
    await expect(tab.page.locator("#macro-note")).to_be_empty()
    await tab.page.click("#composer button[type=submit]")
    await expect(tab.page.locator("#sent-note")).to_be_visible()
    await expect(tab.page.locator("#sent-note")).not_to_contain_text("マクロ")
    assert (await peek.get(Ticket, result.ticket_id)).status == Status.in_progress
    tab.assert_clean()
