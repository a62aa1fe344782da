"""Queueing what must be sent, and the registry of senders ``helpdesk.delivery`` delivers with."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.background.queue import TaskError
from helpdesk.config import Settings
from helpdesk.db import utcnow
from helpdesk.outbox.models import OutboxItem


def enqueue(
    session: AsyncSession, *, kind: str, message_id: int | None, payload: dict[str, Any]
) -> OutboxItem:
    """Add an outbox row to the current transaction."""
    item = OutboxItem(kind=kind, message_id=message_id, payload=payload)
    session.add(item)
    return item


DONE_STATES = ("sent", "failed")


async def prune_done(session: AsyncSession, *, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` sent or failed items whose last attempt ended before ``before``.

    The newest item always stays: SQLite hands a deleted highest id out again, and the id is
    in the idempotency key providers remember.
    """
    newest = select(func.max(OutboxItem.id)).scalar_subquery()
    ids = list(await session.scalars(
        select(col(OutboxItem.id))
        .where(col(OutboxItem.state).in_(DONE_STATES), col(OutboxItem.next_attempt_at) < before,
               col(OutboxItem.id) < newest)
        .order_by(col(OutboxItem.next_attempt_at)).limit(limit)))
    if not ids:
        return 0
    await session.execute(delete(OutboxItem).where(col(OutboxItem.id).in_(ids)))
    return len(ids)


# ---- senders: how a kind of outbox item leaves ------------------------------------------------


@dataclass(frozen=True)
class OutboundFile:
    """A file sent with a reply (stored as the message's attachment)."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class OutboundContext:
    """Everything a sender needs to deliver one outbound message; plain data plus the clients.

    ``idempotency_key`` is the same on every attempt for one outbox item: pass it to providers
    that deduplicate (LINE's X-Line-Retry-Key, an email's Message-ID).
    """

    item_id: int
    kind: str
    attempt: int
    idempotency_key: str
    message_id: int
    body_text: str
    body_html: str | None
    author: str | None
    ticket_id: int
    ticket_number: int
    ticket_subject: str
    ticket_token: str
    channel: str
    conversation_key: str | None
    inbox_name: str
    inbox_email: str | None
    inbox_email_charset: str
    customer_name: str | None
    # The customer's identities by kind ("email", "phone", "line", "meta", "chat"), oldest first.
    identities: dict[str, list[str]]
    # Provider ids of the thread's earlier messages, oldest first (email threading).
    thread_external_ids: list[str]
    # The provider id of the latest inbound message (what a reply answers).
    reply_to_external_id: str | None
    payload: dict[str, Any]
    settings: Settings
    http: httpx.AsyncClient
    # The number the inbox answers on (an SMS or WhatsApp reply is sent from it).
    inbox_phone: str | None = None
    # Email: who else receives the reply (Bcc never in a header) and the files it carries.
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    files: list[OutboundFile] = field(default_factory=list)


class SendError(TaskError):
    """A delivery that failed; ``permanent`` ones are not retried (a refused recipient)."""


# A sender delivers one message and returns the provider's id for it (or None when it has none).
# It raises SendError (or anything else) on failure; the worker retries with backoff.
Sender = Callable[[OutboundContext], Awaitable[str | None]]
Predicate = Callable[[OutboundContext], bool]


@dataclass
class SenderRegistry:
    """Which sender delivers each outbox kind (``reply.email``, ``reply.line``…).

    Channels register at app start. Several senders may share a kind when each says which
    items it takes (``when``); the first that accepts wins, and one without ``when`` is the
    fallback (e.g. WhatsApp through the Cloud API for its own threads, through Twilio otherwise).
    """

    _senders: dict[str, list[tuple[Predicate | None, Sender]]] = field(default_factory=dict)
    # Why nothing delivers a kind (its provider is not configured), for the compose-time refusal.
    _refusals: dict[str, str] = field(default_factory=dict)

    def register(self, kind: str, sender: Sender, *, when: Predicate | None = None) -> None:
        """Deliver items of ``kind`` with ``sender`` (only those ``when`` accepts, if given)."""
        entries = self._senders.setdefault(kind, [])
        entries.append((when, sender))
        entries.sort(key=lambda entry: entry[0] is None)  # conditional senders first

    def refuse(self, kind: str, reason: str) -> None:
        """Record why ``kind`` cannot be sent here (unless a sender for it is registered too)."""
        self._refusals[kind] = reason

    def refusal(self, kind: str) -> str | None:
        """Why nothing can deliver ``kind``, or None when some sender takes it."""
        if self._senders.get(kind):
            return None
        return self._refusals.get(kind, f"nothing sends {kind} here")

    def kinds(self) -> list[str]:
        """The kinds something can deliver."""
        return sorted(self._senders)

    def refused_kinds(self) -> list[str]:
        """The kinds known here that nothing can deliver (items of them are failed with why)."""
        return sorted(set(self._refusals) - set(self._senders))

    def sender_for(self, context: OutboundContext) -> Sender | None:
        """The sender for this item, or None when nothing delivers its kind."""
        for when, sender in self._senders.get(context.kind, []):
            if when is None or when(context):
                return sender
        return None


async def requeue(session: AsyncSession, *, message_id: int, kind: str,
                  payload: dict[str, Any]) -> OutboxItem:
    """Send a message's failed item again from the first attempt (a new item if it was pruned)."""
    item = await session.scalar(
        select(OutboxItem).where(col(OutboxItem.message_id) == message_id)
        .order_by(col(OutboxItem.id).desc()).limit(1))
    if item is None or item.state != "failed":
        return enqueue(session, kind=kind, message_id=message_id, payload=payload)
    item.kind, item.state, item.attempts, item.last_error = kind, "pending", 0, None
    item.next_attempt_at = utcnow()
    return item
