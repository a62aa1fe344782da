"""Replies on SMS, WhatsApp-through-Twilio and phone tickets reach the fake Twilio, or are refused
with the reason; a message Twilio refuses for good is failed with Twilio's reason and can be
sent again."""

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from helpdesk.channels import wiring
from helpdesk.db import utcnow
from helpdesk.delivery.tasks import OutboxWorker, WorkerOptions
from helpdesk.inboxes.models import Inbox
from helpdesk.outbox.models import OutboxItem
from helpdesk.outbox.service import SenderRegistry
from helpdesk.realtime.log import event_sessions
from helpdesk.realtime.models import Event
from helpdesk.storage.sessions import begin_write
from helpdesk.tickets.models import Channel, Message, Ticket
from telephony import sms
from tests.support.server import LiveServer
from tests.support.staff import Staff
from tests.support.telephony import SALES_NUMBER, FakeTwilio, count, floor, twilio_post

CUSTOMER = "+819011112222"


@pytest.fixture
async def worker(engine: AsyncEngine, tel_server: LiveServer) -> AsyncIterator[OutboxWorker]:
    """The outbox worker with the senders the app registers, driven one pass at a time."""
    sessionmaker = event_sessions(engine)
    registry = SenderRegistry()
    wiring.register_senders(registry, sessionmaker, tel_server.settings)
    sms.register_senders(registry, tel_server.settings)
    async with httpx.AsyncClient(timeout=10) as client:
        yield OutboxWorker(sessionmaker, registry, tel_server.settings, client,
                           WorkerOptions(max_attempts=3, backoff=timedelta(seconds=10)))


async def texted(tel: httpx.AsyncClient, db: AsyncSession, sid: str, *, whatsapp: bool = False,
                 body: str = "届いていません") -> int:
    """A customer's SMS (or WhatsApp message) to the sales number, through the signed webhook."""
    prefix = "whatsapp:" if whatsapp else ""
    form = {"MessageSid": sid, "From": prefix + CUSTOMER, "To": prefix + SALES_NUMBER, "Body": body}
    assert (await twilio_post(tel, "/telephony/twilio/sms", form)).status_code == 200
    await db.rollback()
    ticket_id = await db.scalar(select(Message.ticket_id).where(Message.external_id == sid))
    await db.commit()
    assert ticket_id is not None
    return int(ticket_id)


async def answer(client: httpx.AsyncClient, user: Any, ticket_id: int, body: str,
                 **extra: Any) -> httpx.Response:
    headers = Staff.headers(user)
    version = (await client.get(f"/api/tickets/{ticket_id}", headers=headers)).json()["version"]
    return await client.post(f"/api/tickets/{ticket_id}/messages", headers=headers,
                             json={"body": body, "version": version, **extra})


async def inbox_named(db: AsyncSession, name: str) -> int:
    await db.rollback()
    found = await db.scalar(select(Inbox.id).where(Inbox.name == name))
    await db.commit()
    assert found is not None
    return int(found)


async def message(db: AsyncSession, message_id: int) -> Message:
    await db.rollback()
    found = await db.get(Message, message_id)
    await db.commit()
    assert found is not None
    return found


async def test_an_sms_reply_reaches_twilio_from_the_inbox_number(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff, fake_twilio: FakeTwilio,
        worker: OutboxWorker) -> None:
    f = await floor(db, staff)
    ticket_id = await texted(tel, db, "SM-in-1")
    reply = await answer(tel, f.sales_ops[0], ticket_id, "本日発送いたしました。①")
    assert reply.status_code == 201, reply.text
    assert await worker.run_once() == 1
    (sent,) = fake_twilio.requests
    assert sent["path"].endswith("/Messages.json")
    assert (sent["form"]["To"], sent["form"]["From"]) == (CUSTOMER, SALES_NUMBER)
    assert sent["form"]["Body"] == "本日発送いたしました。①"
    stored = await message(db, reply.json()["id"])
    assert stored.delivery_status == "sent" and stored.external_id is not None
    assert stored.external_id.startswith("SM") and stored.delivery_error is None


async def test_a_whatsapp_reply_on_a_twilio_thread_goes_through_twilio(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff, fake_twilio: FakeTwilio,
        worker: OutboxWorker) -> None:
    f = await floor(db, staff)
    ticket_id = await texted(tel, db, "SM-wa-1", whatsapp=True)
    reply = await answer(tel, f.sales_ops[0], ticket_id, "確認いたします")
    assert reply.status_code == 201, reply.text
    assert await worker.run_once() == 1
    (sent,) = fake_twilio.requests
    assert sent["form"]["To"] == f"whatsapp:{CUSTOMER}"
    assert sent["form"]["From"] == f"whatsapp:{SALES_NUMBER}"
    assert (await message(db, reply.json()["id"])).delivery_status == "sent"


