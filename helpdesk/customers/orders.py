"""Customers' orders: one order recorded from a webhook, and the purchase figures kept from them.

The purchase count, total and first/last dates on a customer row are recounted from the orders;
an import recounts in batches under a recount row it keeps beating.
"""

import dataclasses
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache

from sqlalchemy import ColumnElement, Subquery, case, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk import normalize
from helpdesk.config import DEFAULT_REGION
from helpdesk.customers import rfm
from helpdesk.customers.models import IncomingOrder, Order, OrderLine, PurchaseRecount, table_of
from helpdesk.customers.service import CHUNK, CUSTOMER, ORDER, ORDER_ITEM, identities_of, reindex, resolve
from helpdesk.db import utcnow
from helpdesk.storage.locks import serialize_on
from helpdesk.storage.sessions import dialect_of

# Words in a status that make an order no purchase (left out of counts, totals and ranks), as
# carts spell them: 取消 covers 注文取消し and 受注取消, 取り消 covers 取り消し and 取り消し済み.
_NOT_PURCHASE_WORDS = ("cancel", "void", "refund", "return", "取消", "取り消", "取りけし",
                       "キャンセル", "返品", "返金", "払い戻", "払戻")
# ... unless only part of it was: a partly refunded order is still a purchase.
_PARTLY_WORDS = ("partial", "一部")


RECOUNT = table_of(PurchaseRecount)
# An import beats its recount row with every batch, seconds apart: a row this old is orphaned.
RECOUNT_ABANDONED_AFTER = timedelta(minutes=10)


def _purchases_by_customer(orders: ColumnElement[bool]) -> Subquery:
    """Per customer, the count, sum and first and last dates of the ``orders`` that are
    purchases (cancelled and refunded ones are not)."""
    return (select(ORDER.c.customer_id, func.count().label("n"),
                   func.sum(ORDER.c.total).label("spent"),
                   func.min(ORDER.c.ordered_at).label("first"),
                   func.max(ORDER.c.ordered_at).label("last"))
            .where(orders, ORDER.c.is_purchase)
            .group_by(ORDER.c.customer_id).subquery())


async def _lock_customers(session: AsyncSession, ids: ColumnElement[bool]) -> None:
    """On PostgreSQL, lock the customers matching ``ids`` in id order (no deadlocks), so that
    sums read afterwards include every order committed before the lock was had."""
    if dialect_of(session) == "postgresql":
        await session.execute(select(CUSTOMER.c.id).where(ids).order_by(CUSTOMER.c.id)
                              .with_for_update())


async def refresh_aggregates(session: AsyncSession, customer_ids: Iterable[int]) -> None:
    """Recount orders, total spent and first/last order of these customers from their orders."""
    wanted = sorted(set(customer_ids))
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start:start + CHUNK]
        await _lock_customers(session, CUSTOMER.c.id.in_(chunk))
        await session.execute(update(CUSTOMER).where(CUSTOMER.c.id.in_(chunk)).values(
            orders_count=0, total_spent=0, first_order_at=None, last_order_at=None,
            updated_at=utcnow()))
        agg = _purchases_by_customer(ORDER.c.customer_id.in_(chunk))
        await session.execute(update(CUSTOMER).where(CUSTOMER.c.id == agg.c.customer_id).values(
            orders_count=agg.c.n, total_spent=agg.c.spent, first_order_at=agg.c.first,
            last_order_at=agg.c.last))


async def add_purchases(session: AsyncSession, order_ids: Sequence[int]) -> None:
    """Count newly inserted orders into their customers' aggregates without rereading older
    orders: one statement per few thousand orders, summed inside the database.

    Imports add thousands of orders a batch; recounting every touched customer's whole history
    each batch would make an import slower the more orders the shop has.
    """
    for start in range(0, len(order_ids), CHUNK):
        chunk = order_ids[start:start + CHUNK]
        await _lock_customers(session, CUSTOMER.c.id.in_(
            select(ORDER.c.customer_id).where(ORDER.c.id.in_(chunk))))
        added = _purchases_by_customer(ORDER.c.id.in_(chunk))
        first, last = CUSTOMER.c.first_order_at, CUSTOMER.c.last_order_at
        await session.execute(update(CUSTOMER).where(CUSTOMER.c.id == added.c.customer_id).values(
            orders_count=CUSTOMER.c.orders_count + added.c.n,
            total_spent=CUSTOMER.c.total_spent + added.c.spent,
            first_order_at=case((or_(first.is_(None), first > added.c.first), added.c.first),
                                else_=first),
            last_order_at=case((or_(last.is_(None), last < added.c.last), added.c.last), else_=last),
            updated_at=utcnow()))


