"""The ticket page: thread, reply, note, controls, templates, the 409 conflict, live changes."""

import re
import struct
import zlib
from decimal import Decimal

from playwright.async_api import expect
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.models import Role
from helpdesk.customers.models import Customer, Order, OrderItem
from helpdesk.db import utcnow
from helpdesk.outbox.models import OutboxItem
from helpdesk.replies.models import ReplyTemplate
from helpdesk.storage.sessions import begin_write
from helpdesk.tickets import ingest as ticket_ingest
from helpdesk.tickets import service as tickets
from helpdesk.tickets.models import (
    Channel,
    InboundAttachment,
    Message,
    Status,
    Ticket,
    TicketTag,
    TicketUpdate,
)
from tests.support.browser import Tabs
from tests.support.database import Peek
from tests.support.inbound import inbound
from tests.support.staff import Staff


async def messages_of(peek: Peek, ticket_id: int) -> list[Message]:
    return await peek.scalars(select(Message).where(Message.ticket_id == ticket_id).order_by(Message.id))


async def test_reply_and_internal_note_are_saved_and_shown(
        tabs: Tabs, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    result = await inbound(db, "t1", body="配送状況を教えてください")
    tab = await tabs.open(sato)
    await tab.goto(f"/tickets/{result.ticket_id}")
    assert "配送状況を教えてください" in await tab.page.inner_text("#thread")
    await tab.page.fill("#reply-body", "本日発送いたしました。")
    await tab.page.click("#composer button[type=submit]")
    await tab.page.wait_for_selector("#thread .msg-out")
    assert await tab.page.input_value("#reply-body") == ""
    await tab.page.fill("#reply-body", "在庫を確認済み")
    await tab.page.check("#composer input[name=internal]")
    await tab.page.click("#composer button[type=submit]")
    await tab.page.wait_for_selector("#thread .msg-note")
    stored = await messages_of(peek, result.ticket_id)
    assert [(m.body_text, m.internal) for m in stored[1:]] == [("本日発送いたしました。", False),
                                                               ("在庫を確認済み", True)]
    outbox = await peek.scalars(select(OutboxItem.message_id))
    assert outbox == [stored[1].id]  # the note is not sent to the customer
    ticket = await peek.get(Ticket, result.ticket_id)
    assert ticket.status == Status.in_progress and ticket.assignee_id == sato.id
    assert "対応中" in await tab.page.inner_text("#current-status")
    tab.assert_clean()


async def test_controls_change_status_priority_tags_and_take(
        tabs: Tabs, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    result = await inbound(db, "t2")
    tab = await tabs.open(sato)
    await tab.goto(f"/tickets/{result.ticket_id}")
    await tab.page.get_by_role("button", name="担当する").click()
    await tab.page.wait_for_selector(f"#controls select[name=assignee_id] option:checked[value='{sato.id}']",
                                     state="attached")
    await tab.page.select_option("#status-select", "pending")
    await tab.page.fill("#controls input[name=pending_reason]", "お客様の返信待ち")
    await tab.page.select_option("#controls select[name=priority]", "high")
    await tab.page.fill("#controls input[name=tags]", "配送, 返品")
    await tab.page.click("#controls button.primary")
    await expect(tab.page.locator("#current-status")).to_contain_text("保留")
    ticket = await peek.get(Ticket, result.ticket_id)
    assert (ticket.status, ticket.pending_reason, ticket.priority) == ("pending", "お客様の返信待ち", "high")
    assert await peek.scalar(select(func.count()).select_from(TicketTag)) == 2
    # The composer followed the user's own changes: a reply now goes through without a conflict.
    await tab.page.fill("#reply-body", "確認中です")
    await tab.page.click("#composer button[type=submit]")
    await tab.page.wait_for_selector("#thread .msg-out")
    assert await tab.page.locator("#conflict-alert").count() == 0
    # 保留 without a reason is refused with a toast, nothing changes.
    await tab.page.fill("#controls input[name=pending_reason]", "")
    await tab.page.select_option("#status-select", "pending")
    await tab.page.select_option("#controls select[name=priority]", "low")
    await tab.page.click("#controls button.primary")
    await tab.page.wait_for_selector("#toasts .toast-error")
    assert "保留にするには理由が必要です" in await tab.page.inner_text("#toasts")
    tab.assert_clean()


async def test_reply_template_fills_customer_name_and_last_order(
        tabs: Tabs, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    result = await inbound(db, "t3", name="佐藤 花子")
    await begin_write(db)
    ticket = await db.get(Ticket, result.ticket_id)
    order = Order(customer_id=ticket.customer_id, number="EC-9001", ordered_at=utcnow(), total=Decimal(3500))
    db.add(order)
    await db.flush()
    db.add(OrderItem(order_id=order.id, sku="CUP-203", name="有田焼 湯呑み", unit_price=Decimal(3500)))
    db.add(ReplyTemplate(name="お詫び",
                         body="{customer_name}様\nご注文 {last_order_number} の件、{unknown} 承知しました。"))
    await db.commit()
    tab = await tabs.open(sato)
    await tab.goto(f"/tickets/{result.ticket_id}")
    await tab.page.fill("#reply-body", "いつもありがとうございます。")
    await tab.page.select_option("#composer select[name=template_id]", label="お詫び")
    await expect(tab.page.locator("#reply-body")).to_have_value(re.compile("EC-9001"))
    text = await tab.page.input_value("#reply-body")
    assert text == ("いつもありがとうございます。\n\n"
                    "佐藤 花子様\nご注文 EC-9001 の件、{unknown} 承知しました。")
    tab.assert_clean()


async def test_conflict_b_sees_a_live_and_b_stale_reply_is_not_sent(
        tabs: Tabs, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    a = await staff.create("a", Role.operator, inboxes=["default"])
    b = await staff.create("b", Role.operator, inboxes=["default"])
    result = await inbound(db, "t4", body="至急お願いします")
    tab_a, tab_b = await tabs.open(a), await tabs.open(b)
    await tab_a.goto(f"/tickets/{result.ticket_id}")
    await tab_b.goto(f"/tickets/{result.ticket_id}")
    await tab_b.page.evaluate("window.__notReloaded = true")
    seq = await peek.last_seq()

    # A is viewing and typing (the ephemeral frames /ws relays): B sees who.
    await tab_b.deliver([{"type": "ticket.viewing", "data": {"ticket_id": result.ticket_id,
                                                             "user_id": a.id, "name": "a"}}])
    await tab_b.page.wait_for_selector(f"#presence .presence-chip[data-user-id='{a.id}']")
    assert "aさんが閲覧中" in await tab_b.page.inner_text("#presence")

    # A resolves the ticket; B's page follows without reload.
    await tab_a.page.select_option("#status-select", "resolved")
    await tab_a.page.click("#controls button.primary")
    await expect(tab_a.page.locator("#current-status")).to_contain_text("対応済")
    await tab_b.deliver(await peek.frames_after(seq))
    await expect(tab_b.page.locator("#current-status")).to_contain_text("対応済")
    # A also replies; the thread on B's page shows it, highlighted.
    seq = await peek.last_seq()
    await tab_a.page.fill("#reply-body", "Aからの返信です")
    await tab_a.page.click("#composer button[type=submit]")
    await tab_a.page.wait_for_selector("#thread .msg-out")
    await tab_b.deliver(await peek.frames_after(seq))
    await tab_b.page.wait_for_selector("#thread .msg.is-new")

    # B's reply was written against the version B loaded: refused, kept, not sent.
    await tab_b.page.fill("#reply-body", "Bからの返信です")
    await tab_b.page.click("#composer button[type=submit]")
    await tab_b.page.wait_for_selector("#conflict-alert")
    assert "ほかの人が返信しました" in await tab_b.page.inner_text("#conflict-alert")
    assert await tab_b.page.input_value("#reply-body") == "Bからの返信です"
    assert "Aからの返信です" in await tab_b.page.inner_text("#thread .msg.is-new")
    sent = [m.body_text for m in await messages_of(peek, result.ticket_id)]
    assert sent == ["至急お願いします", "Aからの返信です"]
    assert await tab_b.page.evaluate("window.__notReloaded") is True

    # Having read it, B sends again on purpose: now it goes out.
    await tab_b.page.click("#composer button[type=submit]")
    await expect(tab_b.page.locator("#reply-body")).to_have_value("")
    bodies = [m.body_text for m in await messages_of(peek, result.ticket_id)]
    assert bodies == ["至急お願いします", "Aからの返信です", "Bからの返信です"]
    tab_a.assert_clean()
    tab_b.assert_clean()


async def test_stale_controls_show_the_current_values(
        tabs: Tabs, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    boss = await staff.create("boss", Role.supervisor)
    result = await inbound(db, "t5")
    tab = await tabs.open(sato)
    await tab.goto(f"/tickets/{result.ticket_id}")
    await begin_write(db)
    ticket = await db.get(Ticket, result.ticket_id)
    locked = await tickets.lock_for_change(db, ticket.id, ticket.version)
    change = TicketUpdate(version=ticket.version, status=Status.no_action)
    await tickets.update(db, locked, change, actor=boss)
    await db.commit()
    await tab.page.select_option("#status-select", "resolved")
    await tab.page.click("#controls button.primary")
    await tab.page.wait_for_selector("#controls .alert")
    assert "対応不要" in await tab.page.inner_text("#current-status")
    assert (await peek.get(Ticket, result.ticket_id)).status == Status.no_action
    tab.assert_clean()


async def test_keyboard_r_focuses_reply_and_e_resolves(
        tabs: Tabs, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    result = await inbound(db, "t6")
    tab = await tabs.open(sato)
    await tab.goto(f"/tickets/{result.ticket_id}")
    await tab.page.keyboard.press("r")
    assert await tab.page.evaluate("document.activeElement.id") == "reply-body"
    await tab.page.keyboard.press("Escape")
    await tab.page.keyboard.press("e")
    await expect(tab.page.locator("#current-status")).to_contain_text("対応済")
    await tab.page.keyboard.press("?")
    assert await tab.page.is_visible("#shortcut-help")
    assert (await peek.get(Ticket, result.ticket_id)).status == Status.resolved
    tab.assert_clean()


async def test_other_operators_tickets_are_not_visible(
        tabs: Tabs, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    outsider = await staff.create("outsider", Role.operator)
    result = await inbound(db, "t7")
    tab = await tabs.open(outsider)
    response = await tab.page.goto(f"{tab.base}/tickets/{result.ticket_id}")
    assert response is not None and response.status == 404
    assert "チケットが見つかりません" in await tab.page.inner_text("main")
    assert await peek.scalar(select(func.count()).select_from(Customer)) == 1


async def test_two_operators_over_the_socket(
        tabs: Tabs, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    """The same story with the real socket: presence, the live status and the refused reply."""
    a = await staff.create("a", Role.operator, inboxes=["default"])
    b = await staff.create("b", Role.operator, inboxes=["default"])
    result = await inbound(db, "ws1", body="至急お願いします")
    tab_b = await tabs.open(b)
    await tab_b.goto(f"/tickets/{result.ticket_id}")
    await tab_b.page.evaluate("window.__notReloaded = true")
    tab_a = await tabs.open(a)
    await tab_a.goto(f"/tickets/{result.ticket_id}")
    await expect(tab_b.page.locator(f"#presence [data-user-id='{a.id}']")).to_contain_text("a")
    await tab_a.page.select_option("#status-select", "pending")
    await tab_a.page.fill("#controls input[name=pending_reason]", "確認中")
    await tab_a.page.click("#controls button.primary")
    await expect(tab_b.page.locator("#current-status")).to_contain_text("保留")
    await tab_b.page.fill("#reply-body", "Bの返信")
    await tab_b.page.click("#composer button[type=submit]")
    await expect(tab_b.page.locator("#conflict-alert")).to_contain_text("ほかの人が返信しました")
    assert [m.body_text for m in await messages_of(peek, result.ticket_id)] == ["至急お願いします"]
    assert await tab_b.page.evaluate("window.__notReloaded") is True


async def test_a_resync_refetches_the_thread_and_keeps_the_unsaved_reply(
        tabs: Tabs, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    a = await staff.create("a", Role.operator, inboxes=["default"])
    b = await staff.create("b", Role.operator, inboxes=["default"])
    result = await inbound(db, "t-resync")
    tab_a, tab_b = await tabs.open(a), await tabs.open(b)
    await tab_a.goto(f"/tickets/{result.ticket_id}")
    await tab_b.goto(f"/tickets/{result.ticket_id}")
    await tab_b.page.evaluate("window.__notReloaded = true")
    await tab_b.page.fill("#reply-body", "書きかけの返信")
    await tab_a.page.fill("#reply-body", "Aからの返信です")
    await tab_a.page.click("#composer button[type=submit]")
    await tab_a.page.wait_for_selector("#thread .msg-out")

    # The events of A's reply were pruned before B's socket came back: live.js says resync.
    handled = await tab_b.page.evaluate(
        "!document.dispatchEvent(new CustomEvent('helpdesk:resync', "
        "{cancelable: true, detail: {type: 'resync', data: {after: 1}}}))")
    assert handled is True  # the page refetches instead of reloading
    await tab_b.page.wait_for_selector("#thread .msg-out")
    assert "Aからの返信です" in await tab_b.page.inner_text("#thread")
    assert await tab_b.page.input_value("#reply-body") == "書きかけの返信"
    assert await tab_b.page.evaluate("window.__notReloaded") is True
    tab_a.assert_clean()
    tab_b.assert_clean()


async def test_a_photo_fetched_after_the_message_appears_in_the_open_thread(
        tabs: Tabs, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    result = await inbound(db, "t-photo", body="[画像]", channel=Channel.line, email=None)
    tab = await tabs.open(sato)
    await tab.goto(f"/tickets/{result.ticket_id}")
    await tab.page.evaluate("window.__notReloaded = true")
    seq = await peek.last_seq()
    await begin_write(db)
    await ticket_ingest.add_late_content(db, message_id=result.message_id, attachments=[
        InboundAttachment(filename="line-image-1.png", content_type="image/png", data=png(40, 30))])
    await db.commit()
    frames = [f for f in await peek.frames_after(seq) if f["type"] == "message.updated"]
    assert [f["data"]["message_id"] for f in frames] == [result.message_id]
    await tab.deliver(frames)
    link = tab.page.locator(f"#message-{result.message_id} .attachments a[download]")
    await expect(link).to_have_text("line-image-1.png")
    thumbnail = tab.page.locator(f"#message-{result.message_id} .attachments img")
    await expect(thumbnail).to_have_attribute("alt", "line-image-1.png")
    await tab.page.wait_for_function(  # decoded by Chromium: the photo itself, at its size
        "img => img.complete && img.naturalWidth === 40 && img.naturalHeight === 30",
        arg=await thumbnail.element_handle())
    assert await tab.page.evaluate("window.__notReloaded") is True
    tab.assert_clean()


def png(width: int, height: int) -> bytes:
    """A real PNG of one colour, for the browser to decode."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    rows = b"".join(b"\x00" + b"\x2a\x7f\xd4" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))
