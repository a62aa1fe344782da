"""Running a process's background work for the app's life: its leased queues, each woken by
the commits that write to its table (``storage.wakes``, over the bus) and polled otherwise, and
its periodic jobs.

What runs is listed in one place, ``helpdesk.app.background_work``; this module only runs it.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple

from helpdesk import periodic
from helpdesk.background.queue import in_background
from helpdesk.periodic import PeriodicJob

# The bus's ``listen_queue``: registers a callback for when the named queue may have work.
ListenQueue = Callable[[str, Callable[[], None]], Callable[[], None]]


class QueueJob(NamedTuple):
    """A leased queue's worker: its name, its queue (``storage.wakes``: the table's name), one
    pass (how many rows it tried), its idle poll."""

    name: str
    queue: str
    run_once: Callable[[], Awaitable[int]]
    poll_seconds: float


@dataclass(frozen=True)
class Background:
    """Everything a process runs beside its requests."""

    queues: list[QueueJob] = field(default_factory=list)
    periodic: list[PeriodicJob] = field(default_factory=list)


@asynccontextmanager
async def running(work: Background, *, listen_queue: ListenQueue) -> AsyncIterator[list[str]]:
    """Run ``work`` while the block runs; yields the names of what runs (disabled jobs left out).

    Stopping waits for the pass under way of each.
    """
    async with AsyncExitStack() as stack:
        for queue in work.queues:
            await stack.enter_async_context(in_background(
                queue.run_once, partial(listen_queue, queue.queue), poll_seconds=queue.poll_seconds,
                name=queue.name))
        names = [queue.name for queue in work.queues]
        names += await stack.enter_async_context(periodic.running(work.periodic))
        yield names
