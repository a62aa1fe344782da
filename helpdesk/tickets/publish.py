"""Tickets: the version bump and the events every change to a ticket or its thread publishes."""


from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db import utcnow
from helpdesk.realtime import events
from helpdesk.tickets.models import Message, Ticket, TicketPublic
from helpdesk.tickets.queries import public, to_public


def touch(ticket: Ticket) -> None:
    ticket.version += 1
    ticket.updated_at = utcnow()


async def publish_ticket(session: AsyncSession, ticket: Ticket, kind: type[events.TicketEvent],
                         reason: dict[str, object] | None = None) -> TicketPublic:
    # A ticket opened in this transaction has no tags yet: skip the query.
    created = kind is events.TicketCreated
    result = to_public(ticket, []) if created else await public(session, ticket)
    events.record(session, kind(inbox_id=ticket.inbox_id, ticket=result.model_dump(mode="json"),
                                reason=events.ABSENT if reason is None else reason))
    return result


def publish_message(session: AsyncSession, ticket: Ticket, message: Message) -> None:
    events.record(session, events.MessageCreated(
        inbox_id=ticket.inbox_id, ticket_id=ticket.id, ticket_version=ticket.version,
        message_id=message.id, direction=message.direction, internal=message.internal,
        channel=message.channel, author=message.author, author_id=message.author_user_id,
        preview=message.body_text[:140]))
