"""Deleting what is only kept for a while: realtime events, finished outbox items, receipts.

Every process runs the same job (started with the others by ``helpdesk.app.background_work``).
Each batch is its own short transaction (SQLite's write lock and the event loop are never held
long); on PostgreSQL a batch that finds another process pruning skips the pass, and rows deleted
twice would be harmless anyway.
"""

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpdesk.config import Settings
from helpdesk.db import utcnow
from helpdesk.outbox import service as outbox
from helpdesk.receipts import service as receipts
from helpdesk.reports import rollup
from helpdesk.storage.locks import try_serialize_on

log = logging.getLogger(__name__)

Prune = Callable[..., Awaitable[int]]  # (session, *, before, limit) -> rows deleted
LOCK = "retention"


def pruners(settings: Settings, now: datetime) -> list[tuple[str, Prune, datetime]]:
    """What is pruned, with what, and the cut-off time of each."""
    events_before = now - timedelta(days=settings.event_retention_days)
    return [
        # The rollups fold events before they go (reports are rebuilt from what the log keeps).
        ("event", rollup.prune_folded_events, events_before),
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


def first_pass_after(settings: Settings) -> float:
    """Seconds from start to the first pass: soon (a server that was down a while catches up),
    at a random moment so that processes started together do not all prune at once."""
    return random.uniform(0.1, 1.0) * min(settings.retention_interval_seconds, 60.0)


async def prune_pass(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings,
                     stop: asyncio.Event) -> dict[str, int]:
    """One pass, as the app runs it every ``retention_interval_seconds``: ends early on ``stop``."""
    done = await prune_all(sessionmaker, settings, stop=stop)
    if any(done.values()):
        log.info("retention: deleted %s", done)
    return done
