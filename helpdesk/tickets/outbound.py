"""A conversation staff start: a new ticket whose first message is ours, sent on the channel
where the customer can be reached (email, SMS, LINE)."""

import secrets

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk import normalize
from helpdesk.auth.models import User
from helpdesk.customers import service as customers
from helpdesk.errors import BadInput, Forbidden
from helpdesk.inboxes import service as inbox_service
from helpdesk.realtime import events
from helpdesk.search import service as search
from helpdesk.storage.counters import next_counter
from helpdesk.tickets import queries as ticket_queries
from helpdesk.tickets import service
from helpdesk.tickets.models import Channel, Ticket

# Which identity a channel needs to reach the customer.
REACHED_BY = {Channel.email: "email", Channel.sms: "phone", Channel.line: "line"}


async def reachable_channels(session: AsyncSession, customer_id: int) -> list[Channel]:
    """The channels this customer can be written to on, from the identities they have."""
    kinds = {kind for kind, _ in (await customers.identities_by_customer(session, [customer_id]))
             .get(customer_id, [])}
    return [channel for channel, kind in REACHED_BY.items() if kind in kinds]


async def start(session: AsyncSession, *, customer_id: int, inbox_id: int, channel: Channel,
                subject: str, body: str, actor: User) -> Ticket:
    """Open a ticket in ``inbox_id`` and send ``body`` to the customer through the outbox."""
    if not body.strip():
        raise BadInput("write something before sending")
    if not await inbox_service.works_in(session, actor, inbox_id):
        raise Forbidden("you do not work in that inbox")
    if channel not in await reachable_channels(session, customer_id):
        raise BadInput("the customer cannot be reached on that channel")
    title = normalize.nfkc(subject).strip()[:300] or body.strip().splitlines()[0][:80]
    ticket = Ticket(number=await next_counter(session, "ticket_number"), subject=title,
                    channel=channel, inbox_id=inbox_id, customer_id=customer_id,
                    token=secrets.token_hex(8), assignee_id=actor.id)
    session.add(ticket)
    await session.flush()
    assert ticket.id is not None
    search.add(session, kind="subject", ref_id=ticket.id, text_=title, ticket_id=ticket.id,
               customer_id=customer_id)
    events.record(session, events.TicketCreated(
        inbox_id=inbox_id, ticket=ticket_queries.to_public(ticket, []).model_dump(mode="json")))
    await service.reply(session, ticket, body=body, internal=False, actor=actor)
    return ticket
