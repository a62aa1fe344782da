"""The outbox worker: claims due items, delivers each through its sender, records the outcome.

Delivery is at most once per successful attempt and retried with exponential backoff otherwise:

1. *Claim* (one short transaction): due items are locked with ``FOR UPDATE SKIP LOCKED`` on
   PostgreSQL (SQLite's writers are serial anyway), marked ``sending`` with a lease and their
   attempt counted. Several processes never claim the same item.
2. *Send* outside any transaction, so a slow provider holds no lock and no connection.
3. *Record* (one transaction): the item ``sent``, the message's ``delivery_status`` and its
   provider id, and a ``message.updated`` event, together; or the failure and the next attempt.

A process that dies between 2 and 3 leaves the item ``sending`` until its lease runs out, after
which it is tried again with the same ``idempotency_key``: providers that honour one (LINE's
retry key, the email Message-ID) drop the repeat.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from helpdesk.config import Settings
from helpdesk.customers import service as customers
from helpdesk.customers.models import Customer
from helpdesk.db import utcnow
from helpdesk.inboxes.models import Inbox
from helpdesk.outbox.models import OutboxItem
from helpdesk.outbox.service import OutboundContext, OutboundFile, SenderRegistry, SendError
from helpdesk.realtime import events
from helpdesk.storage.sessions import dialect_of, readers_like
from helpdesk.tickets.models import Attachment, Direction, Message, Ticket

log = logging.getLogger(__name__)

DUE_STATES = ("pending", "sending")


@dataclass(frozen=True)
class WorkerOptions:
    max_attempts: int = 5
    backoff: timedelta = timedelta(seconds=30)
    max_backoff: timedelta = timedelta(hours=2)
    lease: timedelta = timedelta(minutes=5)
    batch: int = 20
    poll_seconds: float = 5.0

    def delay(self, attempt: int) -> timedelta:
        """How long to wait after failed attempt number ``attempt`` (1, 2, 4, 8… × backoff)."""
        return min(self.backoff * (2 ** max(attempt - 1, 0)), self.max_backoff)


@dataclass(frozen=True)
class Claimed:
    id: int
    kind: str
    message_id: int | None
    payload: dict[str, Any]
    attempt: int


@dataclass
class OutboxWorker:
    """Delivers outbox items through the registry's senders; ``run_once`` is one pass."""

    sessionmaker: async_sessionmaker[AsyncSession]
    registry: SenderRegistry
    settings: Settings
    http: httpx.AsyncClient
    options: WorkerOptions = WorkerOptions()

    @cached_property
    def readers(self) -> async_sessionmaker[AsyncSession]:
        return readers_like(self.sessionmaker)

    async def run_once(self, *, now: datetime | None = None) -> int:
        """Claim what is due and try each once; returns how many items were tried."""
        now = now or utcnow()
        claimed = await self._claim(now)
        for item in claimed:
            await self._deliver(item, now)
        return len(claimed)

    async def _claim(self, now: datetime) -> list[Claimed]:
        kinds = self.registry.kinds() + self.registry.refused_kinds()
        if not kinds:
            return []
        due = (col(OutboxItem.state).in_(DUE_STATES), col(OutboxItem.next_attempt_at) <= now,
               col(OutboxItem.kind).in_(kinds))
        async with self.readers() as reader:
            if await reader.scalar(select(col(OutboxItem.id)).where(*due).limit(1)) is None:
                return []
        async with self.sessionmaker() as session:
            stmt = (
                select(col(OutboxItem.id), col(OutboxItem.kind), col(OutboxItem.message_id),
                       col(OutboxItem.payload), col(OutboxItem.attempts))
                .where(*due)
                .order_by(col(OutboxItem.next_attempt_at), col(OutboxItem.id))
                .limit(self.options.batch)
            )
            if dialect_of(session) == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            rows = (await session.execute(stmt)).all()
            if not rows:
                return []
            await session.execute(
                update(OutboxItem).where(col(OutboxItem.id).in_([r[0] for r in rows]))
                .values(state="sending", attempts=col(OutboxItem.attempts) + 1,
                        next_attempt_at=now + self.options.lease)
            )
            await session.commit()
        return [Claimed(id=r[0], kind=r[1], message_id=r[2], payload=r[3] or {}, attempt=r[4] + 1)
                for r in rows]

    async def _deliver(self, item: Claimed, now: datetime) -> None:
        try:
            context = await self._context(item)
            sender = self.registry.sender_for(context)
            if sender is None:
                raise SendError(self.registry.refusal(item.kind)
                                or f"nothing delivers {item.kind} for this ticket", permanent=True)
            provider_id = await sender(context)
        except Exception as exc:  # any failure is recorded on the item and retried
            permanent = isinstance(exc, SendError) and exc.permanent
            log.warning("outbox item %s attempt %s failed: %s", item.id, item.attempt, exc)
            await self._record_failure(item, _describe(exc), permanent=permanent, now=now)
        else:
            await self._record_success(item, provider_id, now=now)

    async def _context(self, item: Claimed) -> OutboundContext:
        if item.message_id is None:
            raise SendError("the outbox item names no message", permanent=True)
        async with self.sessionmaker() as session:
            return await load_context(session, item, settings=self.settings, http=self.http)

    async def _record_success(self, item: Claimed, provider_id: str | None, *, now: datetime) -> None:
        async with self.sessionmaker() as session:
            if not await _settle(session, item, state="sent", sent_at=now, last_error=None):
                return
            await _set_delivery(session, item.message_id, "sent", provider_id=provider_id)
            await session.commit()

    async def _record_failure(self, item: Claimed, error: str, *, permanent: bool,
                              now: datetime) -> None:
        final = permanent or item.attempt >= self.options.max_attempts
        async with self.sessionmaker() as session:
            values: dict[str, Any] = {"last_error": error[:1000]}
            if final:
                values["state"] = "failed"
            else:
                values.update(state="pending",
                              next_attempt_at=now + self.options.delay(item.attempt))
            if not await _settle(session, item, **values):
                return
            if final:
                await _set_delivery(session, item.message_id, "failed", error=error)
            await session.commit()


