"""Background work on customers: refreshing RFM cuts and ranks as time passes (every
``rank_refresh_seconds``: recency and dormancy move with the clock alone)."""

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpdesk.customers import orders as customer_orders
from helpdesk.customers import rfm


async def refresh_ranks(
    sessionmaker: async_sessionmaker[AsyncSession], *, dormant_after_days: int
) -> None:
    """Recompute the quintile cuts and every customer's scores and rank, in one transaction
    (counting first the orders of any import that died before it counted them)."""
    async with sessionmaker() as session:
        await customer_orders.settle_abandoned_recounts(session)
        await rfm.refresh(session, dormant_after_days=dormant_after_days)
        await session.commit()
