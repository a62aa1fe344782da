"""What staff edit on a customer by hand: the name, its reading, and a note for colleagues."""

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.customers import service
from helpdesk.customers.models import Customer
from helpdesk.db import utcnow
from helpdesk.errors import NotFound

NOTE_MAX = 5000


async def update(session: AsyncSession, customer_id: int, *, name: str, name_kana: str, note: str,
                 region: str) -> Customer:
    """Store the fields as typed (only trimmed; empty means none) and re-index the customer."""
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise NotFound("customer not found")
    customer.name = name.strip() or None
    customer.name_kana = name_kana.strip() or None
    customer.note = note.replace("\r\n", "\n").strip()[:NOTE_MAX] or None
    customer.updated_at = utcnow()
    await session.flush()
    await service.reindex(session, customer, region=region)
    return customer
