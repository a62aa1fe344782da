"""Keeping the report rollups up to date: a pass every few seconds folds what the log gained.

Passes are batched on purpose rather than run after every commit: on SQLite each pass is a
write transaction, and one per commit would double the writes of a busy ingest.
"""

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpdesk.config import Settings
from helpdesk.reports import rollup
from helpdesk.reports.calendar import ReportCalendar, report_calendar
from helpdesk.storage.sessions import readers_like


async def catch_up(sessionmaker: async_sessionmaker[AsyncSession], calendar: ReportCalendar, *,
                   batch: int = rollup.BATCH) -> int:
    """Fold everything the log holds beyond the watermark, one transaction per batch; how many."""
    total = 0
    while True:
        async with sessionmaker() as session:
            done = await rollup.apply_pending(session, calendar, limit=batch)
            await session.commit()
        total += done
        if done < batch:
            return total
        await asyncio.sleep(0)  # writers queued meanwhile go first


async def rebuild(sessionmaker: async_sessionmaker[AsyncSession], calendar: ReportCalendar) -> int:
    """Empty the rollups and fold the whole log again; how many events were folded."""
    async with sessionmaker() as session:
        await rollup.reset(session)
        await session.commit()
    return await catch_up(sessionmaker, calendar)


class RollupWorker:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.sessionmaker = sessionmaker
        self.readers = readers_like(sessionmaker)

    async def run_once(self) -> int:
        """One pass, taking a write session only when the log has news (a read says so)."""
        async with self.readers() as session:
            if not await rollup.behind(session):
                return 0
            # Read each pass: a changed time zone in the SLA settings applies from the next event.
            calendar = await report_calendar(session)
        await catch_up(self.sessionmaker, calendar)
        return 0  # caught up: wait for the next poll
