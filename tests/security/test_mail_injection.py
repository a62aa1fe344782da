"""Finding 1: a line break in an inbound subject or name must never become a header of a reply."""

import email
from email.policy import compat32

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.channels.email import compose as mail_compose
from helpdesk.channels.email import headers as mail_headers
from helpdesk.channels.email import outgoing
from helpdesk.channels.email import service as mail
from helpdesk.db import utcnow
from helpdesk.delivery.tasks import OutboxWorker
from helpdesk.outbox.models import OutboxItem
from helpdesk.outbox.service import OutboundFile
from helpdesk.tickets.models import Ticket
from tests.channels.email_forms import Browserless, compose, email_ticket
from tests.support.channels import reply
from tests.support.database import fetch
from tests.support.fakes import FakeSMTP
from tests.support.inbound import INBOUND_HEADERS
from tests.support.server import LiveServer
from tests.support.staff import Staff
from tests.support.waiting import wait_until

HOSTILE_SUBJECT = "=?utf-8?q?Hi=0D=0AContent-Type:_text/html=0D=0A=0D=0A<h1>x?="
HOSTILE_NAME = "=?utf-8?q?Eve=0D=0AX-Injected=3A_1?="
OPERATOR_TEXT = "Thank you, we will look into it."


def hostile_mail() -> bytes:
    return (f"From: {HOSTILE_NAME} <eve@example.com>\r\n"
            "To: support@shop.example\r\n"
            f"Subject: {HOSTILE_SUBJECT}\r\n"
            "Message-ID: <hostile-1@example.com>\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            "hello\r\n").encode()


async def test_an_encoded_line_break_in_the_subject_adds_no_header_to_the_reply(
        chttp: httpx.AsyncClient, db: AsyncSession, fake_smtp: FakeSMTP, worker: OutboxWorker,
        operator: dict[str, str]) -> None:
    response = await chttp.post("/webhooks/email", content=hostile_mail(),
                                headers={**INBOUND_HEADERS, "Content-Type": "message/rfc822"})
    assert response.status_code == 201, response.text
    ticket = (await fetch(db, select(Ticket)))[0]
    assert "\r" not in ticket.subject and "\n" not in ticket.subject
    await reply(chttp, operator, ticket.id, OPERATOR_TEXT)
    assert await worker.run_once(now=utcnow()) == 1

    async def delivered() -> bool:
        return bool(fake_smtp.messages)

    await wait_until(delivered)
    _, recipients, data = fake_smtp.messages[0]
    assert recipients == ["eve@example.com"]
    out = email.message_from_bytes(data, policy=compat32)
    assert out.get_all("Content-Type") == ['text/plain; charset="UTF-8"']
    assert out.get_all("X-Injected") is None and not out.is_multipart()
    assert out["To"] == '"Eve X-Injected: 1" <eve@example.com>'
    assert mail_headers.decode_header_value(out["Subject"]).startswith("Re: Hi Content-Type: text/html")
    assert mail.parse(data).text == OPERATOR_TEXT


async def test_the_api_channel_folds_line_breaks_out_of_subject_and_name(
        chttp: httpx.AsyncClient, db: AsyncSession) -> None:
    body = {"from": {"name": "Eve\r\nBcc: victim@example.com", "email": "eve@example.com"},
            "subject": "Hi\r\nContent-Type: text/html\r\n\r\n<h1>x", "body": "hello"}
    response = await chttp.post("/api/inbound", json=body,
                                headers={**INBOUND_HEADERS, "Idempotency-Key": "k-1"})
    assert response.status_code == 201, response.text
    ticket = (await fetch(db, select(Ticket)))[0]
    assert ticket.subject == "Hi Content-Type: text/html <h1>x"


def test_composing_refuses_a_line_break_that_reached_a_header_anyway() -> None:
    composed = mail_compose.compose_reply(
        message_id=1, ticket_number=1001, ticket_subject="a\r\nBcc: x@example.com", token="0" * 16,
        body_text=OPERATOR_TEXT, author="op\nBcc: y@example.com", to_email="c@example.com",
        to_name="Eve\r\nX-Evil: 1", inbox_email="support@shop.example", fallback_from="s@x.example",
        charset_name="utf-8", in_reply_to="a@b\r\nX-Evil: 2", references=["r@x\nX-Evil: 3"],
        now=utcnow())
    out = email.message_from_bytes(composed.raw, policy=compat32)
    assert out.get_all("Bcc") is None and out.get_all("X-Evil") is None
    with pytest.raises(ValueError, match="line break"):
        mail_compose.REPLY_POLICY.header_store_parse("Subject", "a\r\nBcc: x@example.com")


def test_a_composed_reply_names_bcc_only_in_the_envelope() -> None:
    composed = mail_compose.compose_reply(
        message_id=7, ticket_number=1001, ticket_subject="件名", token="0" * 16, body_text="本文",
        author="op", to_email="c@example.com", to_name=None, inbox_email="support@shop.example",
        fallback_from="s@x.example", charset_name="utf-8", in_reply_to=None, references=[],
        now=utcnow(), cc=["cc@example.com"], bcc=["hidden@example.com"])
    out = email.message_from_bytes(composed.raw, policy=compat32)
    assert out.get_all("Bcc") is None and b"hidden@example.com" not in composed.raw
    assert out.get_all("Cc") == ["cc@example.com"]
    assert composed.recipients == ["c@example.com", "cc@example.com", "hidden@example.com"]


def test_a_hostile_attachment_name_stays_inside_its_parameter() -> None:
    name = 'a"; name=x.exe\r\nContent-Type: text/html\r\n\r\n<h1>.pdf'
    stored = outgoing.safe_filename(name)
    composed = mail_compose.compose_reply(
        message_id=8, ticket_number=1001, ticket_subject="件名", token="0" * 16, body_text="本文",
        author="op", to_email="c@example.com", to_name=None, inbox_email="support@shop.example",
        fallback_from="s@x.example", charset_name="utf-8", in_reply_to=None, references=[],
        now=utcnow(), files=[OutboundFile(stored, outgoing.content_type_of(stored, "text/html\r\nX: 1"),
                                          b"%PDF")])
    out = email.message_from_bytes(composed.raw, policy=compat32)
    parts = [p for p in out.walk() if p.get_filename()]
    assert len(parts) == 1 and parts[0].get_filename() == stored
    assert parts[0].get_content_type() == "application/pdf"
    assert out.get_all("X") is None and b"\r\nContent-Type: text/html" not in composed.raw


@pytest.mark.parametrize("field", ["cc", "bcc"])
@pytest.mark.parametrize("value", ["boss@example.jp\r\nBcc: victim@example.com",
                                   "boss@example.jp\nX-Injected: 1", "Boss <boss@example.jp>",
                                   "=?utf-8?q?a=0D=0AX-Evil:_1?=@example.jp"])
async def test_a_line_break_or_header_in_cc_or_bcc_is_refused_and_nothing_is_sent(
        chttp: httpx.AsyncClient, db: AsyncSession, staff: Staff, channel_server: LiveServer,
        field: str, value: str) -> None:
    ticket = await email_ticket(chttp, db)
    sato = await staff.create("sato", inboxes=["default"])
    async with Browserless(channel_server, sato) as op:
        _, form = await compose(op, ticket, body=OPERATOR_TEXT, **{field: value})
        refused = await op.post(f"/tickets/{ticket.id}/reply", form)
        assert refused.status_code == 422, refused.text
    assert await fetch(db, select(func.count()).select_from(OutboxItem)) == [0]
