"""Replies that cannot go out say so on the ticket page: a reply Twilio refuses is shown failed
with Twilio's reason, live, and "send again" delivers it; a channel with no sending set up is
refused in the composer; a phone ticket offers a call back and SMS."""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from playwright.async_api import Browser, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from helpdesk.auth.models import Role
from helpdesk.inboxes import service as inbox_service
from helpdesk.outbox.models import OutboxItem
from helpdesk.storage.sessions import begin_write
from helpdesk.tickets.models import Channel, Message
from tests.support.browser import Tabs
from tests.support.database import Peek
from tests.support.inbound import inbound
from tests.support.server import LiveServer, make_settings
from tests.support.staff import Staff
from tests.support.telephony import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PUBLIC_URL,
    SALES_NUMBER,
    FakeTwilio,
    fake_twilio,
    twilio_post,
)

__all__ = ["fake_twilio"]
CUSTOMER = "+819011112222"


@pytest.fixture
async def twilio_server(database_url: str, fake_twilio: FakeTwilio,
                        engine: AsyncEngine) -> AsyncIterator[LiveServer]:
    """A server sending SMS through the fake Twilio with its own outbox worker, as in production."""
    settings = make_settings(database_url, htmx_cdn_url="", public_url=PUBLIC_URL,
                             twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN,
                             twilio_api_base=fake_twilio.url, run_workers=True,
                             outbox_backoff_seconds=0.2)
    live = LiveServer(settings)
    await asyncio.to_thread(live.__enter__)
    fake_twilio.requests.clear()
    try:
        yield live
    finally:
        fake_twilio.fail_with = None
        await asyncio.to_thread(live.__exit__, None, None, None)


async def test_a_refused_sms_reply_shows_failed_with_the_reason_and_send_again_delivers_it(
        browser: Browser, twilio_server: LiveServer, fake_twilio: FakeTwilio, staff: Staff,
        db: AsyncSession, peek: Peek) -> None:
    await begin_write(db)
    await inbox_service.create_inbox(db, name="sales", phone_number=SALES_NUMBER)
    await db.commit()
    sato = await staff.create("sato", Role.operator, inboxes=["sales"])
    async with httpx.AsyncClient(base_url=twilio_server.url) as client:
        texted = await twilio_post(client, "/telephony/twilio/sms", {
            "MessageSid": "SM-page-1", "From": CUSTOMER, "To": SALES_NUMBER, "Body": "届きません"})
        assert texted.status_code == 200
    ticket_id = await peek.scalar(select(Message.ticket_id).where(Message.external_id == "SM-page-1"))
    fake_twilio.fail_with = 400  # Twilio refuses the number for good

    tab = await Tabs(browser, twilio_server).open(sato)
    await tab.goto(f"/tickets/{ticket_id}")
    await expect(tab.page.locator("#send-refusal")).to_have_count(0)
    await tab.page.fill("#reply-body", "再送の手配をいたしました。")
    await tab.page.click("#composer button[type=submit]")
    failed = tab.page.locator("#thread .msg-out .delivery-problem")
    await expect(failed).to_contain_text("この返信は送信できませんでした")  # live, no reload
    await expect(failed.locator(".delivery-error")).to_contain_text("Twilio answered 400 (code 21211)")
    await expect(failed.locator(".delivery-error")).to_contain_text("Invalid 'To' Phone Number")
    await expect(tab.page.locator("#thread .msg-out .delivery")).to_have_text("送信失敗")
    assert len(fake_twilio.requests) == 1

    fake_twilio.fail_with = None
    await failed.locator("button.retry").click()
    await expect(tab.page.locator("#thread .msg-out .delivery")).to_have_text("送信済み")
    await expect(failed).to_have_count(0)
    assert [r["form"]["Body"] for r in fake_twilio.requests] == ["再送の手配をいたしました。"] * 2
    sent = await peek.scalar(select(Message).where(Message.direction == "out"))
    assert (sent.delivery_status, sent.delivery_error) == ("sent", None)
    assert (await peek.scalar(select(OutboxItem.state))) == "sent"
    tab.assert_clean()


async def test_an_unconfigured_channel_is_refused_in_the_composer_and_a_phone_ticket_offers_sms(
        tabs: Tabs, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    """The browser's server has no SMTP and no Twilio."""
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    mail = await inbound(db, "mail-1", channel=Channel.email, body="返品したいです")
    tab = await tabs.open(sato)
    await tab.goto(f"/tickets/{mail.ticket_id}")
    refusal = tab.page.locator("#send-refusal")
    await expect(refusal).to_contain_text("この窓口は送信設定がありません")
    await expect(refusal).to_contain_text("HELPDESK_SMTP_URL")
    await expect(tab.page.locator("#composer input[name=internal]")).to_be_checked()
    # Sent as a reply anyway: refused with the reason, nothing stored or queued.
    await tab.page.uncheck("#composer input[name=internal]")
    await tab.page.fill("#reply-body", "承知しました")
    await tab.page.click("#composer button[type=submit]")
    await expect(tab.page.locator("#toasts .toast")).to_contain_text("HELPDESK_SMTP_URL")
    assert await peek.scalars(select(OutboxItem.id)) == []
    assert len(await peek.scalars(select(Message.id))) == 1

    call = await inbound(db, "call-1", channel=Channel.phone, body="不在着信", email=None,
                         phone="03-1234-5678")
    await tab.goto(f"/tickets/{call.ticket_id}")
    await expect(tab.page.locator("#composer button[type=submit]")).to_have_text("SMSを送信")
    await expect(tab.page.locator("#send-refusal")).to_contain_text("HELPDESK_TWILIO_ACCOUNT_SID")
    await expect(tab.page.locator("#call-back")).to_contain_text("折り返し電話には")
    tab.assert_clean()


async def test_a_phone_ticket_calls_the_customer_back_from_the_page(
        browser: Browser, twilio_server: LiveServer, fake_twilio: FakeTwilio, staff: Staff,
        db: AsyncSession, peek: Peek) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    admin = await staff.create("admin", Role.admin)
    async with httpx.AsyncClient(base_url=twilio_server.url) as client:
        configured = await client.put("/api/admin/cti", headers=Staff.headers(admin),
                                      json={"default_caller_id": SALES_NUMBER})
        assert configured.status_code == 200, configured.text
    call = await inbound(db, "call-2", channel=Channel.phone, body="不在着信", email=None,
                         phone="03-1234-5678")
    tab = await Tabs(browser, twilio_server).open(sato)
    await tab.goto(f"/tickets/{call.ticket_id}")
    await tab.page.click("#call-back button")
    await expect(tab.page.locator("#call-back")).to_contain_text("+81312345678 に発信中")
    (placed,) = fake_twilio.requests
    assert placed["path"].endswith("/Calls.json")
    assert placed["form"]["To"] == f"client:op-{sato.id}"
    assert "<Number>+81312345678</Number>" in placed["form"]["Twiml"]
    tab.assert_clean()
