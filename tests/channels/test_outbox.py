"""The outbox worker: retries with backoff, exactly-once delivery, failures operators can see."""

import asyncio
from datetime import timedelta

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from helpdesk.channels.media import MediaWorker
from helpdesk.db import utcnow
from helpdesk.delivery.tasks import OutboxWorker
from helpdesk.outbox.models import OutboxItem
from helpdesk.outbox.service import OutboundContext, SenderRegistry
from helpdesk.realtime.log import event_sessions
from helpdesk.realtime.models import Event
from helpdesk.tickets.models import Message, Ticket
from tests.support.channels import line_message, post_line, post_meta, reply
from tests.support.database import fetch, get
from tests.support.fakes import FakeLine, FakeMeta


async def line_ticket(client: httpx.AsyncClient, db: AsyncSession, text: str = "問い合わせ",
                      user: str = "U" + "c" * 32, event_id: str = "E-outbox-1") -> int:
    response = await post_line(client, line_message(text, user_id=user, event_id=event_id))
    assert response.status_code == 200
    tickets = await fetch(db, select(Ticket).where(Ticket.conversation_key == f"line:{user}"))
    return int(tickets[0].id)


async def test_a_provider_failing_twice_gets_the_message_once_on_the_third_try(
        chttp: httpx.AsyncClient, db: AsyncSession, fake_line: FakeLine, worker: OutboxWorker,
        operator: dict[str, str]) -> None:
    ticket_id = await line_ticket(chttp, db)
    message = await reply(chttp, operator, ticket_id, "ただいま確認しております。")
    fake_line.fail_next = 2
    start = utcnow()

    assert await worker.run_once(now=start) == 1
    item = (await fetch(db, select(OutboxItem)))[0]
    assert (item.state, item.attempts) == ("pending", 1)
    assert "500" in (item.last_error or "")
    assert item.next_attempt_at >= start + timedelta(seconds=10)
    assert await worker.run_once(now=start + timedelta(seconds=5)) == 0  # backing off

    assert await worker.run_once(now=start + timedelta(seconds=11)) == 1
    item = (await fetch(db, select(OutboxItem)))[0]
    assert (item.state, item.attempts) == ("pending", 2)
    assert item.next_attempt_at >= start + timedelta(seconds=31)  # the delay doubled

    assert await worker.run_once(now=start + timedelta(seconds=40)) == 1
    assert len(fake_line.pushed) == 1
    keys = {r.headers["X-Line-Retry-Key"] for r in fake_line.requests if r.path.endswith("/push")}
    assert len(keys) == 1  # every attempt carried the same retry key
    item = (await fetch(db, select(OutboxItem)))[0]
    assert (item.state, item.attempts, item.last_error) == ("sent", 3, None)
    sent = await get(db, Message, message["id"])
    assert (sent.delivery_status, sent.external_id) == ("sent", "500001")
    updates = await fetch(db, select(Event).where(Event.type == "message.updated"))
    assert [e.data["delivery_status"] for e in updates] == ["sent"]

    assert await worker.run_once(now=start + timedelta(days=1)) == 0  # never sent twice
    assert len(fake_line.pushed) == 1


async def test_a_message_that_keeps_failing_is_marked_failed_and_shown(
        chttp: httpx.AsyncClient, db: AsyncSession, fake_meta: FakeMeta, worker: OutboxWorker,
        operator: dict[str, str]) -> None:
    await post_meta(chttp, {"object": "page", "entry": [{"id": "PAGE1", "time": 1, "messaging": [{
        "sender": {"id": "PSID1"}, "recipient": {"id": "PAGE1"}, "timestamp": 1714525200000,
        "message": {"mid": "m_fail_1", "text": "在庫はありますか"}}]}]})
    ticket_id = (await fetch(db, select(Ticket)))[0].id
    message = await reply(chttp, operator, ticket_id, "在庫がございます。")
    fake_meta.fail_next = 100
    now = utcnow()
    for hours in range(3):
        assert await worker.run_once(now=now + timedelta(hours=hours)) == 1
    assert await worker.run_once(now=now + timedelta(days=2)) == 0
    sends = [r for r in fake_meta.requests if r.method == "POST"]  # not the profile look-up
    assert len(sends) == 3 and not fake_meta.sent
    item = (await fetch(db, select(OutboxItem)))[0]
    assert item.state == "failed" and "Meta answered 500" in (item.last_error or "")
    detail = (await chttp.get(f"/api/tickets/{ticket_id}", headers=operator)).json()
    shown = next(m for m in detail["messages"] if m["id"] == message["id"])
    assert shown["delivery_status"] == "failed"
    event = (await fetch(db, select(Event).where(Event.type == "message.updated")))[0]
    assert event.data["delivery_status"] == "failed" and "500" in event.data["error"]
    assert event.data["message_id"] == message["id"]


async def test_a_lost_response_is_retried_and_the_retry_key_prevents_a_second_send(
        chttp: httpx.AsyncClient, db: AsyncSession, fake_line: FakeLine, worker: OutboxWorker,
        operator: dict[str, str]) -> None:
    ticket_id = await line_ticket(chttp, db)
    await reply(chttp, operator, ticket_id, "発送しました。")
    fake_line.lose_response_next = 1
    now = utcnow()
    await worker.run_once(now=now)
    await worker.run_once(now=now + timedelta(minutes=1))
    assert len(fake_line.pushed) == 1  # the second attempt was answered 409: already accepted
    item = (await fetch(db, select(OutboxItem)))[0]
    assert (item.state, item.attempts) == ("sent", 2)


