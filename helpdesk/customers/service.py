"""Who a customer is across channels, and what operators see of them."""

import dataclasses
import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import NamedTuple

from sqlalchemy import (
    ColumnElement,
    Select,
    Subquery,
    Table,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from helpdesk import normalize
from helpdesk.customers import rfm
from helpdesk.customers.models import (
    Customer,
    CustomerIdentity,
    CustomerSummary,
    IdentityKind,
    IncomingOrder,
    Order,
    OrderItem,
    OrderLine,
    PurchaseRecount,
    table_of,
)
from helpdesk.db import utcnow
from helpdesk.errors import BadInput, NotFound
from helpdesk.search import service as search
from helpdesk.storage import prepared
from helpdesk.storage.locks import serialize_on
from helpdesk.storage.sessions import dialect_of

Identity = tuple[IdentityKind, str]


def identities_of(
    *,
    email: str | None = None,
    phone: str | None = None,
    line_id: str | None = None,
    meta_id: str | None = None,
    chat_id: str | None = None,
    region: str = "JP",
) -> list[Identity]:
    """The normalised identities a sender offers; withheld or invalid values are dropped."""
    found: list[Identity] = []
    if value := normalize.email(email):
        found.append((IdentityKind.email, value))
    if value := normalize.phone(phone, region):
        found.append((IdentityKind.phone, value))
    for kind, raw in ((IdentityKind.line, line_id), (IdentityKind.meta, meta_id),
                      (IdentityKind.chat, chat_id)):
        if raw and raw.strip():
            found.append((kind, raw.strip()))
    return found


async def resolve(
    session: AsyncSession, *, identities: Sequence[Identity], name: str | None, region: str = "JP"
) -> Customer:
    """Find the customer any identity belongs to, or create one; attach identities they lack.

    The first identity that has an owner decides (callers list the most reliable first).
    """
    for kind, value in sorted(identities):
        await serialize_on(session, f"identity:{kind}:{value}")
    owned = await owners(session, identities)
    owner_id = next((owned[i] for i in identities if i in owned), None)
    customer = await session.get(Customer, owner_id) if owner_id is not None else None
    changed = customer is None
    if customer is None:
        customer = Customer(name=normalize.kept(name))
        session.add(customer)
        await session.flush()
    elif customer.name is None and name:
        customer.name = normalize.kept(name)
        changed = True
    assert customer.id is not None
    missing = [i for i in dict.fromkeys(identities) if i not in owned]
    if missing:
        session.add_all(CustomerIdentity(customer_id=customer.id, kind=kind, value=value)
                        for kind, value in missing)
        await session.flush()
    if changed or missing:
        await reindex(session, customer, region=region)
    return customer


async def reindex(session: AsyncSession, customer: Customer, *, region: str = "JP") -> None:
    """Refresh the searchable text of a customer: names, emails, phones in several spellings."""
    assert customer.id is not None
    ids = await identities_by_customer(session, [customer.id])
    customer.updated_at = utcnow()
    await search.replace(session, kind="customer", ref_id=customer.id, customer_id=customer.id,
                         text_=search_text(customer.name, customer.name_kana,
                                           ids.get(customer.id, []), region))


def search_text(
    name: str | None, name_kana: str | None, identities: Iterable[tuple[str, str]], region: str
) -> str:
    """What a customer is found by: name, reading, contacts.

    The reading is indexed in katakana and numbers as their digits only: queries are turned
    into those forms (``search.query_forms``), which keeps every customer's entry short.
    """
    parts = [name or "", normalize.katakana(name_kana) if name_kana else ""]
    for kind, value in identities:
        parts.append(normalize.phone_search_digits(value, region) if kind == "phone" else value)
    return " ".join(p for p in parts if p)


async def identities_by_customer(
    session: AsyncSession, customer_ids: Iterable[int]
) -> dict[int, list[tuple[str, str]]]:
    """Each customer's identities as (kind, value), oldest first."""
    wanted = list(customer_ids)
    found: dict[int, list[tuple[str, str]]] = defaultdict(list)
    if not wanted:
        return found
    for row in await prepared.rows(session, _IDENTITIES_OF, {"ids": wanted}):
        found[row.customer_id].append((str(row.kind), row.value))
    return found


async def summaries(session: AsyncSession, customer_ids: Iterable[int]) -> dict[int, CustomerSummary]:
    """CustomerSummary for each id, in two queries whatever the count."""
    wanted = list(set(customer_ids))
    if not wanted:
        return {}
    customers = await session.scalars(select(Customer).where(col(Customer.id).in_(wanted)))
    ids = await identities_by_customer(session, wanted)
    return {c.id: _summary(c, ids.get(c.id, [])) for c in customers if c.id is not None}


def _summary(customer: Customer, identities: list[tuple[str, str]]) -> CustomerSummary:
    assert customer.id is not None

    def values(kind: str) -> list[str]:
        return [value for k, value in identities if k == kind]

    return CustomerSummary(
        id=customer.id, name=customer.name, name_kana=customer.name_kana,
        emails=values("email"), phones=values("phone"), line_ids=values("line"),
        rank=customer.rank, orders_count=customer.orders_count,
        total_spent=customer.total_spent, last_order_at=customer.last_order_at,
    )


async def find(
    session: AsyncSession,
    *,
    phone: str | None = None,
    email: str | None = None,
    q: str | None = None,
    region: str = "JP",
    limit: int = 50,
) -> list[CustomerSummary]:
    """Customers by exact phone (any format) or email, or by free text over names and contacts."""
    stmt = select(col(Customer.id))
    if phone is not None:
        e164 = normalize.phone(phone, region)
        stmt = stmt.where(col(Customer.id).in_(_owners(IdentityKind.phone, e164)))
    if email is not None:
        stmt = stmt.where(col(Customer.id).in_(_owners(IdentityKind.email, normalize.email(email))))
    if q:
        hits = search.matching(dialect_of(session), q, region).subquery()
        stmt = stmt.where(or_(col(Customer.id).in_(select(hits.c.customer_id)),
                              col(Customer.id).in_(with_order_number(q))))
    ids = [i for i in await session.scalars(stmt.order_by(col(Customer.id).desc()).limit(limit))
           if i is not None]
    found = await summaries(session, ids)
    return [found[i] for i in ids if i in found]


def with_order_number(query: str) -> Select[tuple[int]]:
    """The customers with an order of that number, typed with or without its leading "#"."""
    number = normalize.nfkc(query)
    forms = {number, number.lstrip("#"), "#" + number.lstrip("#")}
    return select(ORDER.c.customer_id).where(ORDER.c.number.in_(sorted(forms)))


def _owners(kind: IdentityKind, value: str | None) -> Select[int]:
    return select(col(CustomerIdentity.customer_id)).where(
        col(CustomerIdentity.kind) == kind, col(CustomerIdentity.value) == (value or "\x00")
    )


async def customer_id_by_phone(session: AsyncSession, e164: str) -> int | None:
    """The customer owning an already normalised phone number, if any (one indexed lookup)."""
    return await session.scalar(_owners(IdentityKind.phone, e164).limit(1))


async def owners(session: AsyncSession, identities: Iterable[Identity]) -> dict[Identity, int]:
    """Which customer owns each identity, in one query per few thousand identities."""
    by_kind: dict[IdentityKind, list[str]] = defaultdict(list)
    for kind, value in set(identities):
        by_kind[kind].append(value)
    found: dict[Identity, int] = {}
    for kind, values in by_kind.items():
        values.sort()
        for start in range(0, len(values), CHUNK):
            rows = await prepared.rows(session, _OWNERS, {"kind": kind,
                                                          "values": values[start:start + CHUNK]})
            found.update(((kind, row.value), row.customer_id) for row in rows)
    return found



# Words in a status that make an order no purchase (left out of counts, totals and ranks), as
# carts spell them: 取消 covers 注文取消し and 受注取消, 取り消 covers 取り消し and 取り消し済み.
_NOT_PURCHASE_WORDS = ("cancel", "void", "refund", "return", "取消", "取り消", "取りけし",
                       "キャンセル", "返品", "返金", "払い戻", "払戻")
# ... unless only part of it was: a partly refunded order is still a purchase.
_PARTLY_WORDS = ("partial", "一部")
CHUNK = 2000
CUSTOMER = table_of(Customer)
ORDER = table_of(Order)
ORDER_ITEM = table_of(OrderItem)
IDENTITY = table_of(CustomerIdentity)
RECOUNT = table_of(PurchaseRecount)
# An import beats its recount row with every batch, seconds apart: a row this old is orphaned.
RECOUNT_ABANDONED_AFTER = timedelta(minutes=10)
# kind first: the unique (kind, value) index serves the lookup only when both are given; on
# value alone every identity row would be scanned.
class _Owner(NamedTuple):
    value: str
    customer_id: int


class _IdentityOf(NamedTuple):
    customer_id: int
    kind: str
    value: str


_OWNERS = prepared.Query(select(IDENTITY.c.value, IDENTITY.c.customer_id).where(
    IDENTITY.c.kind == bindparam("kind"), IDENTITY.c.value.in_(bindparam("values", expanding=True))),
    _Owner)
_IDENTITIES_OF = prepared.Query(select(IDENTITY.c.customer_id, IDENTITY.c.kind, IDENTITY.c.value)
                                .where(IDENTITY.c.customer_id.in_(bindparam("ids", expanding=True)))
                                .order_by(IDENTITY.c.id), _IdentityOf)


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
    session: AsyncSession, incoming: IncomingOrder, *, region: str = "JP",
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


def customer_tables() -> list[Table]:
    """Every table with a ``customer_id`` column: what a merge has to move."""
    return [t for t in SQLModel.metadata.sorted_tables
            if "customer_id" in t.c and t.name != CUSTOMER.name]


async def merge(
    session: AsyncSession, survivor_id: int, other_id: int, *, region: str = "JP",
    dormant_after_days: int = 180,
) -> dict[str, int]:
    """Fold ``other_id`` into ``survivor_id``: every row of every domain moves, then it is deleted."""
    if survivor_id == other_id:
        raise BadInput("a customer cannot be merged with itself")
    for customer_id in sorted((survivor_id, other_id)):
        await serialize_on(session, f"customer:{customer_id}")
    survivor = await session.get(Customer, survivor_id)
    other = await session.get(Customer, other_id)
    if survivor is None or other is None:
        raise NotFound("customer not found")
    moved: dict[str, int] = {}
    for table in customer_tables():
        result = await session.execute(update(table).where(table.c.customer_id == other_id)
                                       .values(customer_id=survivor_id))
        moved[table.name] = int(getattr(result, "rowcount", 0) or 0)
    await search.remove_many(session, kind="customer", ref_ids=[other_id])
    _absorb(survivor, other)
    await session.execute(delete(CUSTOMER).where(CUSTOMER.c.id == other_id))
    session.expunge(other)
    await reindex(session, survivor, region=region)
    await session.flush()
    await refresh_aggregates(session, [survivor_id])
    await rfm.rescore(session, [survivor_id], dormant_after_days=dormant_after_days)
    return moved


def _absorb(survivor: Customer, other: Customer) -> None:
    survivor.name = survivor.name or other.name
    survivor.name_kana = survivor.name_kana or other.name_kana
    survivor.tags = list(dict.fromkeys([*survivor.tags, *other.tags]))
    notes = [n for n in (survivor.note, other.note) if n]
    survivor.note = "\n".join(dict.fromkeys(notes)) or None


async def names(session: AsyncSession, customer_ids: Iterable[int]) -> dict[int, str | None]:
    """Customer names by id: one narrow query for a page of tickets."""
    wanted = list(set(customer_ids))
    if not wanted:
        return {}
    rows = await session.execute(
        select(col(Customer.id), col(Customer.name)).where(col(Customer.id).in_(wanted)))
    return {customer_id: name for customer_id, name in rows.all() if customer_id is not None}
