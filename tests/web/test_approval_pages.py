"""Send approval in two browsers: a held reply is not sent until approved; a returned one goes
back to its author with the comment; both seen live."""

from playwright.async_api import expect
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.approval import service as approval
from helpdesk.approval.models import ApprovalConfig
from helpdesk.auth.models import Role
from helpdesk.inboxes.models import Inbox
from helpdesk.outbox.models import OutboxItem
from helpdesk.storage.sessions import begin_write
from helpdesk.tickets.models import Message
from tests.support.browser import Tabs
from tests.support.database import Peek
from tests.support.inbound import inbound
from tests.support.staff import Staff


async def outbox(peek: Peek) -> int:
    return int(await peek.scalar(select(func.count()).select_from(OutboxItem)) or 0)


async def test_held_reply_waits_for_approval_and_a_returned_one_goes_back_live(
        tabs: Tabs, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    boss = await staff.create("boss", Role.supervisor)
    result = await inbound(db, "a1")
    await begin_write(db)
    inbox_id = await db.scalar(select(Inbox.id).where(Inbox.name == "default"))
    await approval.save_config(db, int(inbox_id or 0), ApprovalConfig(required_for="all_operators"))
    await db.commit()

    supervisor = await tabs.open(boss)
    await supervisor.goto("/approvals")
    await expect(supervisor.page.locator("#approval-queue .empty")).to_have_count(1)
    operator = await tabs.open(sato)
    await operator.goto(f"/tickets/{result.ticket_id}")
    await expect(operator.page.locator("#approval-notes .approval-pending")).to_have_count(0)

    await operator.page.fill("#reply-body", "ご返金いたします")
    await operator.page.click("#composer button[type=submit]")
    await expect(operator.page.locator("#thread .msg-out .badge.approval-pending")).to_have_count(1)
    await expect(operator.page.locator("#approval-notes .approval-pending")).to_have_count(2)
    # Live on the supervisor's page; nothing was handed to the outbox.
    held = supervisor.page.locator("#approval-queue .approval")
    await expect(held).to_have_count(1)
    await expect(held).to_contain_text("ご返金いたします")
    assert await outbox(peek) == 0

    await held.locator("input[name=comment]").fill("返金の前に在庫を確認してください")
    await held.locator("button.return").click()
    await expect(supervisor.page.locator("#approval-queue .empty")).to_have_count(1)
    returned = operator.page.locator("#approval-notes .returned")
    await expect(returned).to_contain_text("返金の前に在庫を確認してください")
    await expect(operator.page.locator("#thread .badge.approval-rejected")).to_have_count(1)
    assert await outbox(peek) == 0
    await returned.locator("button.edit-returned").click()
    await expect(operator.page.locator("#reply-body")).to_have_value("ご返金いたします")

    await operator.page.fill("#reply-body", "在庫を確認のうえご返金いたします")
    await operator.page.click("#composer button[type=submit]")
    await expect(operator.page.locator("#approval-notes .returned")).to_have_count(0)
    await expect(held).to_have_count(1)
    await expect(held).to_contain_text("在庫を確認のうえ")
    assert await outbox(peek) == 0
    await held.locator("button.approve").click()
    await expect(supervisor.page.locator("#approval-queue .empty")).to_have_count(1)
    await expect(operator.page.locator("#thread .badge.approval-approved")).to_have_count(1)
    await expect(operator.page.locator("#approval-notes .approval-pending")).to_have_count(0)
    assert await outbox(peek) == 1
    sent = await peek.scalars(select(Message).where(Message.approval_status == "approved"))
    assert [m.body_text for m in sent] == ["在庫を確認のうえご返金いたします"]
    operator.assert_clean()
    supervisor.assert_clean()

