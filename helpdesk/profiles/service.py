"""Assembling a customer's profile from customers, orders and tickets in a bounded query count."""

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.auth.models import User
from helpdesk.calls.models import Call, CallPublic
from helpdesk.customers import service as customers
from helpdesk.customers.models import Customer, Order, OrderItem, OrderItemPublic, OrderPublic
from helpdesk.db import utcnow
from helpdesk.profiles.models import Profile
from helpdesk.routing import service as routing
from helpdesk.tickets import service as tickets
from helpdesk.tickets.models import Ticket, TicketPublic

RECENT_ORDERS = 10
OPEN_TICKETS = 20
RECENT_CALLS = 10


async def profile(
    session: AsyncSession, customer_id: int, *, viewer: User | None = None,
    inbox_ids: set[int] | None = None, dormant_after_days: int = 180,
) -> Profile | None:
    """The whole profile, or None when there is no such customer.

    Open tickets are those ``viewer`` may see or, without a viewer, those in ``inbox_ids``.
    """
    customer = await session.get(Customer, customer_id)
    if customer is None:
        return None
    summary = (await customers.summaries(session, [customer_id]))[customer_id]
    orders = await recent_orders(session, customer_id)
    visible = await routing.visible_inbox_ids(session, viewer) if viewer is not None else inbox_ids
    open_tickets = await _open_tickets(session, customer_id, visible)
    calls = await recent_calls(session, customer_id, visible)
    average = (customer.total_spent / customer.orders_count) if customer.orders_count else Decimal(0)
    dormant = customer.last_order_at is not None and (
        utcnow() - customer.last_order_at > timedelta(days=dormant_after_days))
    return Profile(
        **summary.model_dump(exclude={"total_spent", "orders_count", "last_order_at", "rank"}),
        tags=customer.tags, rank=customer.rank, recency_score=customer.recency_score,
        frequency_score=customer.frequency_score, monetary_score=customer.monetary_score,
        ltv=customer.total_spent, orders_count=customer.orders_count,
        total_spent=customer.total_spent, average_order_value=average.quantize(Decimal("1.00")),
        first_order_at=customer.first_order_at, last_order_at=customer.last_order_at,
        dormant=dormant, orders=orders, open_tickets=open_tickets, recent_calls=calls,
    )


async def recent_orders(session: AsyncSession, customer_id: int) -> list[OrderPublic]:
    """The latest orders with their items: two queries."""
    orders = list(await session.scalars(
        select(Order).where(col(Order.customer_id) == customer_id)
        .order_by(col(Order.ordered_at).desc(), col(Order.id).desc()).limit(RECENT_ORDERS)
    ))
    items: dict[int, list[OrderItemPublic]] = defaultdict(list)
    rows = await session.execute(
        select(col(OrderItem.order_id), col(OrderItem.sku), col(OrderItem.name),
               col(OrderItem.quantity), col(OrderItem.unit_price))
        .where(col(OrderItem.order_id).in_([o.id for o in orders])).order_by(col(OrderItem.id))
    )
    for order_id, sku, name, quantity, unit_price in rows.all():
        items[order_id].append(OrderItemPublic(sku=sku, name=name, quantity=quantity,
                                               unit_price=unit_price))
    return [OrderPublic(number=o.number, ordered_at=o.ordered_at, status=o.status, total=o.total,
                        currency=o.currency, items=items.get(o.id or 0, [])) for o in orders]


async def _open_tickets(
    session: AsyncSession, customer_id: int, visible: set[int] | None
) -> list[TicketPublic]:
    stmt = select(Ticket).where(col(Ticket.customer_id) == customer_id,
                                col(Ticket.status).in_(tickets.OPEN_STATUSES))
    if visible is not None:
        stmt = stmt.where(col(Ticket.inbox_id).in_(visible))
    rows = list(await session.scalars(
        stmt.order_by(col(Ticket.updated_at).desc()).limit(OPEN_TICKETS)))
    return await tickets.publics(session, rows)


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
