"""Tickets: the version bump and the events every change to a ticket or its thread publishes."""


from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db import utcnow
from helpdesk.realtime import service as events
from helpdesk.tickets.models import Message, Ticket, TicketPublic
from helpdesk.tickets.queries import public, to_public


def touch(ticket: Ticket) -> None:
    ticket.version += 1
    ticket.updated_at = utcnow()


async def publish_ticket(session: AsyncSession, ticket: Ticket, kind: str,
                          reason: dict[str, object] | None = None) -> TicketPublic:
    # A ticket opened in this transaction has no tags yet: skip the query.
    result = to_public(ticket, []) if kind == "ticket.created" else await public(session, ticket)
    data: dict[str, object] = {"ticket": result.model_dump(mode="json")}
    if reason is not None:
        data["reason"] = reason
    events.record(session, type=kind, data=data, inbox_id=ticket.inbox_id)
    return result


def publish_message(session: AsyncSession, ticket: Ticket, message: Message) -> None:
    events.record(session, type="message.created", inbox_id=ticket.inbox_id, data={
        "ticket_id": ticket.id, "ticket_version": ticket.version, "message_id": message.id,
        "direction": message.direction, "internal": message.internal,
        "channel": message.channel, "author": message.author,
        "author_id": message.author_user_id, "preview": message.body_text[:140],
    })
