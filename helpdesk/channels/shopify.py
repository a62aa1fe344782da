"""Shopify order webhooks: verify the HMAC of the raw body, parse, hand the order to customers.

Shopify retries for hours and may deliver an update before an older one: the delivery id makes a
retry a no-op, the order id makes the upsert idempotent, and ``updated_at`` keeps the newest.
"""

import base64
import hashlib
import hmac
import json
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from helpdesk import normalize
from helpdesk.config import SettingsDep
from helpdesk.customers import orders as customer_orders
from helpdesk.customers.models import IncomingOrder, OrderLine
from helpdesk.db import SessionDep
from helpdesk.errors import BadInput, NotFound, Unauthorized
from helpdesk.receipts import service as receipts

router = APIRouter(tags=["channels"])
SOURCE = "shopify"


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ShopifyAddress(_Loose):
    name: str | None = Field(default=None, max_length=300)
    first_name: str | None = Field(default=None, max_length=200)
    last_name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=60)
    country_code: str | None = Field(default=None, max_length=2)


class ShopifyCustomer(ShopifyAddress):
    email: str | None = Field(default=None, max_length=254)
    default_address: ShopifyAddress | None = None


class ShopifyLineItem(_Loose):
    sku: str | None = Field(default=None, max_length=255)
    title: str | None = Field(default=None, max_length=1000)
    name: str | None = Field(default=None, max_length=1000)
    quantity: int = Field(default=1, ge=0, le=1_000_000)
    price: Decimal = Field(default=Decimal(0), ge=0, lt=Decimal("1e12"))


class ShopifyOrder(_Loose):
    id: int
    name: str | None = Field(default=None, max_length=64)
    order_number: int | None = None
    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=60)
    created_at: datetime
    updated_at: datetime | None = None
    cancelled_at: datetime | None = None
    financial_status: str | None = Field(default=None, max_length=40)
    total_price: Decimal = Field(default=Decimal(0), ge=0, lt=Decimal("1e12"))
    currency: str = Field(default="JPY", min_length=3, max_length=3)
    customer: ShopifyCustomer | None = None
    billing_address: ShopifyAddress | None = None
    shipping_address: ShopifyAddress | None = None
    line_items: list[ShopifyLineItem] = Field(default_factory=list, max_length=5000)


class WebhookResult(BaseModel):
    duplicate: bool
    order_id: int | None = None
    result: str | None = None


def verify(secret: str, body: bytes, signature: str | None) -> None:
    """401 unless ``signature`` is the base64 HMAC-SHA256 of ``body`` under ``secret``."""
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    if not signature or not hmac.compare_digest(expected, signature.strip().encode()):
        raise Unauthorized("invalid Shopify HMAC")


def parse(body: bytes) -> IncomingOrder:
    """The order a webhook body describes; 422 when it is not one."""
    try:
        order = ShopifyOrder.model_validate(json.loads(body))
    except (ValueError, ValidationError) as exc:
        raise BadInput(f"not a Shopify order: {str(exc).splitlines()[0]}") from exc
    person = order.customer or ShopifyCustomer()
    addresses = [a for a in (order.billing_address, person.default_address, order.shipping_address)
                 if a is not None]
    country = next((c for a in addresses if (c := normalize.region(a.country_code))), None)
    return IncomingOrder(
        source=SOURCE, number=order.name or str(order.order_number or order.id),
        external_id=str(order.id), ordered_at=order.created_at,
        status="cancelled" if order.cancelled_at else (order.financial_status or ""),
        total=order.total_price, currency=order.currency.upper(),
        remote_updated_at=order.updated_at,
        items=[OrderLine(sku=i.sku or "", name=i.name or i.title or "", quantity=i.quantity,
                         unit_price=i.price) for i in order.line_items],
        email=order.email or person.email,
        phone=order.phone or person.phone or next((a.phone for a in addresses if a.phone), None),
        name=_name(person, country) or next((n for a in addresses if (n := _name(a, country))), None),
        region=country,
    )


def _name(who: ShopifyAddress, country: str | None) -> str | None:
    """The name in the order its country writes names: family first in Japan, given first in
    the US (``Bob Norman``)."""
    return normalize.person_name(who.last_name, who.first_name, country=country) or (
        normalize.kept(who.name))


@router.post("/webhooks/shopify/orders", response_model=WebhookResult)
async def shopify_orders(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    x_shopify_hmac_sha256: Annotated[str | None, Header()] = None,
    x_shopify_event_id: Annotated[str | None, Header(max_length=100)] = None,
    x_shopify_webhook_id: Annotated[str | None, Header(max_length=100)] = None,
) -> WebhookResult:
    """An order created or updated in Shopify; retried deliveries change nothing."""
    if not settings.shopify_webhook_secret:
        raise NotFound("Shopify is not configured")
    body = await request.body()
    verify(settings.shopify_webhook_secret, body, x_shopify_hmac_sha256)
    incoming = parse(body)
    delivery = x_shopify_event_id or x_shopify_webhook_id
    if delivery and not await receipts.first_delivery(session, provider=SOURCE, delivery_id=delivery):
        return WebhookResult(duplicate=True)
    outcome = await customer_orders.record_order(session, incoming, region=settings.default_region,
                                           dormant_after_days=settings.dormant_after_days)
    await session.commit()
    return WebhookResult(duplicate=False, order_id=outcome.order_id, result=outcome.result)
