"""The delivery worker: the outbox as a leased queue, each item sent through its channel's sender.

A pass claims due items (``helpdesk.background.queue``: ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, a lease, the attempt counted), sends each outside any transaction, and records in
one transaction the item ``sent``, the message's ``delivery_status`` and provider id, and a
``message.updated`` event; or the failure and the next attempt, after a backoff that doubles.
A provider that refuses for good, or the last attempt, fails the item and the message with the
reason.

A process that dies mid-send leaves the item ``sending`` until its lease runs out, after which
it is tried again with the same ``idempotency_key``: providers that honour one (LINE's retry
key, the email Message-ID) drop the repeat.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

import httpx
from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from helpdesk.background.queue import Job, LeasedQueue, QueueOptions, States
from helpdesk.config import Settings
from helpdesk.delivery.service import Claimed, claimed, load_context, set_delivery
from helpdesk.outbox.models import OutboxItem
from helpdesk.outbox.service import SenderRegistry, SendError

# An item waits ``pending``, is ``sending`` while leased, and ends ``sent`` or ``failed``.
OUTBOX_STATES = States(waiting="pending", leased="sending", done="sent", failed="failed",
                       done_at="sent_at")


@dataclass(frozen=True)
class WorkerOptions(QueueOptions):
    """The outbox's limits (``HELPDESK_OUTBOX_*`` set the attempts and the first backoff)."""


def options_from(settings: Settings) -> WorkerOptions:
    """The worker's limits as configured."""
    return WorkerOptions(max_attempts=settings.outbox_max_attempts,
                         backoff=timedelta(seconds=settings.outbox_backoff_seconds))


@dataclass
class OutboxWorker:
    """Delivers outbox items through the registry's senders; ``run_once`` is one pass."""

    sessionmaker: async_sessionmaker[AsyncSession]
    registry: SenderRegistry
    settings: Settings
    http: httpx.AsyncClient
    options: QueueOptions = WorkerOptions()

    @cached_property
    def queue(self) -> LeasedQueue[Claimed, str | None]:
        job = Job(read=claimed, work=self._send, done=self._sent, failed=self._failed,
                  due=self._kinds)
        return LeasedQueue("outbox", OutboxItem, self.sessionmaker, job, self.options,
                           OUTBOX_STATES)

    async def run_once(self, *, now: datetime | None = None) -> int:
        """Claim what is due and try each once; returns how many items were tried."""
        return await self.queue.run_once(now=now)

    def _kinds(self) -> list[ColumnElement[bool]] | None:
        """Items of the kinds something here delivers, or fails with the reason it cannot."""
        kinds = self.registry.kinds() + self.registry.refused_kinds()
        return [col(OutboxItem.kind).in_(kinds)] if kinds else None

    async def _send(self, item: Claimed) -> str | None:
        if item.message_id is None:
            raise SendError("the outbox item names no message", permanent=True)
        async with self.sessionmaker() as session:
            context = await load_context(session, item, settings=self.settings, http=self.http)
        sender = self.registry.sender_for(context)
        if sender is None:
            raise SendError(self.registry.refusal(item.kind)
                            or f"nothing delivers {item.kind} for this ticket", permanent=True)
        return await sender(context)

    async def _sent(self, session: AsyncSession, item: Claimed, provider_id: str | None) -> None:
        await set_delivery(session, item.message_id, "sent", provider_id=provider_id)

    async def _failed(self, session: AsyncSession, item: Claimed, reason: str,
                      _error: Exception) -> None:
        await set_delivery(session, item.message_id, "failed", error=reason)
