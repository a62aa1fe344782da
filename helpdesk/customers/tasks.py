"""Background work on customers: refreshing RFM cuts and ranks as time passes."""

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpdesk.customers import orders as customer_orders
from helpdesk.customers import rfm

log = logging.getLogger(__name__)


async def refresh_ranks(
    sessionmaker: async_sessionmaker[AsyncSession], *, dormant_after_days: int
) -> None:
    """Recompute the quintile cuts and every customer's scores and rank, in one transaction
    (counting first the orders of any import that died before it counted them)."""
    async with sessionmaker() as session:
        await customer_orders.settle_abandoned_recounts(session)
        await rfm.refresh(session, dormant_after_days=dormant_after_days)
        await session.commit()


async def keep_ranks_fresh(
    sessionmaker: async_sessionmaker[AsyncSession], *, every_seconds: float, dormant_after_days: int
) -> None:
    """Refresh ranks every ``every_seconds``: recency and dormancy move with the clock alone."""
    while True:
        await asyncio.sleep(every_seconds)
        try:
            await refresh_ranks(sessionmaker, dormant_after_days=dormant_after_days)
        except Exception:  # a failed refresh must not stop the next one
            log.exception("refreshing customer ranks failed")
