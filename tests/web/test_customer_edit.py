"""Editing a customer's name, reading and notes from their page."""

from playwright.async_api import expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.audit.models import AuditLog
from helpdesk.auth.models import Role
from helpdesk.customers.models import Customer
from helpdesk.outbox.models import OutboxItem
from helpdesk.tickets.models import Channel, Message, Status, Ticket
from tests.support.browser import Tabs
from tests.support.database import Peek
from tests.support.inbound import inbound
from tests.support.staff import Staff


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


async def test_a_new_outbound_message_opens_a_ticket_and_is_queued_on_the_chosen_channel(
        tabs: Tabs, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    result = await inbound(db, "o1", name="山田 花子", email="hanako@example.jp",
                           phone="090-1072-7576")
    customer_id = (await peek.get(Ticket, result.ticket_id)).customer_id
    tab = await tabs.open(sato)
    await tab.goto(f"/customers/{customer_id}")
    await tab.page.click(".new-message summary")
    form = tab.page.locator(".new-message form")
    assert await form.locator("select[name=channel] option").all_inner_texts() == ["メール", "SMS"]
    await form.locator("input[name=subject]").fill("ご注文の商品について")
    await form.locator("textarea[name=body]").fill("在庫が入りましたのでご連絡します。")
    await form.locator("button[type=submit]").click()
    await tab.page.wait_for_url("**/tickets/*")
    await expect(tab.page.locator("#thread .msg-out")).to_contain_text("在庫が入りましたのでご連絡します。")
    await expect(tab.page.locator("#ticket-title")).to_contain_text("ご注文の商品について")
    new_id = int(tab.page.url.rsplit("/", 1)[1])
    ticket = await peek.get(Ticket, new_id)
    assert (ticket.customer_id, ticket.channel, ticket.assignee_id) == (customer_id, "email", sato.id)
    assert await peek.scalars(select(OutboxItem.kind)) == ["reply.email"]
    tab.assert_clean()


async def test_a_supervisor_merges_a_duplicate_from_the_customer_page(
        tabs: Tabs, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    boss = await staff.create("boss", Role.supervisor)
    keep = await inbound(db, "d1", name="佐藤 一郎", email="ichiro@example.jp")
    dup = await inbound(db, "d2", name="佐藤 一郎", email="sato.ichiro@example.net",
                        phone="090-2222-3333")
    keep_id = (await peek.get(Ticket, keep.ticket_id)).customer_id
    dup_id = (await peek.get(Ticket, dup.ticket_id)).customer_id
    assert keep_id != dup_id
    tab = await tabs.open(boss)
    await tab.goto(f"/customers/{keep_id}")
    await tab.page.click(".merge-customer summary")
    await tab.page.fill(".merge-customer input[name=merge_q]", "sato.ichiro@example.net")
    await tab.page.click(".merge-customer form[role=search] button")
    candidate = tab.page.locator(f".merge-candidates li[data-customer-id='{dup_id}']")
    await expect(candidate).to_have_count(1)
    await candidate.locator("button").click()
    await tab.page.wait_for_url(f"**/customers/{keep_id}")
    await expect(tab.page.locator("main")).to_contain_text("sato.ichiro@example.net")
    await expect(tab.page.locator("main")).to_contain_text("090-2222-3333")
    assert await peek.get(Customer, dup_id) is None
    assert (await peek.get(Ticket, dup.ticket_id)).customer_id == keep_id
    tab.assert_clean()


async def test_blocking_a_sender_files_their_tickets_and_next_messages_as_no_action(
        tabs: Tabs, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    first = await inbound(db, "s1", body="格安で販売中！", name="宣伝 業者", email="ads@spam.example")
    customer_id = (await peek.get(Ticket, first.ticket_id)).customer_id
    tab = await tabs.open(sato)
    await tab.goto(f"/customers/{customer_id}")
    await tab.page.click(".block-form button")
    await expect(tab.page.locator("#blocked-note")).to_be_visible()
    ticket = await peek.get(Ticket, first.ticket_id)
    assert ticket.status == Status.no_action
    later = await inbound(db, "s2", body="再送：格安で販売中！", name="宣伝 業者", email="ads@spam.example",
                          subject="別件", channel=Channel.email)
    assert later.ticket_id != first.ticket_id  # a new ticket, filed at once
    assert (await peek.get(Ticket, later.ticket_id)).status == Status.no_action
    messages = await peek.scalars(select(Message.body_text).where(Message.ticket_id == later.ticket_id))
    assert messages == ["再送：格安で販売中！"]  # kept as received
    await tab.goto("/inbox")
    await expect(tab.page.locator("#counts [data-count='unhandled']")).to_have_text("0")
    await tab.goto(f"/customers/{customer_id}")
    await tab.page.click(".block-form button")  # unblock
    await expect(tab.page.locator("#blocked-note")).to_have_count(0)
    assert (await peek.get(Customer, customer_id)).blocked_at is None
    tab.assert_clean()
