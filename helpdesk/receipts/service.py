"""Recording provider deliveries so a retried one is a no-op, and forgetting them when old."""

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.db import utcnow
from helpdesk.receipts.models import DeliveryReceipt
from helpdesk.storage.sessions import dialect_of

MAX_ID = 255


async def first_delivery(session: AsyncSession, *, provider: str, delivery_id: str) -> bool:
    """Record that ``delivery_id`` from ``provider`` is being handled; False when it already was.

    One INSERT … ON CONFLICT DO NOTHING: on PostgreSQL a concurrent identical delivery waits on
    the unique key until the first transaction ends, then finds the row (or takes over if that
    transaction rolled back); SQLite's writers are serial. No IntegrityError can surface.
    """
    insert = postgresql.insert if dialect_of(session) == "postgresql" else sqlite.insert
    stmt = (insert(DeliveryReceipt)
            .values(provider=provider, delivery_id=delivery_id[:MAX_ID], received_at=utcnow())
            .on_conflict_do_nothing(index_elements=["provider", "delivery_id"])
            .returning(col(DeliveryReceipt.id)))
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def prune(session: AsyncSession, *, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` receipts received before ``before``; returns how many went."""
    oldest = (select(col(DeliveryReceipt.id)).where(col(DeliveryReceipt.received_at) < before)
              .order_by(col(DeliveryReceipt.received_at)).limit(limit))
    ids = list(await session.scalars(oldest))
    if not ids:
        return 0
    await session.execute(delete(DeliveryReceipt).where(col(DeliveryReceipt.id).in_(ids)))
    return len(ids)