async def test_twilio_refusing_for_good_fails_the_reply_with_its_reason_and_retry_sends_it(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff, fake_twilio: FakeTwilio,
        worker: OutboxWorker) -> None:
    f = await floor(db, staff)
    op = f.sales_ops[0]
    ticket_id = await texted(tel, db, "SM-in-2")
    reply = (await answer(tel, op, ticket_id, "お問い合わせありがとうございます")).json()
    fake_twilio.fail_with = 400
    start = utcnow()
    assert await worker.run_once(now=start) == 1
    assert await worker.run_once(now=start + timedelta(days=1)) == 0  # not retried: refused for good
    assert len(fake_twilio.requests) == 1
    detail = (await tel.get(f"/api/tickets/{ticket_id}", headers=Staff.headers(op))).json()
    shown = next(m for m in detail["messages"] if m["id"] == reply["id"])
    assert shown["delivery_status"] == "failed"
    assert shown["delivery_error"].startswith("Twilio answered 400 (code 21211): ")
    assert shown["delivery_error"].endswith("Invalid 'To' Phone Number")
    await db.rollback()
    (update,) = (await db.scalars(select(Event).where(Event.type == "message.updated"))).all()
    await db.commit()
    assert update.data["delivery_status"] == "failed" and "21211" in update.data["error"]

    fake_twilio.fail_with = None
    retried = await tel.post(f"/api/tickets/{ticket_id}/messages/{reply['id']}/retry",
                             headers=Staff.headers(op))
    assert retried.status_code == 200, retried.text
    assert (retried.json()["delivery_status"], retried.json()["delivery_error"]) == ("queued", None)
    again = await tel.post(f"/api/tickets/{ticket_id}/messages/{reply['id']}/retry",
                           headers=Staff.headers(op))
    assert again.status_code == 409  # only a failed reply is sent again
    assert await worker.run_once(now=start + timedelta(days=1)) == 1
    assert len(fake_twilio.requests) == 2
    stored = await message(db, reply["id"])
    assert (stored.delivery_status, stored.delivery_error) == ("sent", None)
    assert await count(db, OutboxItem) == 1  # the same item, sent on its second life


async def test_a_phone_ticket_is_answered_by_sms_not_on_the_phone_channel(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff, fake_twilio: FakeTwilio,
        worker: OutboxWorker) -> None:
    f = await floor(db, staff)
    inbox_id = await inbox_named(db, "sales")  # its number is the one the SMS comes from
    await begin_write(db)
    db.add(Ticket(number=9001, channel=Channel.phone, inbox_id=inbox_id, customer_id=f.customer_id,
                  token="phone-ticket-token", subject="着信"))
    await db.commit()
    ticket_id = int(await db.scalar(select(Ticket.id).where(Ticket.number == 9001)) or 0)
    await db.commit()
    boss = f.supervisor
    on_phone = await answer(tel, boss, ticket_id, "折り返します")
    assert on_phone.status_code == 409
    assert on_phone.json()["reason"] == "a phone ticket is answered by calling back or by SMS"
    not_here = await answer(tel, boss, ticket_id, "x", channel="line")
    assert not_here.status_code == 422
    by_sms = await answer(tel, boss, ticket_id, "先ほどはお電話ありがとうございました", channel="sms")
    assert by_sms.status_code == 201, by_sms.text
    assert by_sms.json()["channel"] == "sms"
    assert await worker.run_once() == 1
    (sent,) = fake_twilio.requests
    assert sent["form"]["To"] == "+81312345678"  # the customer's number
    assert sent["form"]["Body"] == "先ほどはお電話ありがとうございました"


async def test_replies_nothing_here_can_send_are_refused_with_the_reason(
        http: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    """The plain server has no Twilio, no SMTP, no LINE: nothing is stored or queued."""
    op = await staff.create("op", inboxes=["default"])
    admin_inbox = await inbox_named(db, "default")
    await begin_write(db)
    for number, channel in ((9101, Channel.sms), (9102, Channel.email), (9103, Channel.line)):
        db.add(Ticket(number=number, channel=channel, inbox_id=admin_inbox,
                      token=f"token-{number}", subject="件名"))
    await db.commit()
    tickets = {t.channel: t.id for t in await db.scalars(select(Ticket))}
    await db.commit()
    reasons = {}
    for channel, ticket_id in tickets.items():
        refused = await answer(http, op, int(ticket_id or 0), "お待たせしました")
        assert refused.status_code == 409, refused.text
        assert refused.json()["detail"].startswith("this channel has no sending set up: ")
        reasons[channel] = refused.json()["reason"]
    assert "HELPDESK_TWILIO_ACCOUNT_SID" in reasons[Channel.sms]
    assert "HELPDESK_SMTP_URL" in reasons[Channel.email]
    assert "HELPDESK_LINE_CHANNEL_ACCESS_TOKEN" in reasons[Channel.line]
    assert await count(db, Message) == 0 and await count(db, OutboxItem) == 0
    note = await answer(http, op, int(tickets[Channel.sms] or 0), "社内メモ", internal=True)
    assert note.status_code == 201  # notes need no sender
