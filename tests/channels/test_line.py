"""LINE: signatures, events, concurrent redeliveries, follow/unfollow, and push replies."""

import asyncio

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.customers.models import Customer, CustomerIdentity
from helpdesk.delivery.tasks import OutboxWorker
from helpdesk.receipts.models import DeliveryReceipt
from helpdesk.tickets.models import Message, Ticket
from tests.support.channels import line_message, line_signature, post_line, reply
from tests.support.database import count, fetch, get
from tests.support.fakes import FakeLine

USER = "U" + "a" * 32


async def test_forged_or_missing_signature_is_403_and_stores_nothing(
        chttp: httpx.AsyncClient, db: AsyncSession) -> None:
    payload = line_message("こんにちは")
    forged = await post_line(chttp, payload, signature=line_signature(b"{}", "wrong-secret"))
    missing = await chttp.post("/webhooks/line", json=payload)
    tampered_body = await chttp.post(
        "/webhooks/line", content=b'{"events": []}',
        headers={"X-Line-Signature": line_signature(b'{"events":[]}')})
    assert [forged.status_code, missing.status_code, tampered_body.status_code] == [403, 403, 403]
    assert forged.json() == {"detail": "invalid LINE signature"}
    assert await count(db, Message) == 0
    assert await count(db, Customer) == 0


async def test_unconfigured_line_is_404(http: httpx.AsyncClient) -> None:
    response = await post_line(http, line_message("x"))
    assert response.status_code == 404


async def test_malformed_signed_bodies_are_422(chttp: httpx.AsyncClient, db: AsyncSession) -> None:
    not_json = await post_line(chttp, {}, signature=line_signature(b"nope"))
    assert not_json.status_code == 403  # the signature covers the bytes actually sent
    body = b"not json"
    bad = await chttp.post("/webhooks/line", content=body,
                           headers={"X-Line-Signature": line_signature(body)})
    no_events = await post_line(chttp, {"destination": "x", "events": "many"})
    assert bad.status_code == 422 and no_events.status_code == 422
    assert await count(db, Message) == 0


async def test_message_event_makes_a_ticket_with_the_profile_name(
        chttp: httpx.AsyncClient, db: AsyncSession, fake_line: FakeLine) -> None:
    fake_line.names[USER] = "山田 太郎"
    empty = await post_line(chttp, {"destination": "U" + "f" * 32, "events": []})  # "verify"
    assert empty.status_code == 200
    response = await post_line(chttp, line_message("注文した商品が届きません"))
    assert response.status_code == 200, response.text
    ticket = (await fetch(db, select(Ticket)))[0]
    assert ticket.channel == "line" and ticket.conversation_key == f"line:{USER}"
    message = (await fetch(db, select(Message)))[0]
    assert message.body_text == "注文した商品が届きません"
    assert message.external_id == "01HZX0000000000000000000AA"
    customer = await get(db, Customer, ticket.customer_id)
    assert customer is not None and customer.name == "山田 太郎"
    identity = (await fetch(db, select(CustomerIdentity)))[0]
    assert (identity.kind, identity.value) == ("line", USER)
    profile_calls = [r for r in fake_line.requests if r.path.startswith("/v2/bot/profile/")]
    assert profile_calls and profile_calls[0].headers["Authorization"] == "Bearer line-channel-access-token"


async def test_one_event_delivered_three_times_concurrently_is_one_message(
        chttp: httpx.AsyncClient, db: AsyncSession) -> None:
    payload = line_message("重複テスト", event_id="01HZX00000000000000000DUP1")
    redelivery = line_message("重複テスト", event_id="01HZX00000000000000000DUP1")
    redelivery["events"][0]["deliveryContext"]["isRedelivery"] = True
    responses = await asyncio.gather(post_line(chttp, payload), post_line(chttp, payload),
                                     post_line(chttp, redelivery))
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert await count(db, Message) == 1
    assert await count(db, Ticket) == 1
    assert await count(db, Customer) == 1


async def test_follow_and_unfollow_mark_the_customer_once(
        chttp: httpx.AsyncClient, db: AsyncSession, fake_line: FakeLine) -> None:
    follower = "U" + "d" * 32  # its own id: the server keeps display names of ids it has seen
    fake_line.names[follower] = "フォロー 太郎"
    base = {"mode": "active", "timestamp": 1714525200000, "source": {"type": "user", "userId": follower},
            "deliveryContext": {"isRedelivery": False}}
    follow = {"destination": "x", "events": [{**base, "type": "follow", "webhookEventId": "F1",
                                              "replyToken": "r", "follow": {"isUnblocked": False}}]}
    unfollow = {"destination": "x", "events": [{**base, "type": "unfollow", "webhookEventId": "F2"}]}
    assert (await post_line(chttp, follow)).status_code == 200
    await asyncio.gather(*(post_line(chttp, unfollow) for _ in range(3)))
    customer = (await fetch(db, select(Customer)))[0]
    assert customer.name == "フォロー 太郎" and customer.tags == ["LINEブロック"]
    assert await count(db, DeliveryReceipt) == 2
    assert await count(db, Message) == 0


async def test_operator_reply_is_pushed_with_a_retry_key(
        chttp: httpx.AsyncClient, db: AsyncSession, fake_line: FakeLine, worker: OutboxWorker,
        operator: dict[str, str]) -> None:
    await post_line(chttp, line_message("返品できますか"))
    ticket = (await fetch(db, select(Ticket)))[0]
    sent = await reply(chttp, operator, ticket.id, "はい、7日以内なら返品できます。")
    assert sent["delivery_status"] == "queued"
    assert await worker.run_once() == 1
    assert fake_line.pushed == [{"to": USER, "messages": [
        {"type": "text", "text": "はい、7日以内なら返品できます。"}]}]
    push = next(r for r in fake_line.requests if r.path == "/v2/bot/message/push")
    assert len(push.headers["X-Line-Retry-Key"]) == 36
    detail = (await chttp.get(f"/api/tickets/{ticket.id}", headers=operator)).json()
    assert detail["messages"][-1]["delivery_status"] == "sent"