async def _settle(session: AsyncSession, item: Claimed, **values: Any) -> bool:
    """Record the outcome of this attempt, unless another process took the item over since."""
    result = await session.execute(
        update(OutboxItem)
        .where(col(OutboxItem.id) == item.id, col(OutboxItem.state) == "sending",
               col(OutboxItem.attempts) == item.attempt)
        .values(**values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def _set_delivery(session: AsyncSession, message_id: int | None, status: str, *,
                        provider_id: str | None = None, error: str | None = None) -> None:
    """Set the message's delivery status and tell operators (``message.updated``)."""
    if message_id is None:
        return
    message = await session.get(Message, message_id)
    if message is None:
        return
    message.delivery_status = status
    message.delivery_error = error[:1000] if error else None
    if provider_id and message.external_id is None:
        message.external_id = provider_id[:255]
    inbox_id = await session.scalar(select(col(Ticket.inbox_id)).where(col(Ticket.id) == message.ticket_id))
    events.record(session, events.MessageUpdated(
        inbox_id=inbox_id, ticket_id=message.ticket_id, message_id=message.id,
        channel=message.channel, direction=message.direction, delivery_status=status,
        error=error))


def _describe(exc: Exception) -> str:
    """The reason operators read: a sender's own words, or the unexpected error's type and text."""
    if isinstance(exc, SendError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def load_context(session: AsyncSession, item: Claimed, *, settings: Settings,
                       http: httpx.AsyncClient) -> OutboundContext:
    """Read what a sender needs about the message, its ticket, inbox and customer."""
    row = (await session.execute(
        select(col(Message.body_text), col(Message.body_html), col(Message.author),
               col(Ticket.id), col(Ticket.number), col(Ticket.subject), col(Ticket.token),
               col(Ticket.channel), col(Ticket.conversation_key), col(Ticket.customer_id),
               col(Inbox.name), col(Inbox.email_address), col(Inbox.email_charset),
               col(Customer.name), col(Inbox.phone_number), col(Message.email_cc),
               col(Message.email_bcc))
        .join(Ticket, col(Ticket.id) == Message.ticket_id)
        .join(Inbox, col(Inbox.id) == Ticket.inbox_id)
        .outerjoin(Customer, col(Customer.id) == Ticket.customer_id)
        .where(col(Message.id) == item.message_id)
    )).one_or_none()
    if row is None:
        raise SendError("the message no longer exists", permanent=True)
    (body_text, body_html, author, ticket_id, number, subject, token, channel, conversation_key,
     customer_id, inbox_name, inbox_email, charset, customer_name, inbox_phone, cc, bcc) = row
    identities: dict[str, list[str]] = {}
    if customer_id is not None:
        for kind, value in (await customers.identities_by_customer(session, [customer_id])).get(
                customer_id, []):
            identities.setdefault(kind, []).append(value)
    thread = (await session.execute(
        select(col(Message.external_id), col(Message.direction))
        .where(col(Message.ticket_id) == ticket_id, col(Message.id) != item.message_id,
               col(Message.external_id).is_not(None), col(Message.internal).is_(False))
        .order_by(col(Message.created_at), col(Message.id))
    )).all()
    inbound = [ext for ext, direction in thread if ext and direction == Direction.inbound]
    assert item.message_id is not None and ticket_id is not None
    return OutboundContext(
        item_id=item.id, kind=item.kind, attempt=item.attempt,
        idempotency_key=f"helpdesk-outbox-{item.id}", message_id=item.message_id,
        body_text=body_text, body_html=body_html, author=author, ticket_id=ticket_id,
        ticket_number=number, ticket_subject=subject, ticket_token=token, channel=str(channel),
        conversation_key=conversation_key, inbox_name=inbox_name, inbox_email=inbox_email,
        inbox_email_charset=charset, customer_name=customer_name, identities=identities,
        thread_external_ids=[ext for ext, _ in thread if ext],
        reply_to_external_id=inbound[-1] if inbound else None,
        payload=item.payload, settings=settings, http=http, inbox_phone=inbox_phone,
        cc=list(cc or []), bcc=list(bcc or []), files=await _files(session, item.message_id),
    )


async def _files(session: AsyncSession, message_id: int) -> list[OutboundFile]:
    """The files an outbound message carries (what the operator attached), in the order added."""
    rows = (await session.execute(
        select(col(Attachment.filename), col(Attachment.content_type), col(Attachment.data))
        .where(col(Attachment.message_id) == message_id).order_by(col(Attachment.id)))).all()
    return [OutboundFile(filename=name, content_type=kind, data=data) for name, kind, data in rows]


Listen = Callable[[Callable[[int], None]], Callable[[], None]]


def wake_on_commit(listen: Listen, wake: asyncio.Event) -> Callable[[], None]:
    """Set ``wake`` whenever the bus reports a commit; returns the unsubscribe function."""
    return listen(lambda _seq: wake.set())


async def work_until_stopped(run_once: Callable[[], Awaitable[int]], stop: asyncio.Event,
                             wake: asyncio.Event, *, poll_seconds: float, name: str) -> None:
    """Run passes while they find work, else wait for a commit (``wake``), ``stop`` or the poll."""
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
    """Work through ``run_once`` passes for the life of the block, woken by each commit."""
    stop, wake = asyncio.Event(), asyncio.Event()
    unlisten = wake_on_commit(listen, wake)
    task = asyncio.create_task(work_until_stopped(run_once, stop, wake,
                                                  poll_seconds=poll_seconds, name=name))
    try:
        yield
    finally:
        stop.set()
        unlisten()
        await asyncio.gather(task, return_exceptions=True)


@asynccontextmanager
async def running(*, sessionmaker: async_sessionmaker[AsyncSession], registry: SenderRegistry,
                  settings: Settings, http: httpx.AsyncClient, listen: Listen) -> AsyncIterator[None]:
    """Run the worker for the app's life when ``settings.run_workers`` (tests drive it instead)."""
    if not settings.run_workers:
        yield
        return
    worker = OutboxWorker(sessionmaker, registry, settings, http, WorkerOptions(
        max_attempts=settings.outbox_max_attempts,
        backoff=timedelta(seconds=settings.outbox_backoff_seconds)))
    async with in_background(worker.run_once, listen, poll_seconds=worker.options.poll_seconds,
                             name="outbox"):
        yield
