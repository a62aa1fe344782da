"""Changes customers make to messages already received: edits and reactions.

An edit replaces the text shown and keeps every version in ``history`` (oldest first, the last
being the text shown); providers may deliver edits out of order (LINE says the latest timestamp
wins), so a late older edit only takes its place in the history. A reaction is kept on the
message reacted to, one per customer, and an empty one takes it back. Operators are told with
``message.updated``. Callers dedupe deliveries and commit.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.realtime import events
from helpdesk.search import service as search
from helpdesk.tickets.models import Channel, Message, Ticket


async def find(session: AsyncSession, channel: Channel, provider_id: str) -> Message | None:
    """The message a provider names by its own id (our key for it, or its provider id)."""
    return await session.scalar(
        select(Message).where(col(Message.channel) == channel,
                              or_(col(Message.external_id) == provider_id,
                                  col(Message.provider_message_id) == provider_id))
        .order_by(col(Message.id)).limit(1))


async def edit(session: AsyncSession, message: Message, *, body_text: str, at: datetime) -> None:
    """Record a version of the message written at ``at``; the latest version is the one shown."""
    versions: list[dict[str, Any]] = list(message.history or [
        {"body_text": message.body_text, "at": message.created_at.isoformat()}])
    stamp = at.isoformat()
    if any(v["at"] == stamp and v["body_text"] == body_text for v in versions):
        return
    versions.append({"body_text": body_text, "at": stamp})
    versions.sort(key=lambda v: datetime.fromisoformat(str(v["at"])))
    message.history = versions  # a new list, so the JSON column is seen to change
    if versions[-1]["body_text"] != message.body_text:
        message.body_text = str(versions[-1]["body_text"])
    ticket = await session.get(Ticket, message.ticket_id)
    assert message.id is not None
    # The earlier text stays findable too: it is part of the message's history.
    search.add(session, kind="message", ref_id=message.id, text_=body_text,
               ticket_id=message.ticket_id, customer_id=ticket.customer_id if ticket else None)
    await _updated(session, message, ticket)


async def react(session: AsyncSession, message: Message, *, emoji: str | None,
                at: datetime) -> None:
    """Set (or, with no emoji, take back) the customer's reaction to the message."""
    message.reactions = [{"emoji": emoji, "at": at.isoformat()}] if emoji else None
    await _updated(session, message, await session.get(Ticket, message.ticket_id))


async def _updated(session: AsyncSession, message: Message, ticket: Ticket | None) -> None:
    await session.flush()
    events.record(session, events.MessageUpdated(
        inbox_id=ticket.inbox_id if ticket else None, ticket_id=message.ticket_id,
        message_id=message.id, channel=message.channel, direction=message.direction,
        delivery_status=message.delivery_status, error=None, preview=message.body_text[:140],
        reactions=message.reactions, edited=bool(message.history)))
