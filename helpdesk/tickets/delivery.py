"""Whether a reply can leave on its channel, and sending a failed one again.

A reply nothing can send is refused when it is written, with the reason, rather than left
queued for ever; one a provider refused is marked failed with the provider's reason and can be
sent again from the thread.
"""

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.errors import BadInput, Conflict, NotFound
from helpdesk.outbox import service as outbox
from helpdesk.outbox.service import SenderRegistry
from helpdesk.realtime import events
from helpdesk.tickets import queries as ticket_queries
from helpdesk.tickets.models import Channel, Direction, Message, MessagePublic, Ticket

NOT_SET_UP = "this channel has no sending set up"
# Tickets whose own channel carries no text, and where their replies may go instead.
OTHER_REPLY_CHANNELS: dict[Channel, frozenset[Channel]] = {Channel.phone: frozenset({Channel.sms})}


def reply_kind(channel: Channel | str) -> str:
    """The outbox kind a reply on ``channel`` is queued as."""
    return f"reply.{channel}"


def reply_channel(ticket: Ticket, requested: Channel | None) -> Channel:
    """The channel a reply goes out on: the ticket's own unless another is allowed for it."""
    if requested is None or requested == ticket.channel:
        return ticket.channel
    if requested in OTHER_REPLY_CHANNELS.get(ticket.channel, frozenset()):
        return requested
    raise BadInput(f"channel: a {ticket.channel} ticket is not answered by {requested}")


def refusal(registry: SenderRegistry, channel: Channel | str) -> str | None:
    """Why a reply on ``channel`` cannot be sent here, or None when something sends it."""
    return registry.refusal(reply_kind(channel))


def ensure_sendable(registry: SenderRegistry, channel: Channel | str) -> None:
    """409 with the reason when nothing here can send a reply on ``channel``."""
    reason = refusal(registry, channel)
    if reason is not None:
        raise Conflict(f"{NOT_SET_UP}: {reason}", reason=reason)


async def retry(session: AsyncSession, ticket: Ticket, message_id: int, *,
                registry: SenderRegistry) -> MessagePublic:
    """Queue a failed reply again; 404 for no such reply, 409 unless it failed or if unsendable."""
    assert ticket.id is not None
    await ticket_queries.lock(session, ticket.id)  # two clicks at once requeue it once
    message = await session.get(Message, message_id)
    if (message is None or message.ticket_id != ticket.id or message.internal
            or message.direction != Direction.outbound):
        raise NotFound("message not found")
    if message.delivery_status != "failed":
        raise Conflict("only a reply that failed can be sent again")
    ensure_sendable(registry, message.channel)
    assert message.id is not None
    await outbox.requeue(session, message_id=message.id, kind=reply_kind(message.channel),
                         payload={"ticket_id": ticket.id})
    message.delivery_status, message.delivery_error = "queued", None
    events.record(session, events.MessageUpdated(
        inbox_id=ticket.inbox_id, ticket_id=ticket.id, message_id=message.id,
        channel=message.channel, direction=message.direction, delivery_status="queued",
        error=None))
    return ticket_queries.message_public(message, [])
