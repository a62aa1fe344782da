"""Email replies with files, Cc, Bcc and a signature, composed on the ticket page and received by
a local SMTP server; and the composer's bad input, refused with nothing stored."""

import email
import re
from datetime import timedelta
from email.message import EmailMessage
from email.policy import default

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.audit.models import AuditLog
from helpdesk.auth.models import Role
from helpdesk.channels.email import service as mail
from helpdesk.db import utcnow
from helpdesk.delivery.tasks import OutboxWorker
from helpdesk.outbox.models import OutboxItem
from helpdesk.tickets.models import Attachment, Message
from tests.channels.email_forms import Browserless, compose, email_ticket
from tests.support.database import fetch
from tests.support.fakes import FakeSMTP
from tests.support.server import LiveServer
from tests.support.staff import Staff
from tests.support.waiting import wait_until

JAPANESE_NAME = "お見積書（2026年12月分）.pdf"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40


async def delivered(fake_smtp: FakeSMTP) -> tuple[str, list[str], bytes]:
    async def arrived() -> bool:
        return bool(fake_smtp.messages)

    await wait_until(arrived)
    return fake_smtp.messages[-1]


async def test_a_reply_carries_files_cc_bcc_and_the_signatures_to_the_smtp_server(
        chttp: httpx.AsyncClient, db: AsyncSession, fake_smtp: FakeSMTP, worker: OutboxWorker,
        staff: Staff, channel_server: LiveServer) -> None:
    ticket = await email_ticket(chttp, db)
    sato = await staff.create("sato", inboxes=["default"])
    admin = await staff.create("boss", Role.admin, inboxes=["default"])
    async with Browserless(channel_server, admin) as boss:
        await boss.page("/settings/signatures")
        inbox_id = ticket.inbox_id
        saved = await boss.post(f"/settings/signatures/inbox/{inbox_id}",
                                {"body": "{inbox_name} サポート窓口\nsupport@shop.example"})
        assert saved.status_code == 200 and "サポート窓口" in saved.text
    audited = await fetch(db, select(AuditLog).where(AuditLog.action == "email_signature.update"))
    assert [(a.actor_id, a.target_id) for a in audited] == [(admin.id, str(ticket.inbox_id))]
    async with Browserless(channel_server, sato) as op:
        await op.page("/settings/signatures")
        saved = await op.post("/settings/signatures/personal", {"body": "担当: {operator_name}"})
        assert saved.status_code == 200
        page, form = await compose(op, ticket, body="お見積書をお送りします。", cc="boss@example.jp",
                                   bcc="archive@shop.example", signature="true")
        assert "担当: sato" in page and "default サポート窓口" in page  # the composer's preview
        assert 'data-reply-all="keiri@example.jp"' in page  # our own address is not offered
        sent = await op.post(f"/tickets/{ticket.id}/reply", form, files=[
            ("files", (JAPANESE_NAME, PDF, "application/pdf")),
            ("files", ("notes.txt", "メモ".encode(), "text/plain"))])
        assert sent.status_code == 200, sent.text
        assert await worker.run_once(now=utcnow()) == 1

        _, recipients, raw = await delivered(fake_smtp)
        assert recipients == ["yamada@example.jp", "boss@example.jp", "archive@shop.example"]
        headers = raw.split(b"\r\n\r\n", 1)[0]
        assert b"archive@shop.example" not in headers and b"Bcc" not in headers
        assert b"filename*=UTF-8''" in raw or b"filename*0*=UTF-8''" in raw
        out = email.message_from_bytes(raw, policy=default)
        assert out["Cc"] == "boss@example.jp"
        assert isinstance(out, EmailMessage)
        files = {part.get_filename(): part.get_content() for part in out.iter_attachments()}
        assert files == {JAPANESE_NAME: PDF, "notes.txt": "メモ"}
        parsed = mail.parse(raw)
        assert parsed.text == ("お見積書をお送りします。\n\n-- \n担当: sato\n"
                               "default サポート窓口\nsupport@shop.example")
        html_part = out.get_body(preferencelist=("html",))
        assert html_part is not None and 'class="signature"' in html_part.get_content()
        assert "担当: sato" in html_part.get_content()

        thread = await op.page(f"/tickets/{ticket.id}")
        assert "Cc: boss@example.jp" in thread and "Bcc: archive@shop.example" in thread
        link = re.search(r'href="(/tickets/\d+/attachments/\d+)" download translate="no">'
                         + re.escape(JAPANESE_NAME), thread)
        assert link
        download = await op.client.get(link.group(1))
        assert download.status_code == 200 and download.content == PDF

    stranger = await staff.create("tanaka", inboxes=[])
    async with Browserless(channel_server, stranger) as other:
        assert (await other.client.get(link.group(1))).status_code in (403, 404)


