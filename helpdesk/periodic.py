"""Periodic jobs: "run this every N seconds for the app's life", written once.

A failed pass is logged and the next one runs on time; stopping waits for the pass under way
(a pass is handed the stop event, so a long one can end between two batches).
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Seconds, or a function giving them when asked (a job at a time of day: until the next one).
Seconds = float | Callable[[], float]


@dataclass(frozen=True)
class PeriodicJob:
    """A job the app runs every so often: its name, one pass, the waits before and between passes.

    ``run`` is given the event set when the app stops. The first pass comes ``first_after``
    the start (at once by default), each next one ``every`` after the previous one ended.
    """

    name: str
    run: Callable[[asyncio.Event], Awaitable[object]]
    every: Seconds
    enabled: bool = True
    first_after: Seconds = 0.0


def _seconds(value: Seconds) -> float:
    return value() if callable(value) else value


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``stop``; whether it came."""
    if seconds <= 0:
        return stop.is_set()
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


async def _repeat(job: PeriodicJob, stop: asyncio.Event) -> None:
    wait = _seconds(job.first_after)
    while not await _stopped_within(stop, wait):
        try:
            await job.run(stop)
        except Exception:  # a failed pass must not stop the next one
            log.exception("%s: a pass failed", job.name)
        wait = _seconds(job.every)


@asynccontextmanager
async def running(jobs: Sequence[PeriodicJob]) -> AsyncIterator[list[str]]:
    """Run every enabled job while the block runs; yields their names (each one's task name)."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_repeat(job, stop), name=job.name) for job in jobs if job.enabled]
    try:
        yield [task.get_name() for task in tasks]
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
