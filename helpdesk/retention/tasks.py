"""Deleting what is only kept for a while: realtime events, finished outbox items, receipts.

Every process runs the same loop. Each batch is its own short transaction (SQLite's write lock
and the event loop are never held long); on PostgreSQL a batch that finds another process
pruning skips the pass, and rows deleted twice would be harmless anyway.
"""

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpdesk.config import Settings
from helpdesk.db import utcnow
from helpdesk.outbox import service as outbox
from helpdesk.receipts import service as receipts
from helpdesk.reports import rollup
from helpdesk.reports.calendar import report_calendar
from helpdesk.storage.locks import try_serialize_on

log = logging.getLogger(__name__)

Prune = Callable[..., Awaitable[int]]  # (session, *, before, limit) -> rows deleted
LOCK = "retention"


def pruners(settings: Settings, now: datetime) -> list[tuple[str, Prune, datetime]]:
    """What is pruned, with what, and the cut-off time of each."""
    events_before = now - timedelta(days=settings.event_retention_days)
    return [
        # The rollups fold events before they go (reports are rebuilt from what the log keeps).
        ("event", partial(rollup.prune_folded_events, calendar=report_calendar(settings)),
         events_before),
        ("outbox", outbox.prune_done, events_before),
        ("delivery_receipt", receipts.prune,
         now - timedelta(days=settings.receipt_retention_days)),
    ]


async def prune_all(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, *,
                    now: datetime | None = None,
                    stop: asyncio.Event | None = None) -> dict[str, int]:
    """One pass over every kind; how many rows of each went."""
    done: dict[str, int] = {}
    for name, prune, before in pruners(settings, now or utcnow()):
        done[name] = await prune_in_batches(sessionmaker, prune, before=before,
                                            batch=settings.retention_batch, stop=stop)
    return done


async def prune_in_batches(sessionmaker: async_sessionmaker[AsyncSession], prune: Prune, *,
                           before: datetime, batch: int, stop: asyncio.Event | None = None) -> int:
    """Run ``prune`` one batch per transaction until a batch comes back short."""
    total = 0
    while stop is None or not stop.is_set():
        async with sessionmaker() as session:
            if not await try_serialize_on(session, LOCK):
                return total  # another process is pruning now
            deleted = await prune(session, before=before, limit=batch)
            await session.commit()
        total += deleted
        if deleted < batch:
            break
        await asyncio.sleep(0)  # writers queued meanwhile go first
    return total


async def keep_pruning(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings,
                       stop: asyncio.Event) -> None:
    """Prune every ``retention_interval_seconds`` until ``stop`` is set.

    The first pass comes soon after start (a server that was down a while catches up), at a
    random moment so that processes started together do not all prune at once.
    """
    interval = settings.retention_interval_seconds
    wait = random.uniform(0.1, 1.0) * min(interval, 60.0)
    while not await _stopped_within(stop, wait):
        try:
            done = await prune_all(sessionmaker, settings, stop=stop)
            if any(done.values()):
                log.info("retention: deleted %s", done)
        except Exception:  # a failed pass must not stop the next one
            log.exception("retention pass failed")
        wait = interval


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


@asynccontextmanager
async def running(*, sessionmaker: async_sessionmaker[AsyncSession],
                  settings: Settings) -> AsyncIterator[None]:
    """Prune for the app's life when ``settings.run_workers`` (tests call ``prune_all``)."""
    if not settings.run_workers:
        yield
        return
    stop = asyncio.Event()
    task = asyncio.create_task(keep_pruning(sessionmaker, settings, stop), name="retention")
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
