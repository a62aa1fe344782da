"""Finding 4: NUL bytes and lone surrogates get a 422 at the edge (or, in mail, are dropped),
never a 500 from the database: run on SQLite and on PostgreSQL, which refuses NUL in text."""

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk import boundary
from helpdesk.calls.models import Call
from helpdesk.customers.models import Order
from helpdesk.tickets.models import Message, Ticket
from tests.security.conftest import deliver, login_form
from tests.support.channels import line_message
from tests.support.database import count, fetch
from tests.support.inbound import INBOUND_HEADERS

NUL = "\x00"
SURROGATE = "\ud800"


def messenger(text: str) -> dict[str, Any]:
    return {"object": "page", "entry": [{"id": "112233445566778", "time": 1714525200000, "messaging": [{
        "sender": {"id": "6789012345678901"}, "recipient": {"id": "112233445566778"},
        "timestamp": 1714525200000, "message": {"mid": "m_nul", "text": text}}]}]}


def shopify_order(name: str) -> dict[str, Any]:
    return {"id": 4400, "name": name, "created_at": "2025-04-01T10:00:00+09:00",
            "email": "jon@example.jp", "total_price": "100.00", "currency": "JPY"}


def json_body(value: Any) -> bytes:
    # ensure_ascii writes "\u0000" and "\ud800" as escapes, as a hostile client would.
    return json.dumps(value).encode()


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
async def test_signed_webhooks_refuse_unstorable_text(chttp: httpx.AsyncClient, db: AsyncSession,
                                                      bad: str) -> None:
    responses = {
        "line": await deliver(chttp, "line", json_body(line_message(f"a{bad}b"))),
        "meta": await deliver(chttp, "meta", json_body(messenger(f"a{bad}b"))),
        "shopify": await deliver(chttp, "shopify", json_body(shopify_order(f"#1{bad}"))),
        "cti": await deliver(chttp, "cti", json_body({
            "event": "newCall", "from": "0312345678", "to": "05012345678", "direction": "in",
            "callId": "c1", "user": f"op{bad}"})),
    }
    assert {name: r.status_code for name, r in responses.items()} == dict.fromkeys(responses, 422)
    assert all("NUL" in r.json()["detail"] for r in responses.values())
    assert await count(db, Message) == 0 and await count(db, Order) == 0 and await count(db, Call) == 0


async def test_form_bodies_and_query_strings_refuse_nul(chttp: httpx.AsyncClient, db: AsyncSession,
                                                        operator: dict[str, str]) -> None:
    cti_form = await chttp.post("/telephony/cti/cti-token-for-security-tests",
                                content=b"event=newCall&from=03%0012345678&to=05012345678&direction=in&callId=c2",
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
    token_form = await chttp.post("/api/auth/token", data={"email": f"a{NUL}@example.com", "password": "x"})
    fields = await login_form(chttp)
    login = await chttp.post("/login", data={**fields, "email": f"a{NUL}@example.com", "password": "x"})
    search_api = await chttp.get("/api/customers", params={"q": f"山田{NUL}"}, headers=operator)
    search_page = await chttp.get("/customers", params={"q": f"山田{NUL}"}, headers=operator)
    codes = [r.status_code for r in (cti_form, token_form, login, search_api, search_page)]
    assert codes == [422] * 5
    assert await count(db, Call) == 0


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
async def test_json_apis_refuse_unstorable_text(chttp: httpx.AsyncClient, db: AsyncSession, bad: str) -> None:
    token = await chttp.post("/api/auth/token", content=json_body(
        {"email": f"a{bad}@example.com", "password": "x"}), headers={"Content-Type": "application/json"})
    inbound = await chttp.post("/api/inbound", content=json_body(
        {"from": {"name": f"山田{bad}", "email": "taro@example.jp"}, "subject": "s", "body": f"x{bad}"}),
        headers={**INBOUND_HEADERS, "Idempotency-Key": "k-nul", "Content-Type": "application/json"})
    assert (token.status_code, inbound.status_code) == (422, 422)
    assert await count(db, Ticket) == 0


async def test_mail_with_nul_is_kept_without_it(chttp: httpx.AsyncClient, db: AsyncSession) -> None:
    raw = (b"From: =?utf-8?q?Ev=00e?= <eve@example.com>\r\nTo: support@shop.example\r\n"
           b"Subject: =?utf-8?q?Hel=00lo?=\r\nMessage-ID: <nul-1@example.com>\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n\r\nbo\x00dy\r\n")
    response = await chttp.post("/webhooks/email", content=raw,
                                headers={**INBOUND_HEADERS, "Content-Type": "message/rfc822"})
    assert response.status_code == 201, response.text
    message = (await fetch(db, select(Message)))[0]
    ticket = (await fetch(db, select(Ticket)))[0]
    assert (ticket.subject, message.body_text) == ("Hello", "body")


def test_a_surrogate_pair_is_text_and_a_lone_half_is_not() -> None:
    assert boundary.json_problem(json.dumps({"t": "😀"}).encode()) is None
    assert boundary.json_problem(b'{"t": "\\ud83d"}') is not None
    assert boundary.storable("a\x00b\udc00") == "ab\ufffd"
