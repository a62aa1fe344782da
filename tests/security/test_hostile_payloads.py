"""Finding 8: signed but hostile payloads (huge numbers, deep nesting) are refused with 422 and
store nothing; two Shopify orders sharing a name are two orders, not a 500."""

import copy
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.calls.models import Call
from helpdesk.customers.models import Order
from helpdesk.tickets.models import Message
from tests.security.conftest import deliver
from tests.security.test_input_boundary import messenger, shopify_order
from tests.support.channels import line_message
from tests.support.database import count, fetch

DEEP = b"[" * 100_000 + b"]" * 100_000
HUGE = 2**70


def cti_call(**changes: Any) -> dict[str, Any]:
    return {"event": "newCall", "from": "0312345678", "to": "05012345678", "direction": "in",
            "callId": "c-hostile", **changes}


def line_with(path: list[str], value: Any) -> dict[str, Any]:
    payload = line_message("hi")
    target = payload["events"][0]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return payload


def meta_with(key: str, value: Any) -> dict[str, Any]:
    payload = messenger("hi")
    payload["entry"][0]["messaging"][0][key] = value
    return payload


@pytest.mark.parametrize("provider", ["line", "meta", "shopify", "cti"])
async def test_json_nested_100000_deep_is_422(chttp: httpx.AsyncClient, db: AsyncSession,
                                              provider: str) -> None:
    wrapped = b'{"events": ' + DEEP + b"}"
    response = await deliver(chttp, provider, wrapped)
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == "JSON nested too deeply"


async def test_deep_json_on_the_unauthenticated_token_endpoint_is_422(chttp: httpx.AsyncClient) -> None:
    response = await chttp.post("/api/auth/token", content=b'{"email": ' + DEEP + b"}",
                                headers={"Content-Type": "application/json"})
    assert response.status_code == 422


async def test_numbers_past_2_to_the_63_are_422(chttp: httpx.AsyncClient, db: AsyncSession) -> None:
    responses = [
        await deliver(chttp, "line", line_with(["timestamp"], HUGE)),
        await deliver(chttp, "meta", meta_with("timestamp", HUGE)),
        await deliver(chttp, "shopify", {**shopify_order("#1"), "id": HUGE}),
        await deliver(chttp, "shopify", {**shopify_order("#1"), "order_number": -HUGE, "name": None}),
        await deliver(chttp, "cti", cti_call(callId=HUGE)),
    ]
    assert [r.status_code for r in responses] == [422] * len(responses), [r.text for r in responses]
    assert all(r.json()["detail"] == "a number is out of range" for r in responses)
    assert await count(db, Message) == 0 and await count(db, Order) == 0 and await count(db, Call) == 0


@pytest.mark.parametrize("stamp", [2**62, 10**15, "1e400"], ids=["2^62", "1e15", "inf"])
async def test_timestamps_no_calendar_holds_are_422(chttp: httpx.AsyncClient, db: AsyncSession,
                                                    stamp: int | str) -> None:
    whatsapp = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp", "metadata": {"phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": "Hanako"}, "wa_id": "819012345678"}],
            "messages": [{"from": "819012345678", "id": "wamid.X", "timestamp": str(stamp),
                          "type": "text", "text": {"body": "hi"}}]}}]}]}
    responses = [await deliver(chttp, "meta", whatsapp)]
    if isinstance(stamp, int):
        responses += [await deliver(chttp, "line", line_with(["timestamp"], stamp)),
                      await deliver(chttp, "meta", meta_with("timestamp", stamp))]
    assert [r.status_code for r in responses] == [422] * len(responses), [r.text for r in responses]
    assert await count(db, Message) == 0


async def test_a_huge_line_message_id_is_422(chttp: httpx.AsyncClient, db: AsyncSession) -> None:
    payload = copy.deepcopy(line_message("hi"))
    payload["events"][0]["message"]["id"] = HUGE
    response = await deliver(chttp, "line", payload)
    assert response.status_code == 422
    assert await count(db, Message) == 0


async def test_two_shopify_orders_with_one_name_are_two_orders(chttp: httpx.AsyncClient,
                                                               db: AsyncSession) -> None:
    first = await deliver(chttp, "shopify", {**shopify_order("#1001"), "id": 501})
    second = await deliver(chttp, "shopify", {**shopify_order("#1001"), "id": 502})
    assert (first.status_code, second.status_code) == (200, 200), second.text
    orders = await fetch(db, select(Order))
    assert sorted(o.external_id for o in orders) == ["501", "502"]


def test_numbers_inside_the_range_pass_the_boundary() -> None:
    from helpdesk import boundary

    assert boundary.json_problem(json.dumps({"id": 2**63 - 1, "t": 1.5e300}).encode()) is None
    assert boundary.json_problem(json.dumps({"id": 2**63}).encode()) == "a number is out of range"
    assert boundary.json_problem(b'{"x": 1e400}') == "a number is out of range"


async def test_ids_past_a_database_integer_are_never_a_500(chttp: httpx.AsyncClient,
                                                           operator: dict[str, str]) -> None:
    # PostgreSQL's INTEGER ids end at 2**31 - 1; the driver refuses larger ones before the query.
    big = 355687428096000
    responses = [await chttp.get(f"/api/tickets/{big}", headers=operator),
                 await chttp.get(f"/api/customers/{big}", headers=operator),
                 await chttp.get("/api/tickets", params={"customer_id": big}, headers=operator),
                 await chttp.post(f"/api/calls/{big}/done", headers=operator)]
    assert all(r.status_code in (200, 404, 422) for r in responses), [r.text for r in responses]
