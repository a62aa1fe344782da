"""Assembling a customer's profile from customers, orders and tickets in a bounded query count."""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk import normalize
from helpdesk.auth.models import User
from helpdesk.calls.models import Call, CallPublic
from helpdesk.customers import rfm
from helpdesk.customers import service as customers
from helpdesk.customers.models import (
    CustomerIdentity,
    IdentityKind,
    OrderItemPublic,
    OrderPublic,
    table_of,
)
from helpdesk.db import utcnow
from helpdesk.profiles.models import Profile
from helpdesk.routing import service as routing
from helpdesk.tickets import service as tickets
from helpdesk.tickets.models import Ticket, TicketPublic

RECENT_ORDERS = 10
OPEN_TICKETS = 20
RECENT_CALLS = 10
CUSTOMER, ORDER, ORDER_ITEM = customers.CUSTOMER, customers.ORDER, customers.ORDER_ITEM
IDENTITY = table_of(CustomerIdentity)
_COLUMNS = [CUSTOMER.c[name] for name in (
    "name", "name_kana", "tags", "orders_count", "total_spent", "first_order_at", "last_order_at",
    "recency_score", "frequency_score", "monetary_score")]


async def profile(
    session: AsyncSession, customer_id: int, *, viewer: User | None = None,
    inbox_ids: set[int] | None = None, dormant_after_days: int = 180,
) -> Profile | None:
    """The whole profile, or None when there is no such customer: a fixed handful of queries.

    Open tickets and calls are those ``viewer`` may see or, without a viewer, those in
    ``inbox_ids`` (None: all).
    """
    return await _assemble(session, CUSTOMER.c.id == customer_id, Audience(viewer, inbox_ids),
                           dormant_after_days)


async def profile_by_phone(
    session: AsyncSession, phone: str, *, viewer: User, region: str = "JP",
    dormant_after_days: int = 180,
) -> Profile | None:
    """The profile of whoever owns a phone number (any spelling), found by the identity index."""
    e164 = normalize.phone(phone, region)
    if e164 is None:
        return None
    owner = (select(IDENTITY.c.customer_id)
             .where(IDENTITY.c.kind == IdentityKind.phone.value, IDENTITY.c.value == e164)
             .scalar_subquery())
    return await _assemble(session, CUSTOMER.c.id == owner, Audience(viewer, None),
                           dormant_after_days)


@dataclass(frozen=True)
class Audience:
    """Whose view of tickets and calls a profile shows: a viewer's, else a set of inboxes."""

    viewer: User | None
    inbox_ids: set[int] | None

    async def visible(self, session: AsyncSession) -> set[int] | None:
        if self.viewer is None:
            return self.inbox_ids
        return await routing.visible_inbox_ids(session, self.viewer)


async def _assemble(
    session: AsyncSession, which: ColumnElement[bool], audience: "Audience",
    dormant_after_days: int,
) -> Profile | None:
    # The customer and all their identities in one round trip (one row per identity).
    rows = (await session.execute(
        select(CUSTOMER.c.id, *_COLUMNS, IDENTITY.c.kind, IDENTITY.c.value)
        .select_from(CUSTOMER.outerjoin(IDENTITY, IDENTITY.c.customer_id == CUSTOMER.c.id))
        .where(which).order_by(IDENTITY.c.id))).all()
    if not rows:
        return None
    c = rows[0]._mapping
    visible = await audience.visible(session)
    customer_id: int = c["id"]
    identities = [(r.kind, r.value) for r in rows if r.kind is not None]
    now = utcnow()
    scores = ((c["recency_score"], c["frequency_score"], c["monetary_score"])
              if c["recency_score"] is not None else None)
    count, spent, last = c["orders_count"], c["total_spent"], c["last_order_at"]
    average = spent / count if count else Decimal(0)
    return Profile(
        id=customer_id, name=c["name"], name_kana=c["name_kana"],
        emails=[v for k, v in identities if k == "email"],
        phones=[v for k, v in identities if k == "phone"],
        line_ids=[v for k, v in identities if k == "line"], tags=c["tags"],
        rank=rfm.rank_label(scores, orders_count=count, last_order_at=last, now=now,
                            dormant_after_days=dormant_after_days),
        recency_score=c["recency_score"], frequency_score=c["frequency_score"],
        monetary_score=c["monetary_score"], ltv=spent, orders_count=count, total_spent=spent,
        average_order_value=average.quantize(Decimal("1.00")),
        first_order_at=c["first_order_at"], last_order_at=last,
        dormant=rfm.is_dormant(last, now=now, dormant_after_days=dormant_after_days),
        orders=await recent_orders(session, customer_id),
        open_tickets=await _open_tickets(session, customer_id, visible),
        recent_calls=await recent_calls(session, customer_id, visible),
    )


async def recent_orders(session: AsyncSession, customer_id: int) -> list[OrderPublic]:
    """The latest orders with their items, in one query."""
    latest = (select(ORDER.c.id, ORDER.c.number, ORDER.c.ordered_at, ORDER.c.status,
                     ORDER.c.total, ORDER.c.currency)
              .where(ORDER.c.customer_id == customer_id)
              .order_by(ORDER.c.ordered_at.desc(), ORDER.c.id.desc()).limit(RECENT_ORDERS)
              .subquery())
    rows = await session.execute(
        select(latest, ORDER_ITEM.c.sku, ORDER_ITEM.c.name.label("item_name"),
               ORDER_ITEM.c.quantity, ORDER_ITEM.c.unit_price)
        .select_from(latest.outerjoin(ORDER_ITEM, ORDER_ITEM.c.order_id == latest.c.id))
        .order_by(latest.c.ordered_at.desc(), latest.c.id.desc(), ORDER_ITEM.c.id))
    orders: dict[int, OrderPublic] = {}
    for order_id, number, ordered_at, status, total, currency, sku, name, qty, price in rows.all():
        order = orders.get(order_id)
        if order is None:
            order = orders[order_id] = OrderPublic(number=number, ordered_at=ordered_at,
                                                   status=status, total=total, currency=currency,
                                                   items=[])
        if sku is not None:
            order.items.append(OrderItemPublic(sku=sku, name=name, quantity=qty, unit_price=price))
    return list(orders.values())


async def _open_tickets(
    session: AsyncSession, customer_id: int, visible: set[int] | None
) -> list[TicketPublic]:
    stmt = select(Ticket).where(col(Ticket.customer_id) == customer_id,
                                col(Ticket.status).in_(tickets.OPEN_STATUSES))
    if visible is not None:
        stmt = stmt.where(col(Ticket.inbox_id).in_(visible))
    rows = list(await session.scalars(
        stmt.order_by(col(Ticket.updated_at).desc()).limit(OPEN_TICKETS)))
    return await tickets.publics(session, rows) if rows else []


async def recent_calls(
    session: AsyncSession, customer_id: int, visible: set[int] | None = None
) -> list[dict[str, Any]]:
    """The customer's latest calls (in ``visible`` inboxes) in the contract's Call shape."""
    stmt = select(Call).where(col(Call.customer_id) == customer_id)
    if visible is not None:
        stmt = stmt.where(col(Call.inbox_id).in_(visible))
    rows = await session.scalars(
        stmt.order_by(col(Call.started_at).desc(), col(Call.id).desc()).limit(RECENT_CALLS)
    )
    return [CallPublic.model_validate(c).model_dump(mode="json", by_alias=True) for c in rows]
