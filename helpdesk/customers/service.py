"""Who a customer is across channels, and what operators see of them."""

from collections import defaultdict
from collections.abc import Iterable, Sequence

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk import normalize
from helpdesk.customers.models import Customer, CustomerIdentity, CustomerSummary, IdentityKind
from helpdesk.db import dialect_of, serialize_on, utcnow
from helpdesk.search import service as search

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
    """Find the customer any identity belongs to, or create one; attach identities they lack."""
    for kind, value in sorted(identities):
        await serialize_on(session, f"identity:{kind}:{value}")
    customer = await _first_owner(session, identities)
    if customer is None:
        customer = Customer(name=normalize.name(name))
        session.add(customer)
        await session.flush()
    elif customer.name is None and name:
        customer.name = normalize.name(name)
    assert customer.id is not None
    added = await _attach_missing(session, customer.id, identities)
    if added or customer.name:
        await reindex(session, customer, region=region)
    return customer


async def _first_owner(session: AsyncSession, identities: Sequence[Identity]) -> Customer | None:
    for kind, value in identities:
        customer = await session.scalar(
            select(Customer).join(CustomerIdentity, col(CustomerIdentity.customer_id) == Customer.id)
            .where(col(CustomerIdentity.kind) == kind, col(CustomerIdentity.value) == value)
        )
        if customer is not None:
            return customer
    return None


async def _attach_missing(
    session: AsyncSession, customer_id: int, identities: Sequence[Identity]
) -> bool:
    known = {(kind, value) for kind, value in identities}
    if not known:
        return False
    owned = await session.execute(
        select(col(CustomerIdentity.kind), col(CustomerIdentity.value))
        .where(col(CustomerIdentity.value).in_([value for _, value in known]))
    )
    missing = known - {(IdentityKind(kind), value) for kind, value in owned.all()}
    session.add_all(CustomerIdentity(customer_id=customer_id, kind=kind, value=value)
                    for kind, value in sorted(missing))
    return bool(missing)


async def reindex(session: AsyncSession, customer: Customer, *, region: str = "JP") -> None:
    """Refresh the searchable text of a customer: names, emails, phones in several spellings."""
    assert customer.id is not None
    ids = await identities_by_customer(session, [customer.id])
    parts = [customer.name or "", customer.name_kana or ""]
    for kind, value in ids.get(customer.id, []):
        parts.extend(normalize.phone_search_forms(value, region) if kind == "phone" else [value])
    customer.updated_at = utcnow()
    await search.replace(session, kind="customer", ref_id=customer.id,
                         text_=" ".join(p for p in parts if p), customer_id=customer.id)


async def identities_by_customer(
    session: AsyncSession, customer_ids: Iterable[int]
) -> dict[int, list[tuple[str, str]]]:
    """Each customer's identities as (kind, value), oldest first."""
    rows = await session.execute(
        select(col(CustomerIdentity.customer_id), col(CustomerIdentity.kind), col(CustomerIdentity.value))
        .where(col(CustomerIdentity.customer_id).in_(list(customer_ids)))
        .order_by(col(CustomerIdentity.id))
    )
    found: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for customer_id, kind, value in rows.all():
        found[customer_id].append((str(kind), value))
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
        stmt = stmt.where(col(Customer.id).in_(select(hits.c.customer_id)))
    ids = [i for i in await session.scalars(stmt.order_by(col(Customer.id).desc()).limit(limit))
           if i is not None]
    found = await summaries(session, ids)
    return [found[i] for i in ids if i in found]


def _owners(kind: IdentityKind, value: str | None) -> Select[int]:
    return select(col(CustomerIdentity.customer_id)).where(
        col(CustomerIdentity.kind) == kind, col(CustomerIdentity.value) == (value or "\x00")
    )


async def names(session: AsyncSession, customer_ids: Iterable[int]) -> dict[int, str | None]:
    """Customer names by id: one narrow query for a page of tickets."""
    wanted = list(set(customer_ids))
    if not wanted:
        return {}
    rows = await session.execute(
        select(col(Customer.id), col(Customer.name)).where(col(Customer.id).in_(wanted)))
    return {customer_id: name for customer_id, name in rows.all() if customer_id is not None}
