"""Meta: subscription check, signatures, Messenger / Instagram / WhatsApp events, replies."""

import asyncio
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.customers.models import Customer, CustomerIdentity
from helpdesk.outbox.tasks import OutboxWorker
from helpdesk.tickets.models import Message, Ticket
from tests.channels.conftest import META_VERIFY, count, fetch, meta_signature, post_meta, reply
from tests.channels.fakes import FakeMeta


def messenger(mid: str, text: str, *, obj: str = "page", sender: str = "6789012345678901",
              account: str = "112233445566778", echo: bool = False) -> dict[str, Any]:
    message: dict[str, Any] = {"mid": mid, "text": text}
    if echo:
        message["is_echo"] = True
    return {"object": obj, "entry": [{"id": account, "time": 1714525200000, "messaging": [{
        "sender": {"id": sender}, "recipient": {"id": account}, "timestamp": 1714525200000,
        "message": message}]}]}


def whatsapp(wamid: str, text: str, *, wa_id: str = "819012345678") -> dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "81312345678", "phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": "Hanako Suzuki"}, "wa_id": wa_id}],
            "messages": [{"from": wa_id, "id": wamid, "timestamp": "1714525200", "type": "text",
                          "text": {"body": text}}]}}]}]}


async def test_subscription_check(chttp: httpx.AsyncClient, http: httpx.AsyncClient) -> None:
    params = {"hub.mode": "subscribe", "hub.verify_token": META_VERIFY, "hub.challenge": "1158201444"}
    ok = await chttp.get("/webhooks/meta", params=params)
    assert ok.status_code == 200 and ok.text == "1158201444"
    wrong = await chttp.get("/webhooks/meta", params={**params, "hub.verify_token": "guess"})
    assert wrong.status_code == 403
    unconfigured = await http.get("/webhooks/meta", params=params)
    assert unconfigured.status_code == 404


async def test_forged_signature_is_403_and_stores_nothing(
        chttp: httpx.AsyncClient, http: httpx.AsyncClient, db: AsyncSession) -> None:
    payload = whatsapp("wamid.FORGED", "偽物")
    forged = await post_meta(chttp, payload, signature=meta_signature(b"{}", "other-secret"))
    missing = await chttp.post("/webhooks/meta", json=payload)
    unconfigured = await post_meta(http, payload)
    assert (forged.status_code, missing.status_code, unconfigured.status_code) == (403, 403, 404)
    assert await count(db, Message) == 0 and await count(db, Customer) == 0


async def test_messenger_instagram_and_whatsapp_messages_become_tickets(
        chttp: httpx.AsyncClient, db: AsyncSession) -> None:
    responses = [
        await post_meta(chttp, messenger("m_AAA", "Messengerから質問です")),
        await post_meta(chttp, messenger("m_BBB", "インスタから", obj="instagram",
                                         sender="17841400000000001", account="17841400000000099")),
        await post_meta(chttp, messenger("m_ECHO", "自分の送信", echo=True)),
        await post_meta(chttp, whatsapp("wamid.HBgLODE5MDEyMzQ1Njc4", "WhatsAppです")),
    ]
    assert [r.status_code for r in responses] == [200] * 4
    assert [r.json()["received"] for r in responses] == [1, 1, 0, 1]
    tickets = {t.channel: t for t in await fetch(db, select(Ticket))}
    assert set(tickets) == {"messenger", "instagram", "whatsapp"}
    assert tickets["messenger"].conversation_key == "meta:messenger:112233445566778:6789012345678901"
    assert tickets["whatsapp"].conversation_key == "meta:whatsapp:106540352242922:819012345678"
    texts = sorted(m.body_text for m in await fetch(db, select(Message)))
    assert texts == sorted(["Messengerから質問です", "インスタから", "WhatsAppです"])
    phone = (await fetch(db, select(CustomerIdentity).where(CustomerIdentity.kind == "phone")))[0]
    assert phone.value == "+819012345678"
    named = await fetch(db, select(Customer).where(Customer.name == "Hanako Suzuki"))
    assert len(named) == 1


async def test_one_delivery_three_times_concurrently_is_one_message(
        chttp: httpx.AsyncClient, db: AsyncSession) -> None:
    payload = whatsapp("wamid.DUPLICATE", "三回届く")
    responses = await asyncio.gather(*(post_meta(chttp, payload) for _ in range(3)))
    assert sorted(r.json()["received"] for r in responses) == [0, 0, 1]
    assert await count(db, Message) == 1 and await count(db, Ticket) == 1


async def test_malformed_signed_payloads_are_422_or_ignored(chttp: httpx.AsyncClient,
                                                           db: AsyncSession) -> None:
    body = b"[1, 2]"
    not_object = await chttp.post("/webhooks/meta", content=body,
                                  headers={"X-Hub-Signature-256": meta_signature(body)})
    odd = await post_meta(chttp, {"object": "page", "entry": [{"messaging": "x"}, 5]})
    assert not_object.status_code == 422 and odd.status_code == 200
    assert await count(db, Message) == 0


async def test_replies_go_through_the_send_api_and_the_cloud_api(
        chttp: httpx.AsyncClient, db: AsyncSession, fake_meta: FakeMeta, worker: OutboxWorker,
        operator: dict[str, str]) -> None:
    await post_meta(chttp, messenger("m_R1", "送料はいくら？"))
    await post_meta(chttp, whatsapp("wamid.R2", "配達日は？"))
    for ticket in await fetch(db, select(Ticket).order_by(Ticket.id)):
        await reply(chttp, operator, ticket.id, f"{ticket.channel}へのお返事")
    assert await worker.run_once() == 2
    sent = {r.path: r.body for r in fake_meta.sent}
    assert sent["/v21.0/me/messages"] == {"recipient": {"id": "6789012345678901"},
                                          "messaging_type": "RESPONSE",
                                          "message": {"text": "messengerへのお返事"}}
    assert sent["/v21.0/106540352242922/messages"]["to"] == "819012345678"
    assert sent["/v21.0/106540352242922/messages"]["text"]["body"] == "whatsappへのお返事"
    assert all(r.headers["Authorization"] == "Bearer meta-page-access-token" for r in fake_meta.sent)
    outbound = await fetch(db, select(Message).where(Message.direction == "out").order_by(Message.id))
    assert [(m.delivery_status, m.external_id) for m in outbound] == [
        ("sent", "m_OUT1"), ("sent", "wamid.OUT2")]
