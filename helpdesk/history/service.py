"""Writing and reading a ticket's history."""

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.db import utcnow
from helpdesk.history.models import HistoryItem, TicketHistory


def record(session: AsyncSession, *, ticket_id: int, type: str, data: dict[str, Any],
           actor_id: int | None = None, at: datetime | None = None) -> None:
    """Add one entry in the caller's transaction."""
    session.add(TicketHistory(ticket_id=ticket_id, type=type, data=data, actor_id=actor_id,
                              at=at or utcnow()))


async def of_ticket(session: AsyncSession, ticket_id: int, *, limit: int = 1000) -> list[HistoryItem]:
    """A ticket's history, oldest first."""
    rows = await session.scalars(select(TicketHistory).where(col(TicketHistory.ticket_id) == ticket_id)
                                 .order_by(col(TicketHistory.id)).limit(limit))
    return [HistoryItem(at=r.at, type=r.type, actor_id=r.actor_id, data=r.data) for r in rows]
