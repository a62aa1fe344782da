"""The breach job: every process looks for tickets past due now and then; SKIP LOCKED (and
SQLite's one writer) make sure a breach is reported once."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpdesk import periodic
from helpdesk.config import Settings
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


@asynccontextmanager
async def running(*, sessionmaker: async_sessionmaker[AsyncSession],
                  settings: Settings) -> AsyncIterator[None]:
    """Check for breaches for the app's life when ``settings.run_workers``."""
    async with periodic.every(settings.sla_check_seconds, lambda: check_once(sessionmaker),
                              name="sla-breaches",
                              enabled=settings.run_workers):
        yield
