"""Meta: subscription check, signatures, Messenger / Instagram / WhatsApp events, replies."""

import asyncio
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.customers.models import Customer, CustomerIdentity
from helpdesk.delivery.tasks import OutboxWorker
from helpdesk.tickets.models import Message, Ticket
from tests.support.channels import META_VERIFY, meta_signature, post_meta, reply
from tests.support.database import count, fetch
from tests.support.fakes import FakeMeta


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


async def test_messenger_and_instagram_senders_are_named_from_their_profiles(
        chttp: httpx.AsyncClient, db: AsyncSession, fake_meta: FakeMeta) -> None:
    fake_meta.profiles["5550000000000001"] = {"first_name": "Taro", "last_name": "Yamada",
                                              "name": "Taro Yamada"}
    fake_meta.profiles["17841455500000002"] = {"username": "hanako_shop"}
    fake_meta.profiles["17841455500000003"] = {"name": "鈴木 花子", "username": "hanako.s"}
    responses = [
        await post_meta(chttp, messenger("m_NAME1", "名前つき", sender="5550000000000001")),
        await post_meta(chttp, messenger("m_NAME2", "ユーザー名だけ", obj="instagram",
                                         sender="17841455500000002", account="17841400000000099")),
        await post_meta(chttp, messenger("m_NAME3", "名前あり", obj="instagram",
                                         sender="17841455500000003", account="17841400000000099")),
        await post_meta(chttp, messenger("m_NAME4", "二通目", sender="5550000000000001")),
    ]
    assert [r.json()["received"] for r in responses] == [1, 1, 1, 1]
    names = {i.value: c.name for c, i in (await fetch_pairs(db))}
    assert names == {"messenger:5550000000000001": "Taro Yamada",
                     "instagram:17841455500000002": "hanako_shop",
                     "instagram:17841455500000003": "鈴木 花子"}
    authors = sorted(m.author or "" for m in await fetch(db, select(Message)))
    assert authors == ["Taro Yamada", "Taro Yamada", "hanako_shop", "鈴木 花子"]
    lookups = [r for r in fake_meta.requests if r.method == "GET"]
    assert [(r.path, r.headers["Authorization"]) for r in lookups] == [
        ("/v21.0/5550000000000001", "Bearer meta-page-access-token"),
        ("/v21.0/17841455500000002", "Bearer meta-page-access-token"),
        ("/v21.0/17841455500000003", "Bearer meta-page-access-token"),
    ]  # the second Messenger message is named from the cache


async def test_a_failing_graph_api_never_blocks_a_message(
        chttp: httpx.AsyncClient, db: AsyncSession, fake_meta: FakeMeta) -> None:
    fake_meta.profiles["5550000000000009"] = {"name": "Later Known"}
    fake_meta.fail_next = 1
    first = await post_meta(chttp, messenger("m_FAIL1", "最初", sender="5550000000000009"))
    unknown = await post_meta(chttp, messenger("m_FAIL2", "不明", sender="5550000000000010"))
    assert [first.json()["received"], unknown.json()["received"]] == [1, 1]
    assert sorted(m.body_text for m in await fetch(db, select(Message))) == ["不明", "最初"]
    assert all(c.name is None for c, _ in await fetch_pairs(db))
    # A server error is not remembered: the next message from them is named (and so are they).
    await post_meta(chttp, messenger("m_FAIL3", "二通目", sender="5550000000000009"))
    names = {i.value: c.name for c, i in await fetch_pairs(db)}
    assert names["messenger:5550000000000009"] == "Later Known"
    assert names["messenger:5550000000000010"] is None


async def fetch_pairs(db: AsyncSession) -> list[tuple[Customer, CustomerIdentity]]:
    """Every customer with each of their Meta identities."""
    await db.rollback()
    rows = (await db.execute(select(Customer, CustomerIdentity)
                             .join(CustomerIdentity, CustomerIdentity.customer_id == Customer.id)
                             .where(CustomerIdentity.kind == "meta"))).all()
    db.expunge_all()
    await db.rollback()
    return [(c, i) for c, i in rows]
