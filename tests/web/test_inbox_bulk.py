"""Changing many tickets at once from the inbox."""

from playwright.async_api import expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.models import Role
from helpdesk.storage.sessions import begin_write
from helpdesk.tickets import service as tickets
from helpdesk.tickets.models import SavedView, Status, Tag, Ticket, TicketTag, TicketUpdate
from tests.support.browser import Tabs
from tests.support.database import Peek
from tests.support.inbound import inbound
from tests.support.staff import Staff


async def tags_of(peek: Peek, ticket_id: int) -> list[str]:
    return sorted(await peek.scalars(select(Tag.name).join(TicketTag).where(
        TicketTag.ticket_id == ticket_id)))


async def test_bulk_status_assignee_and_tags_with_refusals_said(
        tabs: Tabs, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    suzuki = await staff.create("suzuki", Role.operator, inboxes=["default"])
    one = await inbound(db, "b1", email="one@example.jp", name="一 太郎")
    two = await inbound(db, "b2", email="two@example.jp", name="二 花子")
    held = await inbound(db, "b3", email="three@example.jp", name="三 次郎")
    left = await inbound(db, "b4", email="four@example.jp", name="四 五郎")
    await begin_write(db)
    await tickets.claim(db, held.ticket_id, actor=suzuki)
    await db.commit()
    tab = await tabs.open(sato)
    await tab.goto("/inbox")
    await expect(tab.page.locator("#bulk-form")).to_be_hidden()
    for result in (one, two):
        await tab.page.check(f".ticket-row[data-ticket-id='{result.ticket_id}'] input[name=ids]")
    await expect(tab.page.locator("#bulk-count")).to_have_text("2件選択中")
    bar = tab.page.locator("#bulk-form")
    await bar.locator("select[name=status]").select_option("pending")
    await bar.locator("input[name=pending_reason]").fill("在庫確認中")
    await bar.locator("select[name=assignee]").select_option(str(sato.id))
    await bar.locator("input[name=add_tags]").fill("返品, 至急")
    await bar.locator("button[type=submit]").click()
    await expect(tab.page.locator("#bulk-outcome")).to_contain_text("変更したチケット：2")
    await expect(tab.page.locator(".ticket-row")).to_have_count(1)  # only the one left behind
    for result in (one, two):
        ticket = await peek.get(Ticket, result.ticket_id)
        assert (ticket.status, ticket.pending_reason, ticket.assignee_id) == (
            Status.pending, "在庫確認中", sato.id)
        assert await tags_of(peek, result.ticket_id) == ["至急", "返品"]
    assert (await peek.get(Ticket, left.ticket_id)).status == Status.unhandled

    # A ticket someone else holds: its tag changes, the assignee change is refused and said.
    await tab.page.click("#counts a[data-status='in_progress']")
    await tab.page.wait_for_url("**status=in_progress**")
    await tab.page.check(f".ticket-row[data-ticket-id='{held.ticket_id}'] input[name=ids]")
    await expect(tab.page.locator("#bulk-count")).to_have_text("1件選択中")
    await bar.locator("select[name=assignee]").select_option("none")
    await bar.locator("input[name=add_tags]").fill("要確認")
    await bar.locator("button[type=submit]").click()
    outcome = tab.page.locator("#bulk-outcome")
    await expect(outcome).to_contain_text("ほかの人の担当チケットを引き取れるのはスーパーバイザーのみです")
    assert (await peek.get(Ticket, held.ticket_id)).assignee_id == suzuki.id
    assert await tags_of(peek, held.ticket_id) == ["要確認"]
    tab.assert_clean()


async def test_saved_views_are_named_kept_reopened_and_removed(
        tabs: Tabs, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    suzuki = await staff.create("suzuki", Role.operator, inboxes=["default"])
    returned = await inbound(db, "v1", email="r@example.jp", name="返品 太郎")
    await inbound(db, "v2", email="o@example.jp", name="他 花子")
    await begin_write(db)
    ticket = await db.get(Ticket, returned.ticket_id)
    await tickets.update(db, ticket, TicketUpdate(version=ticket.version, tags=["返品"]), actor=sato)
    await db.commit()
    tab = await tabs.open(sato)
    await tab.goto("/inbox?tag=返品")
    await expect(tab.page.locator(".ticket-row")).to_have_count(1)
    await tab.page.fill(".save-view input[name=name]", "返品の問い合わせ")
    await tab.page.click(".save-view button")
    link = tab.page.locator(".saved-view a", has_text="返品の問い合わせ")
    await expect(link).to_have_attribute("aria-current", "page")
    assert await peek.scalars(select(SavedView.query)) == [
        "status=unhandled&view=all&tag=%E8%BF%94%E5%93%81"]
    await tab.goto("/inbox")
    await expect(tab.page.locator(".ticket-row")).to_have_count(2)
    await link.click()
    await tab.page.wait_for_url("**tag=**")
    await expect(tab.page.locator(".ticket-row")).to_have_count(1)
    other = await tabs.open(suzuki)
    await other.goto("/inbox")
    await expect(other.page.locator(".saved-view")).to_have_count(0)  # kept per user
    await tab.page.locator(".saved-view button").click()
    await expect(tab.page.locator(".saved-view")).to_have_count(0)
    assert await peek.scalars(select(SavedView.id)) == []
    tab.assert_clean()
    other.assert_clean()
