"""POST /webhooks/shopify/orders: HMAC, retries, idempotent upserts, hostile bodies."""

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from helpdesk.customers.models import Customer, CustomerIdentity, Order, OrderItem
from helpdesk.receipts.models import DeliveryReceipt
from tests.support.server import LiveServer, make_settings

SECRET = "shpss_test_webhook_secret"


@pytest.fixture(scope="module")
def shopify_server(database_url: str) -> Iterator[LiveServer]:
    with LiveServer(make_settings(database_url, shopify_webhook_secret=SECRET)) as live:
        yield live


@pytest.fixture
async def shop(shopify_server: LiveServer, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=shopify_server.url, timeout=30) as client:
        yield client


def order_payload(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": 820982911946154508, "name": "#9999", "order_number": 9999,
        "email": "Jon@Example.JP", "created_at": "2025-04-01T10:00:00+09:00",
        "updated_at": "2025-04-01T10:05:00+09:00", "financial_status": "paid",
        "total_price": "3980.00", "currency": "JPY", "cancelled_at": None,
        "customer": {"id": 115310627314723954, "email": "jon@example.jp", "phone": "+819012340000",
                     "first_name": "太郎", "last_name": "本田"},
        "billing_address": {"first_name": "太郎", "last_name": "本田", "phone": "090-1234-0000"},
        "line_items": [{"sku": "TEA-001", "title": "有機煎茶", "name": "有機煎茶 100g", "quantity": 2,
                        "price": "1990.00"}],
    }
    payload.update(changes)
    return payload


def signed(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


async def deliver(client: httpx.AsyncClient, payload: dict[str, Any] | bytes, *,
                  event_id: str | None = "evt-1", signature: str | None = None,
                  header: str = "X-Shopify-Event-Id") -> httpx.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "X-Shopify-Topic": "orders/create"}
    headers["X-Shopify-Hmac-Sha256"] = signature if signature is not None else signed(body)
    if event_id:
        headers[header] = event_id
    return await client.post("/webhooks/shopify/orders", content=body, headers=headers)


async def count(db: AsyncSession, model: type) -> int:
    await db.rollback()
    value = int(await db.scalar(select(func.count()).select_from(model)) or 0)
    await db.rollback()
    return value


async def test_an_order_webhook_stores_customer_order_and_items(shop: httpx.AsyncClient,
                                                                db: AsyncSession) -> None:
    response = await deliver(shop, order_payload())
    assert response.status_code == 200, response.text
    assert response.json()["duplicate"] is False and response.json()["result"] == "created"
    await db.rollback()
    order = await db.scalar(select(Order))
    assert order is not None
    assert (order.source, order.number, order.external_id, order.total) == (
        "shopify", "#9999", "820982911946154508", 3980)
    customer = await db.get(Customer, order.customer_id)
    assert customer is not None and customer.name == "本田 太郎"
    assert (customer.orders_count, customer.total_spent, customer.rank) == (1, 3980, "休眠")
    items = list(await db.scalars(select(OrderItem)))
    assert [(i.sku, i.name, i.quantity) for i in items] == [("TEA-001", "有機煎茶 100g", 2)]
    await db.rollback()


async def test_wrong_or_missing_hmac_is_401_and_stores_nothing(shop: httpx.AsyncClient,
                                                              db: AsyncSession) -> None:
    body = json.dumps(order_payload()).encode()
    wrong_secret = await deliver(shop, body, signature=signed(body, "another-secret"))
    tampered = await deliver(shop, body.replace(b"3980.00", b"1.00"), signature=signed(body))
    missing = await shop.post("/webhooks/shopify/orders", content=body,
                              headers={"Content-Type": "application/json"})
    garbage = await deliver(shop, body, signature="not base64 at all")
    for response in (wrong_secret, tampered, missing, garbage):
        assert response.status_code == 401, response.text
        assert response.json() == {"detail": "invalid Shopify HMAC"}
    assert await count(db, Order) == 0
    assert await count(db, Customer) == 0
    assert await count(db, DeliveryReceipt) == 0


async def test_the_same_delivery_twice_is_one_order(shop: httpx.AsyncClient, db: AsyncSession) -> None:
    first = await deliver(shop, order_payload(), event_id="wh-7", header="X-Shopify-Webhook-Id")
    again = await deliver(shop, order_payload(), event_id="wh-7", header="X-Shopify-Webhook-Id")
    assert first.json()["duplicate"] is False
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert await count(db, Order) == 1
    assert await count(db, OrderItem) == 1
    assert await count(db, DeliveryReceipt) == 1