async def open_recount(session: AsyncSession) -> int:
    """Start counting later every order added from now on (see ``PurchaseRecount``); its id.

    Orders added after this reads the highest order id get higher ids, on SQLite (one writer)
    and on PostgreSQL (a sequence only grows).
    """
    await settle_abandoned_recounts(session)
    after = await session.scalar(select(func.max(ORDER.c.id)))
    result = await session.execute(insert(RECOUNT).values(after_order_id=after or 0, beat_at=utcnow())
                                   .returning(RECOUNT.c.id))
    return int(result.scalar_one())


async def beat_recount(session: AsyncSession, recount_id: int) -> None:
    """The import behind ``recount_id`` is alive (each batch says so in its transaction)."""
    await session.execute(update(RECOUNT).where(RECOUNT.c.id == recount_id).values(beat_at=utcnow()))


async def recount_customers(session: AsyncSession, recount_id: int) -> list[int] | None:
    """The customers of every order added since ``open_recount`` (None: settled already)."""
    after = await session.scalar(select(RECOUNT.c.after_order_id).where(RECOUNT.c.id == recount_id))
    if after is None:
        return None
    found = await session.scalars(select(ORDER.c.customer_id).where(ORDER.c.id > after).distinct())
    return sorted(found.all())


async def close_recount(session: AsyncSession, recount_id: int) -> None:
    await session.execute(delete(RECOUNT).where(RECOUNT.c.id == recount_id))


async def settle_recount(session: AsyncSession, recount_id: int) -> None:
    """Recount the customers of every order added since ``open_recount``, and close it, in the
    session's transaction (an import settles its own in short transactions instead)."""
    customer_ids = await recount_customers(session, recount_id)
    if customer_ids is not None:
        await refresh_aggregates(session, customer_ids)
        await close_recount(session, recount_id)


async def settle_abandoned_recounts(session: AsyncSession, *, now: datetime | None = None) -> int:
    """Settle the recounts of imports that stopped beating (they died); how many there were."""
    cutoff = (now or utcnow()) - RECOUNT_ABANDONED_AFTER
    abandoned = (await session.scalars(select(RECOUNT.c.id).where(RECOUNT.c.beat_at < cutoff)
                                       .order_by(RECOUNT.c.id))).all()
    for recount_id in abandoned:
        await settle_recount(session, recount_id)
    return len(abandoned)


@lru_cache(maxsize=4096)
def is_purchase(status: str) -> bool:
    """Whether an order of ``status`` counts as a purchase (not cancelled, returned, refunded)."""
    key = normalize.nfkc(status).lower()
    return not any(w in key for w in _NOT_PURCHASE_WORDS) or any(w in key for w in _PARTLY_WORDS)


def order_digest(order: IncomingOrder) -> str:
    """A fingerprint of what an order says, so an unchanged order is not written again."""
    parts = [order.number, order.external_id or "", utc_iso(order.ordered_at), order.status,
             _cents(order.total), order.currency]
    parts.extend(f"{i.sku}\x1f{i.name}\x1f{i.quantity}\x1f{_cents(i.unit_price)}" for i in order.items)
    if order.shipping or order.fees or order.discount:  # orders without keep their fingerprints
        parts.append(f"{_cents(order.shipping)}\x1f{_cents(order.fees)}\x1f{_cents(order.discount)}")
    return hashlib.blake2b("\x1e".join(parts).encode(), digest_size=16).hexdigest()


def utc_iso(moment: datetime) -> str:
    """ISO 8601 in UTC (most moments arrive in UTC already: no conversion then)."""
    return (moment if moment.tzinfo is UTC else moment.astimezone(UTC)).isoformat()


def _cents(amount: Decimal) -> str:
    """``amount`` with two decimals; imported amounts have them already, and str() is cheaper."""
    text = str(amount)
    return text if text[-3:-2] == "." and "E" not in text else f"{amount:.2f}"


@dataclass(frozen=True)
class OrderOutcome:
    order_id: int
    customer_id: int
    result: str  # created | updated | unchanged


