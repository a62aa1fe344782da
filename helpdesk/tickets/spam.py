"""Blocking a sender as spam: their open tickets and whatever they send next are filed as
対応不要 (no action), tagged, and kept — customer text is never thrown away."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.auth.models import User
from helpdesk.customers.models import Customer
from helpdesk.db import utcnow
from helpdesk.errors import NotFound
from helpdesk.tickets import queries as ticket_queries
from helpdesk.tickets import service
from helpdesk.tickets.models import Status, Ticket, TicketUpdate

SPAM_TAG = "spam"


async def block(session: AsyncSession, customer_id: int, *, actor: User) -> int:
    """Block the customer; their open tickets move to 対応不要 with the spam tag. How many moved."""
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise NotFound("customer not found")
    customer.blocked_at = customer.blocked_at or utcnow()
    open_ids = [int(i) for i in await session.scalars(select(col(Ticket.id)).where(
        col(Ticket.customer_id) == customer_id, col(Ticket.status).in_(ticket_queries.OPEN_STATUSES)))
        if i is not None]
    for ticket_id in open_ids:
        ticket = await ticket_queries.lock(session, ticket_id)
        if ticket is None:
            continue
        tags = (await ticket_queries.tags_of(session, [ticket_id]))[ticket_id]
        await service.update(session, ticket, TicketUpdate(
            version=ticket.version, status=Status.no_action, tags=sorted({*tags, SPAM_TAG})),
            actor=actor)
    return len(open_ids)


async def unblock(session: AsyncSession, customer_id: int) -> None:
    """What the customer sends next is handled as usual again (filed tickets stay as they are)."""
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise NotFound("customer not found")
    customer.blocked_at = None
