"""Periodic jobs: "run this every N seconds for the app's life", written once.

A failed pass is logged and the next one runs on time; stopping waits for the pass under way.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

log = logging.getLogger(__name__)


async def _repeat(job: Callable[[], Awaitable[object]], every: float, stop: asyncio.Event,
                  name: str) -> None:
    while True:
        try:
            await job()
        except Exception:
            log.exception("%s: a pass failed", name)
        try:
            await asyncio.wait_for(stop.wait(), timeout=every)
            return
        except TimeoutError:
            pass


@asynccontextmanager
async def every(seconds: float, job: Callable[[], Awaitable[object]], *, name: str,
                enabled: bool = True) -> AsyncIterator[None]:
    """Run ``job`` now and then every ``seconds`` while the block runs (nothing when disabled)."""
    if not enabled:
        yield
        return
    stop = asyncio.Event()
    task = asyncio.create_task(_repeat(job, seconds, stop, name), name=name)
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