async def test_concurrent_retries_and_new_delivery_ids_still_make_one_order(
        shop: httpx.AsyncClient, db: AsyncSession) -> None:
    responses = await asyncio.gather(*(deliver(shop, order_payload(), event_id="evt-same")
                                       for _ in range(8)))
    assert sorted(r.json()["duplicate"] for r in responses) == [False] + [True] * 7
    # Another delivery of the same order (a new event id) upserts by the Shopify order id.
    other = await deliver(shop, order_payload(), event_id="evt-other")
    assert other.json() == {"duplicate": False, "order_id": other.json()["order_id"],
                            "result": "unchanged"}
    assert await count(db, Order) == 1
    assert await count(db, Customer) == 1


async def test_updates_apply_and_older_deliveries_never_overwrite_newer(
        shop: httpx.AsyncClient, db: AsyncSession) -> None:
    await deliver(shop, order_payload(), event_id="e1")
    cancelled = order_payload(cancelled_at="2025-04-02T09:00:00+09:00",
                              updated_at="2025-04-02T09:00:00+09:00", financial_status="voided")
    assert (await deliver(shop, cancelled, event_id="e2")).json()["result"] == "updated"
    stale = order_payload(updated_at="2025-04-01T10:30:00+09:00", total_price="5000.00")
    assert (await deliver(shop, stale, event_id="e3")).json()["result"] == "unchanged"
    await db.rollback()
    order = await db.scalar(select(Order))
    assert order is not None and order.status == "cancelled" and order.total == 3980
    customer = await db.get(Customer, order.customer_id)
    assert customer is not None and (customer.orders_count, customer.total_spent) == (0, 0)
    assert customer.rank is None
    await db.rollback()


async def test_hostile_bodies_with_a_valid_hmac_are_422_and_store_nothing(
        shop: httpx.AsyncClient, db: AsyncSession) -> None:
    for body in (b"{not json", b"[]", json.dumps({"name": "#1"}).encode(),
                 json.dumps(order_payload(total_price="-5")).encode(),
                 json.dumps(order_payload(created_at="yesterday")).encode(),
                 json.dumps(order_payload(line_items=[{"quantity": "lots"}])).encode()):
        response = await deliver(shop, body, event_id=None)
        assert response.status_code == 422, (body, response.text)
        assert isinstance(response.json()["detail"], str)
    huge = json.dumps(order_payload(note="x" * (11 * 1024 * 1024))).encode()
    assert (await deliver(shop, huge)).status_code == 413
    assert await count(db, Order) == 0
    assert await count(db, DeliveryReceipt) == 0


async def test_unset_secret_means_404(http: httpx.AsyncClient, db: AsyncSession) -> None:
    body = json.dumps(order_payload()).encode()
    response = await deliver(http, body)
    assert response.status_code == 404
    assert await count(db, Order) == 0


async def test_a_us_order_keeps_its_number_and_the_name_as_written(shop: httpx.AsyncClient,
                                                                   db: AsyncSession) -> None:
    address = {"first_name": "Bob", "last_name": "Norman", "phone": "555-625-1199",
               "country_code": "US", "name": "Bob Norman"}
    payload = order_payload(id=450789469, name="#1001", email="bob.norman@example.com",
                            currency="USD", total_price="598.94",
                            customer={"id": 207119551, "email": "bob.norman@example.com",
                                      "first_name": "Bob", "last_name": "Norman", "phone": None},
                            billing_address=address, shipping_address=address)
    response = await deliver(shop, payload, event_id="evt-us")
    assert response.status_code == 200, response.text
    await db.rollback()
    order = await db.scalar(select(Order).where(Order.external_id == "450789469"))
    assert order is not None
    customer = await db.get(Customer, order.customer_id)
    assert customer is not None and customer.name == "Bob Norman"  # not "Norman Bob"
    phones = list(await db.scalars(select(CustomerIdentity.value).where(
        CustomerIdentity.customer_id == customer.id, CustomerIdentity.kind == "phone")))
    assert phones == ["+15556251199"]  # the address's country, not DEFAULT_REGION=JP
    await db.rollback()