async def test_a_refused_recipient_fails_at_once_without_retrying(
        chttp: httpx.AsyncClient, db: AsyncSession, fake_line: FakeLine, worker: OutboxWorker,
        operator: dict[str, str]) -> None:
    ticket_id = await line_ticket(chttp, db)
    message = await reply(chttp, operator, ticket_id, "ご連絡ありがとうございます。")
    fake_line.reject_next = 1
    assert await worker.run_once() == 1
    item = (await fetch(db, select(OutboxItem)))[0]
    assert (item.state, item.attempts) == ("failed", 1)
    assert "LINE answered 400" in (item.last_error or "")
    shown = (await chttp.get(f"/api/tickets/{ticket_id}", headers=operator)).json()["messages"]
    failed = next(m for m in shown if m["id"] == message["id"])
    assert failed["delivery_status"] == "failed"
    assert failed["delivery_error"].startswith("LINE answered 400")  # the reason, on the message


async def test_api_replies_are_sent_by_being_there_to_read(
        chttp: httpx.AsyncClient, db: AsyncSession, worker: OutboxWorker,
        operator: dict[str, str]) -> None:
    response = await chttp.post("/api/inbound", json={"channel": "api", "from": {"name": "電話のみ"},
                                                      "body": "折り返しください"},
                                headers={"Authorization": "Bearer test-inbound-token",
                                         "Idempotency-Key": "no-sender"})
    message = await reply(chttp, operator, response.json()["ticket_id"], "承知しました")
    assert await worker.run_once() == 1
    assert (await fetch(db, select(OutboxItem)))[0].state == "sent"
    assert (await get(db, Message, message["id"])).delivery_status == "sent"


async def test_an_item_nothing_here_can_send_fails_with_the_reason_instead_of_waiting(
        chttp: httpx.AsyncClient, db: AsyncSession, worker: OutboxWorker, engine: AsyncEngine,
        operator: dict[str, str]) -> None:
    """Queued while the channel could send (a phone ticket's SMS), after Twilio was unset."""
    ticket_id = await line_ticket(chttp, db)
    message = await reply(chttp, operator, ticket_id, "お電話ください")
    async with event_sessions(engine)() as session:
        await session.execute(update(OutboxItem).values(kind="reply.sms"))
        await session.commit()
    assert await worker.run_once() == 1
    item = (await fetch(db, select(OutboxItem)))[0]
    assert item.state == "failed" and "HELPDESK_TWILIO_ACCOUNT_SID" in (item.last_error or "")
    failed = await get(db, Message, message["id"])
    assert failed.delivery_status == "failed"
    assert failed.delivery_error == item.last_error


async def test_two_workers_deliver_each_message_exactly_once(
        chttp: httpx.AsyncClient, db: AsyncSession, fake_line: FakeLine, worker: OutboxWorker,
        operator: dict[str, str]) -> None:
    for n in range(6):
        ticket_id = await line_ticket(chttp, db, user="U" + f"{n:032d}", event_id=f"E-two-{n}")
        await reply(chttp, operator, ticket_id, f"返信 {n}")
    other = OutboxWorker(worker.sessionmaker, worker.registry, worker.settings, worker.http,
                         worker.options)
    counts = await asyncio.gather(worker.run_once(), other.run_once(), worker.run_once())
    assert sum(counts) == 6
    assert sorted(p["messages"][0]["text"] for p in fake_line.pushed) == [f"返信 {n}" for n in range(6)]
    states = {i.state for i in await fetch(db, select(OutboxItem))}
    assert states == {"sent"}


async def test_registry_picks_the_sender_that_accepts_the_item() -> None:
    calls: list[str] = []

    async def cloud(_: OutboundContext) -> str:
        calls.append("cloud")
        return "wamid.1"

    async def twilio(_: OutboundContext) -> str:
        calls.append("twilio")
        return "SM1"

    registry = SenderRegistry()
    registry.register("reply.whatsapp", twilio)
    registry.register("reply.whatsapp", cloud,
                      when=lambda c: (c.conversation_key or "").startswith("meta:whatsapp:"))
    assert registry.kinds() == ["reply.whatsapp"]

    def context(key: str | None) -> OutboundContext:
        return OutboundContext(
            item_id=1, kind="reply.whatsapp", attempt=1, idempotency_key="k", message_id=1,
            body_text="x", body_html=None, author=None, ticket_id=1, ticket_number=1,
            ticket_subject="", ticket_token="t", channel="whatsapp", conversation_key=key,
            inbox_name="default", inbox_email=None, inbox_email_charset="utf-8",
            customer_name=None, identities={}, thread_external_ids=[], reply_to_external_id=None,
            payload={}, settings=None, http=None)  # type: ignore[arg-type]

    for key in ("meta:whatsapp:PN:819012345678", "twilio:+819012345678"):
        sender = registry.sender_for(context(key))
        assert sender is not None
        await sender(context(key))
    assert calls == ["cloud", "twilio"]


async def test_idle_workers_do_not_wait_for_the_write_lock(
        worker: OutboxWorker, media_worker: MediaWorker, engine: AsyncEngine) -> None:
    """Woken after every commit, a worker with nothing due must not queue behind writers."""
    async with event_sessions(engine)() as writer:
        await writer.connection()  # BEGIN IMMEDIATE: this session now holds the write lock
        counts = await asyncio.wait_for(
            asyncio.gather(worker.run_once(), media_worker.run_once()), timeout=2)
    assert counts == [0, 0]
