"""What a sender is given about an outbox item, and the outcome written back on its message."""

from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.config import Settings
from helpdesk.customers import service as customers
from helpdesk.customers.models import Customer
from helpdesk.inboxes.models import Inbox
from helpdesk.outbox.models import OutboxItem
from helpdesk.outbox.service import OutboundContext, OutboundFile, SendError
from helpdesk.realtime import events
from helpdesk.tickets.models import Attachment, Direction, Message, Ticket


@dataclass(frozen=True)
class Claimed:
    """One outbox item claimed for an attempt (``attempt`` counts from 1)."""

    id: int
    kind: str
    message_id: int | None
    payload: dict[str, Any]
    attempt: int


def claimed(row: OutboxItem, attempt: int) -> Claimed:
    """The claimed row as the delivery reads it."""
    return Claimed(id=row.id or 0, kind=row.kind, message_id=row.message_id,
                   payload=row.payload or {}, attempt=attempt)


async def set_delivery(session: AsyncSession, message_id: int | None, status: str, *,
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