async def record_order(
    session: AsyncSession, incoming: IncomingOrder, *, region: str = DEFAULT_REGION,
    dormant_after_days: int = 180,
) -> OrderOutcome:
    """Create or update one order (webhooks): customer resolved, aggregates and rank kept current."""
    await serialize_on(session, f"order:{incoming.source}:{incoming.external_id or incoming.number}")
    existing = await _existing_order(session, incoming)
    incoming = await _unclaimed_number(session, incoming, existing)
    if existing is not None and _is_older(incoming, existing):
        assert existing.id is not None
        return OrderOutcome(existing.id, existing.customer_id, "unchanged")
    customer_id = await _order_customer(session, incoming, existing, region)
    digest = order_digest(incoming)
    if existing is not None and existing.digest == digest and existing.customer_id == customer_id:
        assert existing.id is not None
        return OrderOutcome(existing.id, customer_id, "unchanged")
    order = existing or Order(customer_id=customer_id, source=incoming.source,
                              number=incoming.number, ordered_at=incoming.ordered_at)
    touched = {customer_id, order.customer_id}
    _apply(order, incoming, customer_id=customer_id, digest=digest)
    session.add(order)
    await session.flush()
    assert order.id is not None
    await _replace_items(session, order.id, incoming.items)
    await refresh_aggregates(session, touched)
    await rfm.rescore(session, touched, dormant_after_days=dormant_after_days)
    return OrderOutcome(order.id, customer_id, "updated" if existing else "created")


async def _existing_order(session: AsyncSession, incoming: IncomingOrder) -> Order | None:
    key = (col(Order.external_id) == incoming.external_id if incoming.external_id
           else col(Order.number) == incoming.number)
    return await session.scalar(select(Order).where(col(Order.source) == incoming.source, key))


async def _unclaimed_number(session: AsyncSession, incoming: IncomingOrder,
                            existing: Order | None) -> IncomingOrder:
    """``incoming``, its number suffixed with the platform's id when another order holds it.

    The platform's id says which order a webhook is about; its display number need not be
    unique (Shopify lets a shop rename its order prefix), and a clash must not be a 500.
    """
    if not incoming.external_id or (existing is not None and existing.number == incoming.number):
        return incoming
    await serialize_on(session, f"order-number:{incoming.source}:{incoming.number}")
    holder = (await session.execute(select(col(Order.external_id)).where(
        col(Order.source) == incoming.source, col(Order.number) == incoming.number))).first()
    if holder is None or holder[0] == incoming.external_id:
        return incoming
    suffix = f"/{incoming.external_id}"
    return dataclasses.replace(incoming, number=incoming.number[:64 - len(suffix)] + suffix)


def _is_older(incoming: IncomingOrder, existing: Order) -> bool:
    return (incoming.remote_updated_at is not None and existing.remote_updated_at is not None
            and incoming.remote_updated_at < existing.remote_updated_at)


async def _order_customer(
    session: AsyncSession, incoming: IncomingOrder, existing: Order | None, region: str
) -> int:
    found = identities_of(email=incoming.email, phone=incoming.phone,
                          region=incoming.region or region)
    if not found and existing is not None:
        return existing.customer_id
    customer = await resolve(session, identities=found, name=incoming.name, region=region)
    kana = normalize.kept(incoming.name_kana)
    if kana and not customer.name_kana:
        customer.name_kana = kana
        await reindex(session, customer, region=region)
    assert customer.id is not None
    return customer.id


def _apply(order: Order, incoming: IncomingOrder, *, customer_id: int, digest: str) -> None:
    order.customer_id = customer_id
    order.number = incoming.number
    order.external_id = incoming.external_id
    order.ordered_at = incoming.ordered_at
    order.status = incoming.status[:40]
    order.is_purchase = is_purchase(incoming.status)
    order.total = incoming.total
    order.shipping, order.fees, order.discount = incoming.shipping, incoming.fees, incoming.discount
    order.currency = incoming.currency[:3]
    order.remote_updated_at = incoming.remote_updated_at
    order.digest = digest


async def _replace_items(session: AsyncSession, order_id: int, items: Sequence[OrderLine]) -> None:
    await session.execute(delete(ORDER_ITEM).where(ORDER_ITEM.c.order_id == order_id))
    if items:
        await session.execute(insert(ORDER_ITEM), [
            {"order_id": order_id, "sku": i.sku[:64], "name": i.name[:300], "quantity": i.quantity,
             "unit_price": i.unit_price} for i in items])