async def test_files_and_cc_survive_a_failed_send_and_go_with_the_retry(
        chttp: httpx.AsyncClient, db: AsyncSession, fake_smtp: FakeSMTP, worker: OutboxWorker,
        staff: Staff, channel_server: LiveServer) -> None:
    ticket = await email_ticket(chttp, db)
    sato = await staff.create("sato", inboxes=["default"])
    fake_smtp.fail_next = 1
    async with Browserless(channel_server, sato) as op:
        _, form = await compose(op, ticket, body="再送テスト", cc="keiri@example.jp")
        sent = await op.post(f"/tickets/{ticket.id}/reply", form,
                             files=[("files", (JAPANESE_NAME, PDF, "application/pdf"))])
        assert sent.status_code == 200, sent.text
    assert await worker.run_once(now=utcnow()) == 1
    assert fake_smtp.messages == []
    assert await worker.run_once(now=utcnow() + timedelta(minutes=5)) == 1
    _, recipients, raw = await delivered(fake_smtp)
    assert recipients == ["yamada@example.jp", "keiri@example.jp"]
    out = email.message_from_bytes(raw, policy=default)
    assert isinstance(out, EmailMessage)
    assert [(p.get_filename(), p.get_content()) for p in out.iter_attachments()] == [(JAPANESE_NAME, PDF)]


@pytest.mark.parametrize(("fields", "files", "status", "says"), [
    ({"cc": "boss@example.jp\r\nBcc: victim@example.com"}, [], 422, "not an email address"),
    ({"bcc": "Eve <eve@example.com>, x@y"}, [], 422, "not an email address"),
    ({"cc": "a@example.jp", "internal": "true"}, [], 422, "only with an email reply"),
    ({}, [("files", ("請求書.exe", b"MZ", "application/octet-stream"))], 415, "ending in .exe"),
    ({}, [("files", ("setup.bat. ", b"@echo", "text/plain"))], 415, "ending in .bat"),
    ({}, [("files", (f"{i}.txt", b"x", "text/plain")) for i in range(6)], 400, "at most 5 files"),
    ({}, [("files", ("big.bin", b"\0" * (8 * 1024 * 1024 + 1), "application/octet-stream"))], 413,
     "more than 8 MB"),
])
async def test_bad_email_fields_are_refused_with_the_reason_and_nothing_is_stored(
        chttp: httpx.AsyncClient, db: AsyncSession, staff: Staff, channel_server: LiveServer,
        fields: dict[str, str], files: list[tuple[str, tuple[str, bytes, str]]], status: int,
        says: str) -> None:
    ticket = await email_ticket(chttp, db)
    sato = await staff.create("sato", inboxes=["default"])
    async with Browserless(channel_server, sato) as op:
        _, form = await compose(op, ticket, body="これは送られない", **fields)
        refused = await op.post(f"/tickets/{ticket.id}/reply", form, files=files or None)
        assert refused.status_code == status, refused.text
        assert says in refused.text  # shown in the page's toast
    assert await fetch(db, select(func.count()).select_from(Message)) == [1]
    assert await fetch(db, select(func.count()).select_from(Attachment)) == [0]
    assert await fetch(db, select(func.count()).select_from(OutboxItem)) == [0]


async def test_signature_pages_refuse_what_they_cannot_keep(
        chttp: httpx.AsyncClient, db: AsyncSession, staff: Staff, channel_server: LiveServer) -> None:
    ticket = await email_ticket(chttp, db)
    sato = await staff.create("sato", inboxes=["default"])
    async with Browserless(channel_server, sato) as op:
        await op.page("/settings/signatures")
        too_long = await op.post("/settings/signatures/personal", {"body": "x" * 2001})
        assert too_long.status_code == 422
        not_admin = await op.post(f"/settings/signatures/inbox/{ticket.inbox_id}", {"body": "共有"})
        assert not_admin.status_code == 403
        page = await op.page("/settings/signatures")
        assert "共有" not in page and "x" * 2001 not in page
        assert 'id="signature-none"' in await op.page(f"/tickets/{ticket.id}")


async def test_a_reply_that_met_a_newer_message_keeps_its_addresses_and_asks_for_the_files(
        chttp: httpx.AsyncClient, db: AsyncSession, staff: Staff, channel_server: LiveServer) -> None:
    ticket = await email_ticket(chttp, db)
    sato = await staff.create("sato", inboxes=["default"])
    async with Browserless(channel_server, sato) as op:
        _, form = await compose(op, ticket, body="古い画面からの返信", cc="keiri@example.jp",
                                bcc="archive@shop.example")
        form["composer_version"] = str(int(form["composer_version"]) - 1)
        stale = await op.post(f"/tickets/{ticket.id}/reply", form,
                              files=[("files", ("a.pdf", PDF, "application/pdf"))])
        assert stale.status_code == 409
        assert 'value="keiri@example.jp"' in stale.text and 'value="archive@shop.example"' in stale.text
        assert 'id="files-again"' in stale.text
    assert await fetch(db, select(func.count()).select_from(Attachment)) == [0]
