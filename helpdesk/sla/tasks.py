"""The breach job: every process looks for tickets past due now and then; SKIP LOCKED (and
SQLite's one writer) make sure a breach is reported once."""

import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpdesk.db import utcnow
from helpdesk.sla import service

log = logging.getLogger(__name__)


async def check_once(sessionmaker: async_sessionmaker[AsyncSession], *,
                     now: datetime | None = None) -> int:
    """Report every breach due by ``now``, a batch per transaction; how many were reported."""
    total = 0
    while True:
        async with sessionmaker() as session:
            found = await service.report_breaches(session, now=now or utcnow(), limit=500)
            await session.commit()
        total += found
        if found < 500:
            return total
