"""POST /api/inbound: the API channel, idempotency and hostile input."""

import asyncio

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.customers.models import Customer
from helpdesk.realtime.models import Event
from helpdesk.tickets.models import Message, Ticket
from tests.support.inbound import INBOUND_HEADERS, inbound_body, post_inbound


async def count(db: AsyncSession, model: type) -> int:
    await db.rollback()  # start a fresh snapshot so commits by the server are visible
    return int(await db.scalar(select(func.count()).select_from(model)) or 0)


async def test_inbound_creates_ticket_customer_message_and_events(http: httpx.AsyncClient,
                                                                    db: AsyncSession) -> None:
    response = await post_inbound(http, "key-1", inbound_body(
        "商品が届きません", name="山田　太郎", email=" Taro@Example.JP ", phone="０３－１２３４－５６７８"))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["duplicate"] is False
    ticket = await db.get(Ticket, body["ticket_id"])
    assert ticket is not None and ticket.status == "unhandled" and ticket.channel == "api"
    assert ticket.subject == "商品が届きません"
    detail = (await http.get(f"/api/tickets/{ticket.id}", headers=INBOUND_HEADERS)).status_code
    assert detail == 401  # the inbound token is not a staff token
    customer = await db.get(Customer, ticket.customer_id)
    assert customer is not None and customer.name == "山田\u3000太郎"  # as typed, full-width space kept
    events = list(await db.scalars(select(Event).order_by(Event.seq)))
    assert [e.type for e in events] == ["ticket.created", "message.created"]
    assert [e.seq for e in events] == [1, 2]


async def test_same_key_again_is_a_duplicate(http: httpx.AsyncClient, db: AsyncSession) -> None:
    first = await post_inbound(http, "key-dup")
    again = await post_inbound(http, "key-dup")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == {**first.json(), "duplicate": True}
    assert await count(db, Message) == 1


async def test_twenty_concurrent_deliveries_create_one_message(http: httpx.AsyncClient,
                                                               db: AsyncSession) -> None:
    responses = await asyncio.gather(*(post_inbound(http, "same-key") for _ in range(20)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 19 + [201], [r.text for r in responses if r.status_code >= 300]
    assert len({r.json()["message_id"] for r in responses}) == 1
    assert await count(db, Message) == 1
    assert await count(db, Ticket) == 1
    assert await count(db, Customer) == 1


async def test_concurrent_new_messages_from_one_new_customer_make_one_customer(
        http: httpx.AsyncClient, db: AsyncSession) -> None:
    body = inbound_body(name="新規 顧客", email="new@example.jp")
    responses = await asyncio.gather(*(post_inbound(http, f"k{i}", body) for i in range(10)))
    assert all(r.status_code == 201 for r in responses)
    assert await count(db, Customer) == 1
    assert await count(db, Message) == 10


async def test_conversation_continues_on_the_same_ticket(http: httpx.AsyncClient) -> None:
    body = {**inbound_body(), "external_id": "thread-9"}
    first = (await post_inbound(http, "a", body)).json()
    second = (await post_inbound(http, "b", {**body, "body": "追加の質問です"})).json()
    assert first["ticket_id"] == second["ticket_id"]
    other = (await post_inbound(http, "c", {**body, "external_id": "thread-10"})).json()
    assert other["ticket_id"] != first["ticket_id"]


async def test_rejects_bad_token_missing_key_and_bad_bodies(http: httpx.AsyncClient,
                                                           db: AsyncSession) -> None:
    no_auth = await http.post("/api/inbound", json=inbound_body(), headers={"Idempotency-Key": "x"})
    wrong = await http.post("/api/inbound", json=inbound_body(),
                            headers={"Authorization": "Bearer nope", "Idempotency-Key": "x"})
    no_key = await http.post("/api/inbound", json=inbound_body(), headers=INBOUND_HEADERS)
    not_json = await http.post("/api/inbound", content=b"{not json",
                               headers={**INBOUND_HEADERS, "Idempotency-Key": "x",
                                        "Content-Type": "application/json"})
    empty = await post_inbound(http, "x", {**inbound_body(), "body": ""})
    bad_channel = await post_inbound(http, "x", {**inbound_body(), "channel": "email"})
    unknown_inbox = await post_inbound(http, "x", {**inbound_body(), "inbox": "nope"})
    assert (no_auth.status_code, wrong.status_code) == (401, 401)
    for response in (no_key, not_json, empty, bad_channel, unknown_inbox):
        assert response.status_code == 422, response.text
        assert isinstance(response.json()["detail"], str)
    assert await count(db, Message) == 0
    assert await count(db, Customer) == 0


async def test_oversized_body_gets_413_and_stores_nothing(http: httpx.AsyncClient,
                                                         db: AsyncSession) -> None:
    huge = {**inbound_body(), "body": "あ" * (4 * 1024 * 1024)}  # 12 MiB of UTF-8
    response = await post_inbound(http, "big", huge)
    assert response.status_code == 413
    assert response.json() == {"detail": "request body too large"}
    assert await count(db, Message) == 0


async def test_html_is_not_accepted_as_markup(http: httpx.AsyncClient, db: AsyncSession) -> None:
    body = inbound_body("<script>alert(1)</script>", name="<img src=x onerror=alert(1)>")
    result = (await post_inbound(http, "xss", body)).json()
    message = await db.get(Message, result["message_id"])
    assert message is not None and message.body_html is None
    assert message.body_text == "<script>alert(1)</script>"  # stored as text, escaped on render
