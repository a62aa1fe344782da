"""The SLA and routing admin pages, time left in the inbox, and the board's deadlines at risk."""

from datetime import timedelta

from playwright.async_api import expect
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.approval import service as approval
from helpdesk.assignment import service as assignment
from helpdesk.auth.models import Role
from helpdesk.db import utcnow
from helpdesk.inboxes.models import Inbox
from helpdesk.sla import service as sla
from helpdesk.storage.sessions import begin_write
from helpdesk.tickets.models import Ticket
from tests.support.browser import Tabs
from tests.support.database import Peek
from tests.support.inbound import inbound
from tests.support.staff import Staff


async def test_admin_sets_hours_closed_days_and_targets(tabs: Tabs, staff: Staff, peek: Peek) -> None:
    admin = await staff.create("admin", Role.admin)
    tab = await tabs.open(admin)
    await tab.goto("/admin/sla")
    await tab.page.fill("input[name=hours_sat]", "10:00-15:00")
    await tab.page.fill("textarea[name=closed_days]", "2027-12-29..2028-01-03\n2027-08-13")
    await tab.page.fill("input[name=first_urgent]", "30")
    await tab.page.click("#sla-form button.primary")
    await expect(tab.page.locator("#sla-form .alert.ok")).to_have_count(1)
    async with peek.sessions() as session:
        config = await sla.load_config(session)
    assert config.hours["sat"] == [["10:00", "15:00"]]
    assert len(config.closed_days) == 7 and config.closed_days[-1].isoformat() == "2028-01-03"
    assert next(t for t in config.targets if t.priority == "urgent").first_response_minutes == 30
    # A period that closes before it opens is refused with the reason; nothing changes.
    await tab.page.fill("input[name=hours_mon]", "18:00-09:00")
    await tab.page.click("#sla-form button.primary")
    await tab.page.wait_for_selector("#toasts .toast-error")
    async with peek.sessions() as session:
        assert (await sla.load_config(session)).hours["mon"] == [["09:00", "18:00"]]
    tab.assert_clean()


async def test_supervisor_sets_policy_capacity_and_approvers(tabs: Tabs, staff: Staff, db: AsyncSession,
                                                             peek: Peek) -> None:
    boss = await staff.create("boss", Role.supervisor)
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    await staff.create("kato", Role.operator, inboxes=["default"])
    inbox_id = await peek.scalar(select(Inbox.id).where(Inbox.name == "default"))
    tab = await tabs.open(boss)
    await tab.goto(f"/admin/inboxes/{inbox_id}/routing")
    await tab.page.select_option("select[name=policy]", "least_loaded")
    await tab.page.fill(f"input[name=capacity_{sato.id}]", "3")
    await tab.page.fill("input[name=weight_email]", "0.2")
    await tab.page.check("input[name=approval][value=selected]")
    await tab.page.check(f"input[name=needs_approval][value='{sato.id}']")
    await tab.page.click("#routing-form button.primary")
    await expect(tab.page.locator("#routing-form .alert.ok")).to_have_count(1)
    async with peek.sessions() as session:
        config = await assignment.load_config(session, inbox_id)
        rule = await approval.load_config(session, inbox_id)
    assert config.policy == "least_loaded" and config.capacity == {str(sato.id): 3.0}
    assert config.weights == {"email": 0.2, "chat": 0.5, "phone": 1.0}  # the defaults shown, kept
    assert rule.required_for == [sato.id]
    tab.assert_clean()


async def test_inbox_shows_time_left_in_colours_and_sorts_by_deadline(
        tabs: Tabs, staff: Staff, db: AsyncSession) -> None:
    sato = await staff.create("sato", Role.supervisor)
    late = await inbound(db, "late", email="late@example.jp")
    close = await inbound(db, "close", email="close@example.jp")
    calm = await inbound(db, "calm", email="calm@example.jp")
    await begin_write(db)
    now = utcnow()
    for ticket_id, due in ((late.ticket_id, now - timedelta(minutes=30)),
                           (close.ticket_id, now + timedelta(minutes=20)),
                           (calm.ticket_id, now + timedelta(hours=5))):
        await db.execute(update(Ticket).where(Ticket.id == ticket_id).values(sla_due_at=due))
    await db.commit()
    tab = await tabs.open(sato)
    await tab.goto("/inbox?sort=due")
    rows = tab.page.locator(".ticket-row")
    await expect(rows).to_have_count(3)
    assert [await r.get_attribute("data-ticket-id") for r in await rows.all()] == [
        str(late.ticket_id), str(close.ticket_id), str(calm.ticket_id)]
    await expect(rows.nth(0).locator(".sla-cell.sla-breached")).to_contain_text("超過")
    await expect(rows.nth(1).locator(".sla-cell.sla-near")).to_contain_text("残り")
    await expect(rows.nth(2).locator(".sla-cell.sla-ok")).to_have_count(1)
    await tab.goto("/board")
    await expect(tab.page.locator("#risk-breached")).to_have_text("1")
    await expect(tab.page.locator("#risk-near")).to_have_text("1")
    tab.assert_clean()
