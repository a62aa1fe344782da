"""Batched writes for imports: thousands of customers or orders in a handful of statements.

Contacts arrive already normalised (the importer caches that work); nothing here loads ORM
objects, so a batch costs the same whatever its size.
"""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.customers import orders as customer_orders
from helpdesk.customers import service
from helpdesk.customers.models import (
    IdentityKind,
    IncomingCustomer,
    IncomingOrder,
)
from helpdesk.customers.service import CHUNK, CUSTOMER, IDENTITY, ORDER, ORDER_ITEM, Identity
from helpdesk.db import utcnow
from helpdesk.search import service as search
from helpdesk.storage.bulk import insert_many
from helpdesk.storage.counters import read_counter
from helpdesk.storage.sessions import dialect_of


@dataclass
class BatchResult:
    """What one batch did, and which customers' aggregates it made stale."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    touched: set[int] = field(default_factory=set)  # changed orders: recount these customers


@dataclass
class _Person:
    identities: list[Identity]
    name: str | None
    name_kana: str | None
    tags: list[str] = field(default_factory=list)
    note: str | None = None


EMAIL, PHONE = IdentityKind.email, IdentityKind.phone


class KnownOwners:
    """Which customer owns each email and phone, remembered across one import's batches.

    An orders file names each customer again and again; asking the database for every row's
    owners was a quarter of an import's writing. Ownership moves only when an identity is
    updated or deleted (a merge, a deleted customer), which changes the ``identity_version``
    counter (migration 0013); each batch checks it inside its own transaction and starts afresh
    when it moved. Identities without an owner are not remembered: another writer may add them.
    """

    LIMIT = 1_000_000  # about 200 MB at most; past it, lookups go to the database again

    def __init__(self) -> None:
        # Per kind, by value: plain string keys make the lookups of an orders file's millions of
        # rows four times cheaper than (kind, value) tuples in one large dictionary.
        self._owners: defaultdict[str, dict[str, int]] = defaultdict(dict)
        self._size = 0
        self._version: int | None = None

    async def check(self, session: AsyncSession) -> None:
        """Forget everything if an identity changed hands since the last batch."""
        version = await read_counter(session, "identity_version")
        if version != self._version:
            self._owners.clear()
            self._size = 0
            self._version = version

    async def owners(self, session: AsyncSession, wanted: Iterable[Identity]) -> dict[Identity, int]:
        """The owners of ``wanted`` that have one, asking the database only for those not known."""
        found: dict[Identity, int] = {}
        missing: set[Identity] = set()
        known = self._owners
        for identity in wanted:
            owner = known[identity[0]].get(identity[1])
            if owner is None:
                missing.add(identity)
            else:
                found[identity] = owner
        if missing:
            fresh = await service.owners(session, missing)
            found.update(fresh)
            self.remember(fresh)
        return found

    def remember(self, owners: dict[Identity, int]) -> None:
        if self._size + len(owners) > self.LIMIT:
            return
        for (kind, value), owner in owners.items():
            self._owners[kind][value] = owner
        self._size += len(owners)


def identities(email: str | None, phone: str | None) -> list[Identity]:
    """The (already normalised) identities of a row, email first."""
    if email and phone:
        return [(EMAIL, email), (PHONE, phone)]
    return [(EMAIL, email)] if email else [(PHONE, phone)] if phone else []


async def import_customers(
    session: AsyncSession, rows: Sequence[IncomingCustomer], *, region: str,
    known: KnownOwners | None = None,
) -> BatchResult:
    """Create or update customers matched by email or phone; unchanged rows write nothing."""
    people = [_Person(identities(r.email, r.phone), r.name, r.name_kana, r.tags, r.note)
              for r in rows]
    ids, new, attached = await _resolve(session, people, known or KnownOwners())
    created = set(new)
    result = BatchResult(created=len(created))
    latest: dict[int, _Person] = {}
    for person, customer_id in zip(people, ids, strict=True):
        latest[customer_id] = person
    changed = await _update_existing(session, {k: v for k, v in latest.items() if k not in created})
    for customer_id in {*latest} - created:
        if customer_id in changed or customer_id in attached:
            result.updated += 1
        else:
            result.unchanged += 1
    result.unchanged += len(rows) - len(latest)  # repeated rows of one customer in the file
    await _reindex(session, changed | attached, region=region, new=new)
    return result


@dataclass
class _New:
    """A customer created by this batch: what its row says and every identity it was given."""

    person: _Person
    identities: list[Identity] = field(default_factory=list)


async def _resolve(
    session: AsyncSession, people: Sequence[_Person], known: KnownOwners
) -> tuple[list[int], dict[int, _New], set[int]]:
    """Customer id per person (creating the missing ones); the new customers by id; ids of
    existing customers that gained identities."""
    await known.check(session)
    owned = await known.owners(session, (i for p in people for i in p.identities))
    claims: dict[Identity, int] = {}  # free identity -> customer id, or -(new index + 1)
    picks: list[int] = []
    fresh: list[_Person] = []
    for person in people:
        pick = next((owned[i] for i in person.identities if i in owned), None)
        if pick is None:
            pick = next((claims[i] for i in person.identities if i in claims), None)
        if pick is None:
            fresh.append(person)
            pick = -len(fresh)
        for identity in person.identities:
            if identity not in owned:
                claims.setdefault(identity, pick)
        picks.append(pick)
    new_ids = await _insert_customers(session, fresh)
    real = [p if p > 0 else new_ids[-p - 1] for p in picks]
    owners = {identity: c if c > 0 else new_ids[-c - 1] for identity, c in claims.items()}
    if owners:
        now = utcnow()
        await insert_many(session, IDENTITY, [
            {"customer_id": c, "kind": str(kind), "value": value, "created_at": now}
            for (kind, value), c in owners.items()])
        known.remember(owners)
    new = {customer_id: _New(person) for customer_id, person in zip(new_ids, fresh, strict=True)}
    attached: set[int] = set()
    for identity, customer_id in owners.items():  # in insertion order, as stored
        if customer_id in new:
            new[customer_id].identities.append(identity)
        else:
            attached.add(customer_id)
    return real, new, attached


async def _insert_customers(session: AsyncSession, people: Sequence[_Person]) -> list[int]:
    if not people:
        return []
    now = utcnow()
    rows = [{"name": p.name, "name_kana": p.name_kana, "note": p.note, "tags": p.tags,
             "orders_count": 0, "total_spent": 0, "created_at": now, "updated_at": now}
            for p in people]
    return await insert_returning_ids(session, CUSTOMER, rows)


async def insert_returning_ids(
    session: AsyncSession, table: Table, rows: list[dict[str, Any]]
) -> list[int]:
    """Insert rows and return their ids in row order, in batches rather than row by row.

    SQLite cannot promise the order of a multi-row RETURNING, so SQLAlchemy would insert one row
    per statement; the import's transaction holds SQLite's only write lock, so ids counted on
    from the current maximum are ours. PostgreSQL sorts RETURNING rows by a sentinel instead.
    """
    if dialect_of(session) != "sqlite":
        result = await session.execute(
            insert(table).returning(table.c.id, sort_by_parameter_order=True), rows)
        return list(result.scalars().all())
    start = int(await session.scalar(select(func.max(table.c.id))) or 0)
    ids = list(range(start + 1, start + 1 + len(rows)))
    await insert_many(session, table, [{"id": i, **row} for i, row in zip(ids, rows, strict=True)])
    return ids


async def _update_existing(session: AsyncSession, people: dict[int, _Person]) -> set[int]:
    """Write names, reading, tags and note that differ from what is stored; the ids changed."""
    changes: list[dict[str, Any]] = []
    wanted = sorted(people)
    for start in range(0, len(wanted), CHUNK):
        rows = await session.execute(
            select(CUSTOMER.c.id, CUSTOMER.c.name, CUSTOMER.c.name_kana, CUSTOMER.c.tags,
                   CUSTOMER.c.note).where(CUSTOMER.c.id.in_(wanted[start:start + CHUNK])))
        for customer_id, name, kana, tags, note in rows.all():
            person = people[customer_id]
            new = {"name": person.name or name, "name_kana": person.name_kana or kana,
                   "tags": list(dict.fromkeys([*tags, *person.tags])), "note": person.note or note}
            if new != {"name": name, "name_kana": kana, "tags": tags, "note": note}:
                changes.append({"b_id": customer_id, **new, "updated_at": utcnow()})
    if changes:
        await session.execute(
            update(CUSTOMER).where(CUSTOMER.c.id == bindparam("b_id")).values(
                name=bindparam("name"), name_kana=bindparam("name_kana"), tags=bindparam("tags"),
                note=bindparam("note"), updated_at=bindparam("updated_at")), changes)
    return {c["b_id"] for c in changes}


async def _reindex(session: AsyncSession, customer_ids: set[int], *, region: str,
                   new: dict[int, _New]) -> None:
    """Write the search entries of new customers (from what was just stored) and replace those of
    ``customer_ids`` (read back: they may have older names and identities)."""
    entries = [("customer", cid, service.search_text(n.person.name, n.person.name_kana,
                                                     n.identities, region), cid)
               for cid, n in new.items()]
    wanted = sorted(customer_ids - new.keys())
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start:start + CHUNK]
        ids = await service.identities_by_customer(session, chunk)
        rows = await session.execute(select(CUSTOMER.c.id, CUSTOMER.c.name, CUSTOMER.c.name_kana)
                                     .where(CUSTOMER.c.id.in_(chunk)))
        await search.remove_many(session, kind="customer", ref_ids=chunk)
        entries.extend(("customer", cid, service.search_text(name, kana, ids.get(cid, []), region), cid)
                       for cid, name, kana in rows.all())
    await search.add_many(session, entries)


async def import_orders(
    session: AsyncSession, orders: Sequence[IncomingOrder], *, region: str,
    known: KnownOwners | None = None, count_new: bool = True,
) -> BatchResult:
    """Create or update orders by (source, number); an unchanged order writes nothing.

    New orders are added to their customers' totals unless ``count_new`` is false: the caller
    counts them later (an import, once at its end, see ``customer_orders.open_recount``).
    """
    people = [_Person(identities(o.email, o.phone), o.name, o.name_kana) for o in orders]
    customer_ids, new, attached = await _resolve(session, people, known or KnownOwners())
    await _reindex(session, attached, region=region, new=new)
    existing = await _existing(session, orders)
    result = BatchResult()
    new_rows: list[dict[str, Any]] = []
    new_orders: list[IncomingOrder] = []
    changed: list[tuple[int, IncomingOrder, dict[str, Any]]] = []
    for order, customer_id in zip(orders, customer_ids, strict=True):
        row = _order_row(order, customer_id)
        found = existing.get(order.number)
        if found is None:
            new_rows.append(row)
            new_orders.append(order)
        elif found[1] != row["digest"] or found[0] != customer_id:
            changed.append((found[2], order, row))
            result.touched.update((found[0], customer_id))
        else:
            result.unchanged += 1
    await _insert_orders(session, new_rows, new_orders, result, count=count_new)
    await _update_orders(session, changed, result)
    return result


async def _existing(
    session: AsyncSession, orders: Sequence[IncomingOrder]
) -> dict[str, tuple[int, str | None, int]]:
    """By order number: (customer id, digest, order id) of the orders already stored."""
    found: dict[str, tuple[int, str | None, int]] = {}
    by_source: dict[str, list[str]] = {}
    for order in orders:
        by_source.setdefault(order.source, []).append(order.number)
    for source, numbers in by_source.items():
        for start in range(0, len(numbers), CHUNK):
            rows = await session.execute(
                select(ORDER.c.number, ORDER.c.customer_id, ORDER.c.digest, ORDER.c.id)
                .where(ORDER.c.source == source, ORDER.c.number.in_(numbers[start:start + CHUNK])))
            for number, customer_id, digest, order_id in rows.all():
                found[number] = (customer_id, digest, order_id)
    return found


def _order_row(order: IncomingOrder, customer_id: int) -> dict[str, Any]:
    return {"customer_id": customer_id, "source": order.source, "number": order.number,
            "external_id": order.external_id, "ordered_at": order.ordered_at,
            "status": order.status[:40], "is_purchase": customer_orders.is_purchase(order.status),
            "total": order.total, "currency": order.currency[:3], "shipping": order.shipping,
            "fees": order.fees, "discount": order.discount,
            "remote_updated_at": order.remote_updated_at,
            "digest": order.digest or customer_orders.order_digest(order)}


async def _insert_orders(
    session: AsyncSession, rows: list[dict[str, Any]], orders: list[IncomingOrder],
    result: BatchResult, *, count: bool,
) -> None:
    if not rows:
        return
    ids = await insert_returning_ids(session, ORDER, rows)
    await _insert_items(session, zip(ids, orders, strict=True))
    if count:
        await customer_orders.add_purchases(session, ids)
    result.created += len(ids)


async def _update_orders(
    session: AsyncSession, changed: list[tuple[int, IncomingOrder, dict[str, Any]]],
    result: BatchResult,
) -> None:
    if not changed:
        return
    params = [{"b_id": order_id, **{k: v for k, v in row.items() if k not in ("source", "number")}}
              for order_id, _, row in changed]
    await session.execute(update(ORDER).where(ORDER.c.id == bindparam("b_id")).values(
        {k: bindparam(k) for k in params[0] if k != "b_id"}), params)
    order_ids = [order_id for order_id, _, _ in changed]
    for start in range(0, len(order_ids), CHUNK):
        await session.execute(delete(ORDER_ITEM).where(
            ORDER_ITEM.c.order_id.in_(order_ids[start:start + CHUNK])))
    await _insert_items(session, ((order_id, order) for order_id, order, _ in changed))
    result.updated += len(changed)


async def _insert_items(session: AsyncSession, pairs: Any) -> None:
    items = [{"order_id": order_id, "sku": i.sku[:64], "name": i.name[:300],
              "quantity": i.quantity, "unit_price": i.unit_price}
             for order_id, order in pairs for i in order.items]
    await insert_many(session, ORDER_ITEM, items)

