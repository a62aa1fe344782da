"""A leased queue: rows of a table that one process at a time works on, retried with backoff.

The outbox (replies to deliver) and ``media_fetch`` (customers' photos to download) are such
tables: each row has ``id``, ``attempts``, ``next_attempt_at`` and ``last_error``, and, when
settled rows are kept, a ``state``. A pass of a queue:

1. *Claims* due rows in one short transaction: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two
   processes never claim one row; on SQLite the app's write session (``BEGIN IMMEDIATE``, one
   writer at a time). The attempt is counted and ``next_attempt_at`` pushed past a lease: a
   process that dies mid-attempt only delays the row until the lease runs out, and then any
   process claims it again. A read-only look comes first, so a worker woken by a commit whose
   rows are not due yet takes no write lock.
2. *Works* on each row outside any transaction: a slow provider holds no lock and no connection.
3. *Settles* each in one transaction, together with what the job records: done, retry later
   (after a backoff that doubles with each attempt), or failed for good with the reason. A
   settlement applies only while the lease is still this attempt's: a row another process took
   over after the lease ran out is left to that process.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpdesk.db import utcnow
from helpdesk.storage.sessions import dialect_of, readers_like

log = logging.getLogger(__name__)

REASON_MAX = 1000  # characters of a failure's reason kept on the row (last_error)


@dataclass(frozen=True)
class QueueOptions:
    """How a queue is worked: attempts, backoff between them, the lease, batch and idle poll."""

    max_attempts: int = 5
    backoff: timedelta = timedelta(seconds=30)
    max_backoff: timedelta = timedelta(hours=2)
    lease: timedelta = timedelta(minutes=5)
    batch: int = 20
    poll_seconds: float = 5.0

    def delay(self, attempt: int) -> timedelta:
        """How long to wait after failed attempt number ``attempt`` (1, 2, 4, 8… × backoff)."""
        return min(self.backoff * (2 ** max(attempt - 1, 0)), self.max_backoff)


class TaskError(Exception):
    """A failed attempt in the job's own words; ``permanent`` ones are not tried again."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def describe(exc: BaseException) -> str:
    """The reason people read: a job's own words, or the unexpected error's type and text."""
    if isinstance(exc, TaskError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


@dataclass(frozen=True)
class States:
    """The ``state`` values of a queue that keeps its settled rows (the outbox's by default)."""

    waiting: str = "pending"
    leased: str = "sending"
    done: str = "sent"
    failed: str = "failed"
    # A column set to the time a row was done, if the table has one.
    done_at: str | None = None


class Item(Protocol):
    """What a job makes of a claimed row: at least its id and this attempt's number (from 1)."""

    @property
    def id(self) -> int: ...

    @property
    def attempt(self) -> int: ...


ItemT = TypeVar("ItemT", bound=Item)
ResultT = TypeVar("ResultT")


def _no_condition() -> Sequence[ColumnElement[bool]]:
    return ()


@dataclass(frozen=True)
class Job(Generic[ItemT, ResultT]):
    """What a queue does with its rows.

    ``read`` turns a claimed row (and the number of the attempt it was claimed for) into the
    item ``work`` is given, outside any transaction. ``done`` and ``failed`` record the outcome
    in the transaction that settles the row. ``due`` adds conditions a row must meet to be
    claimed here (``None``: nothing can be claimed now).
    """

    read: Callable[[Any, int], ItemT]
    work: Callable[[ItemT], Awaitable[ResultT]]
    done: Callable[[AsyncSession, ItemT, ResultT], Awaitable[None]]
    failed: Callable[[AsyncSession, ItemT, str, Exception], Awaitable[None]]
    due: Callable[[], Sequence[ColumnElement[bool]] | None] = field(default=_no_condition)


@dataclass
class LeasedQueue(Generic[ItemT, ResultT]):
    """One table worked as a leased queue; ``run_once`` is one pass. ``states`` is None when a
    settled row (done or failed) is deleted rather than kept."""

    name: str
    table: type[Any]
    sessionmaker: async_sessionmaker[AsyncSession]
    job: Job[ItemT, ResultT]
    options: QueueOptions = QueueOptions()
    states: States | None = None

    @cached_property
    def readers(self) -> async_sessionmaker[AsyncSession]:
        return readers_like(self.sessionmaker)

    async def run_once(self, *, now: datetime | None = None) -> int:
        """Claim what is due and try each once; returns how many were tried."""
        now = now or utcnow()
        claimed = await self.claim(now=now)
        for item in claimed:
            await self.attempt(item, now=now)
        return len(claimed)

    # ---- claiming ---------------------------------------------------------------------------

    def due(self, now: datetime) -> list[ColumnElement[bool]] | None:
        """The conditions of a row that may be claimed at ``now`` (None: none may)."""
        extra = self.job.due()
        if extra is None:
            return None
        conditions = [self.table.next_attempt_at <= now, *extra]
        if self.states is not None:
            conditions.append(self.table.state.in_((self.states.waiting, self.states.leased)))
        return conditions

    async def claim(self, *, now: datetime) -> list[ItemT]:
        """Lease due rows in a transaction of their own, after a read-only look says any are."""
        due = self.due(now)
        if due is None:
            return []
        async with self.readers() as reader:
            if await reader.scalar(select(self.table.id).where(*due).limit(1)) is None:
                return []
        async with self.sessionmaker() as session:
            claimed = await self.claim_in(session, now=now)
            await session.commit()
        return claimed

    async def claim_in(self, session: AsyncSession, *, now: datetime) -> list[ItemT]:
        """Lock and lease up to a batch of due rows in ``session``; the caller commits."""
        due = self.due(now)
        if due is None:
            return []
        stmt = (select(self.table).where(*due)
                .order_by(self.table.next_attempt_at, self.table.id).limit(self.options.batch))
        if dialect_of(session) == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        claimed = [self.job.read(row, row.attempts + 1) for row in await session.scalars(stmt)]
        if not claimed:
            return []
        values: dict[str, Any] = {"attempts": self.table.attempts + 1,
                                  "next_attempt_at": now + self.options.lease}
        if self.states is not None:
            values["state"] = self.states.leased
        await session.execute(update(self.table)
                              .where(self.table.id.in_([item.id for item in claimed]))
                              .values(**values))
        return claimed

    # ---- working and settling ---------------------------------------------------------------

    async def attempt(self, item: ItemT, *, now: datetime) -> None:
        """Work on one claimed item and settle it: done, again later, or failed for good."""
        try:
            result = await self.job.work(item)
        except Exception as exc:  # any failure is recorded on the row, none is lost
            reason = describe(exc)
            log.warning("%s: item %s attempt %s failed: %s", self.name, item.id, item.attempt,
                        reason)
            permanent = isinstance(exc, TaskError) and exc.permanent
            async with self.sessionmaker() as session:
                if permanent or item.attempt >= self.options.max_attempts:
                    if await self.settle_failed(session, item, reason=reason):
                        await self.job.failed(session, item, reason, exc)
                else:
                    await self.settle_retry(session, item, reason=reason, now=now)
                await session.commit()
            return
        async with self.sessionmaker() as session:
            if await self.settle_done(session, item, now=now):
                await self.job.done(session, item, result)
            await session.commit()

    def _held(self, item: Item) -> list[ColumnElement[bool]]:
        """The row of ``item`` while its lease is still this attempt's."""
        held = [self.table.id == item.id, self.table.attempts == item.attempt]
        if self.states is not None:
            held.append(self.table.state == self.states.leased)
        return held

    async def _settle(self, session: AsyncSession, item: Item, values: dict[str, Any] | None) -> bool:
        """Update the leased row with ``values`` (None: delete it); False when the lease was lost."""
        if values is None:
            result = await session.execute(delete(self.table).where(*self._held(item)))
        else:
            result = await session.execute(update(self.table).where(*self._held(item))
                                           .values(**values))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def settle_done(self, session: AsyncSession, item: Item, *, now: datetime) -> bool:
        """Mark the row done (or delete it) in ``session``; False when the lease was lost."""
        if self.states is None:
            return await self._settle(session, item, None)
        values: dict[str, Any] = {"state": self.states.done, "last_error": None}
        if self.states.done_at is not None:
            values[self.states.done_at] = now
        return await self._settle(session, item, values)

    async def settle_retry(self, session: AsyncSession, item: Item, *, reason: str,
                           now: datetime) -> bool:
        """Keep the reason and try again after the backoff; False when the lease was lost."""
        values: dict[str, Any] = {"last_error": reason[:REASON_MAX],
                                  "next_attempt_at": now + self.options.delay(item.attempt)}
        if self.states is not None:
            values["state"] = self.states.waiting
        return await self._settle(session, item, values)

    async def settle_failed(self, session: AsyncSession, item: Item, *, reason: str) -> bool:
        """Fail the row for good, keeping the reason (or delete it); False when the lease was lost."""
        if self.states is None:
            return await self._settle(session, item, None)
        return await self._settle(session, item, {"state": self.states.failed,
                                                  "last_error": reason[:REASON_MAX]})


# ---- running a queue for the app's life ---------------------------------------------------------

# Registers a callback for when a queue may have work (a commit wrote to its table, see
# ``storage.wakes``); returns the unregistering function. The app's is the bus's, for one queue.
Listen = Callable[[Callable[[], None]], Callable[[], None]]


async def work_until_stopped(run_once: Callable[[], Awaitable[int]], stop: asyncio.Event,
                             wake: asyncio.Event, *, poll_seconds: float, name: str) -> None:
    """Run passes while they find work, else wait for work (``wake``), ``stop`` or the poll."""
    while not stop.is_set():
        try:
            busy = await run_once() > 0
        except Exception:  # the loop must outlive a database hiccup
            log.exception("%s pass failed", name)
            busy = False
        if busy:
            continue
        wake.clear()
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
        await asyncio.wait(waiters, timeout=poll_seconds, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()


@asynccontextmanager
async def in_background(run_once: Callable[[], Awaitable[int]], listen: Listen, *,
                        poll_seconds: float, name: str) -> AsyncIterator[None]:
    """Work through ``run_once`` passes for the life of the block, woken by each commit that
    gave the queue work (``listen``) and every ``poll_seconds`` otherwise.

    Stopping waits for the pass under way.
    """
    stop, wake = asyncio.Event(), asyncio.Event()
    unlisten = listen(wake.set)
    task = asyncio.create_task(work_until_stopped(run_once, stop, wake,
                                                  poll_seconds=poll_seconds, name=name), name=name)
    try:
        yield
    finally:
        stop.set()
        unlisten()
        await asyncio.gather(task, return_exceptions=True)
