"""Who a customer is across channels, and what operators see of them."""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from sqlalchemy import Select, bindparam, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk import normalize
from helpdesk.config import DEFAULT_REGION
from helpdesk.customers.models import (
    Customer,
    CustomerIdentity,
    CustomerSummary,
    IdentityKind,
    Order,
    OrderItem,
    table_of,
)
from helpdesk.db import utcnow
from helpdesk.search import service as search
from helpdesk.storage import new_rows, prepared
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
    region: str = DEFAULT_REGION,
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
    session: AsyncSession, *, identities: Sequence[Identity], name: str | None, region: str = DEFAULT_REGION
) -> Customer:
    """Find the customer any identity belongs to, or create one; attach identities they lack.

    The first identity that has an owner decides (callers list the most reliable first).
    """
    for kind, value in sorted(identities):
        await serialize_on(session, f"identity:{kind}:{value}")
    owned = await owners(session, identities)
    owner_id = next((owned[i] for i in identities if i in owned), None)
    customer = await session.get(Customer, owner_id) if owner_id is not None else None
    missing = [i for i in dict.fromkeys(identities) if i not in owned]
    if customer is None:
        return await _create(session, name=name, identities=missing, region=region)
    changed = False
    if customer.name is None and name:
        customer.name = normalize.kept(name)
        changed = True
    assert customer.id is not None
    await _attach(session, customer.id, missing)
    if changed or missing:
        await reindex(session, customer, region=region)
    return customer


async def _create(
    session: AsyncSession, *, name: str | None, identities: list[Identity], region: str
) -> Customer:
    """A new customer with ``identities``, indexed from what it was given (nothing to re-read)."""
    customer = new_rows.made(Customer, name=normalize.kept(name))
    await new_rows.insert_new(session, customer)  # the first message's path: no flush of its own
    assert customer.id is not None
    await _attach(session, customer.id, identities)
    await search.add_now(session, search.Entry(
        kind="customer", ref_id=customer.id, customer_id=customer.id,
        text=search_text(customer.name, None, [(str(k), v) for k, v in identities], region)))
    return customer


async def _attach(session: AsyncSession, customer_id: int, identities: list[Identity]) -> None:
    """Give ``identities`` (owned by nobody) to a customer, in one statement."""
    now = utcnow()
    await prepared.execute_many(session, _ATTACH, [
        {"customer_id": customer_id, "kind": kind, "value": value, "created_at": now}
        for kind, value in identities])


async def reindex(session: AsyncSession, customer: Customer, *, region: str = DEFAULT_REGION) -> None:
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
    region: str = DEFAULT_REGION,
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


async def owners(session: AsyncSession, identities: Iterable[Identity]) -> dict[Identity, int]:
    """Which customer owns each identity, in one query per few thousand identities."""
    wanted = set(identities)
    if len(wanted) <= _FEW:  # a message's sender: every kind in one look-up, pairs checked here
        few = await prepared.rows(session, _OWNERS_OF_KINDS, {
            "kinds": sorted({kind for kind, _ in wanted}), "values": sorted({v for _, v in wanted})})
        return {(row.kind, row.value): row.customer_id for row in few
                if (row.kind, row.value) in wanted}
    by_kind: dict[IdentityKind, list[str]] = defaultdict(list)
    for kind, value in wanted:
        by_kind[kind].append(value)
    found: dict[Identity, int] = {}
    for kind, values in by_kind.items():
        values.sort()
        for start in range(0, len(values), CHUNK):
            rows = await prepared.rows(session, _OWNERS, {"kind": kind,
                                                          "values": values[start:start + CHUNK]})
            found.update(((kind, row.value), row.customer_id) for row in rows)
    return found


CHUNK = 2000
_FEW = 8
CUSTOMER = table_of(Customer)
ORDER = table_of(Order)
ORDER_ITEM = table_of(OrderItem)
IDENTITY = table_of(CustomerIdentity)


# kind first: the unique (kind, value) index serves the lookup only when both are given; on
# value alone every identity row would be scanned.
class _Owner(NamedTuple):
    value: str
    customer_id: int


class _KindOwner(NamedTuple):
    kind: IdentityKind
    value: str
    customer_id: int


class _IdentityOf(NamedTuple):
    customer_id: int
    kind: str
    value: str


_OWNERS = prepared.Query(select(IDENTITY.c.value, IDENTITY.c.customer_id).where(
    IDENTITY.c.kind == bindparam("kind"), IDENTITY.c.value.in_(bindparam("values", expanding=True))),
    _Owner)
_OWNERS_OF_KINDS = prepared.Query(
    select(IDENTITY.c.kind, IDENTITY.c.value, IDENTITY.c.customer_id).where(
        IDENTITY.c.kind.in_(bindparam("kinds", expanding=True)),
        IDENTITY.c.value.in_(bindparam("values", expanding=True))),
    _KindOwner)
_ATTACH = insert(IDENTITY).values({name: bindparam(name)
                                   for name in ("customer_id", "kind", "value", "created_at")})
_IDENTITIES_OF = prepared.Query(select(IDENTITY.c.customer_id, IDENTITY.c.kind, IDENTITY.c.value)
                                .where(IDENTITY.c.customer_id.in_(bindparam("ids", expanding=True)))
                                .order_by(IDENTITY.c.id), _IdentityOf)


async def names(session: AsyncSession, customer_ids: Iterable[int]) -> dict[int, str | None]:
    """Customer names by id: one narrow query for a page of tickets."""
    wanted = list(set(customer_ids))
    if not wanted:
        return {}
    rows = await session.execute(
        select(col(Customer.id), col(Customer.name)).where(col(Customer.id).in_(wanted)))
    return {customer_id: name for customer_id, name in rows.all() if customer_id is not None}
