"""Customers: folding one customer into another, with every row that names them."""


from sqlalchemy import Table, delete, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from helpdesk.config import DEFAULT_REGION
from helpdesk.customers import rfm
from helpdesk.customers.models import Customer
from helpdesk.customers.orders import refresh_aggregates
from helpdesk.customers.service import CUSTOMER, reindex
from helpdesk.errors import BadInput, NotFound
from helpdesk.search import service as search
from helpdesk.storage.locks import serialize_on


def customer_tables() -> list[Table]:
    """Every table with a ``customer_id`` column: what a merge has to move."""
    return [t for t in SQLModel.metadata.sorted_tables
            if "customer_id" in t.c and t.name != CUSTOMER.name]


async def merge(
    session: AsyncSession, survivor_id: int, other_id: int, *, region: str = DEFAULT_REGION,
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
