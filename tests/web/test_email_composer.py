"""An operator sets a signature, answers an email with a file, Cc (reply all) and Bcc in Chromium,
sees it in the thread, and the local SMTP server receives it so."""

import asyncio
import email
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from email.policy import default

import pytest
from playwright.async_api import Browser, expect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from helpdesk.channels.email import service as mail
from helpdesk.storage.sessions import begin_write
from tests.support.browser import Tabs
from tests.support.fakes import FakeSMTP
from tests.support.server import LiveServer, make_settings
from tests.support.staff import Staff

FILE_NAME = "見積書_12月.pdf"
FILE_DATA = b"%PDF-1.4 estimate"
INBOUND = ("From: 山田 <yamada@example.jp>\r\nTo: support@shop.example\r\n"
           "Cc: keiri@example.jp\r\nSubject: =?UTF-8?B?6KaL56mN44KK?=\r\n"
           "Message-ID: <web-cc-1@example.jp>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
           "見積もりをください。\r\n").encode()


@pytest.fixture(scope="module")
def smtp_relay() -> Iterator[FakeSMTP]:
    with FakeSMTP() as fake:
        yield fake


@pytest.fixture
async def mail_server(database_url: str, smtp_relay: FakeSMTP,
                      engine: AsyncEngine) -> AsyncIterator[LiveServer]:
    """A server sending email through the local relay with its own outbox worker."""
    settings = make_settings(database_url, htmx_cdn_url="", run_workers=True,
                             smtp_url=f"smtp://127.0.0.1:{smtp_relay.port}",
                             mail_from="support@shop.example", outbox_backoff_seconds=0.2)
    live = LiveServer(settings)
    await asyncio.to_thread(live.__enter__)
    smtp_relay.messages.clear()
    try:
        yield live
    finally:
        await asyncio.to_thread(live.__exit__, None, None, None)


@pytest.mark.parametrize(("language", "sent_text", "delivered"),
                         [("ja", "送信します", "送信済み"), ("en", "on its way", "Sent")])
async def test_an_operator_replies_with_a_file_cc_bcc_and_signature(
        browser: Browser, mail_server: LiveServer, smtp_relay: FakeSMTP, staff: Staff,
        db: AsyncSession, language: str, sent_text: str, delivered: str) -> None:
    await begin_write(db)
    result = await mail.ingest_raw(db, INBOUND, settings=mail_server.settings)
    await db.commit()
    sato = await staff.create("sato", inboxes=["default"])
    await begin_write(staff.session)
    sato.language = language
    await staff.session.commit()
    tab = await Tabs(browser, mail_server).open(sato, language=language)
    page = tab.page

    await tab.goto("/me")
    await page.click("#signatures-link")
    await page.fill("#personal-signature textarea", "担当: {operator_name}")
    await page.click("#personal-signature button[type=submit]")
    await expect(page.locator("#signature-saved")).to_be_visible()

    await tab.goto(f"/tickets/{result.ticket_id}")
    await expect(page.locator("#signature-preview")).to_contain_text("担当: sato")
    await page.click("#reply-all")
    await expect(page.locator("#reply-cc")).to_have_value("keiri@example.jp")
    await page.fill("#reply-bcc", "archive@shop.example")
    await page.set_input_files("#reply-files", files=[
        {"name": FILE_NAME, "mimeType": "application/pdf", "buffer": FILE_DATA}])
    await page.fill("#reply-body", "お見積書を添付します。")
    await page.click("#composer button[type=submit]")
    await expect(page.locator("#sent-note")).to_contain_text(sent_text)

    last = page.locator("#thread .msg-out").last
    await expect(last.locator(".email-recipients .cc")).to_have_text("Cc: keiri@example.jp")
    await expect(last.locator(".email-recipients .bcc")).to_have_text("Bcc: archive@shop.example")
    await expect(last.locator(".body")).to_contain_text("担当: sato")
    await expect(last.locator(".attachments a[download]")).to_have_text(FILE_NAME)
    await expect(last.locator(".delivery")).to_have_text(delivered)  # live, from the worker

    _, recipients, raw = smtp_relay.messages[-1]
    assert recipients == ["yamada@example.jp", "keiri@example.jp", "archive@shop.example"]
    out = email.message_from_bytes(raw, policy=default)
    assert isinstance(out, EmailMessage)
    assert out["Cc"] == "keiri@example.jp" and out["Bcc"] is None
    assert [(p.get_filename(), p.get_content()) for p in out.iter_attachments()] == [
        (FILE_NAME, FILE_DATA)]
    assert mail.parse(raw).text == "お見積書を添付します。\n\n-- \n担当: sato"
    tab.assert_clean()
    assert await tab.csp_violations() == []
