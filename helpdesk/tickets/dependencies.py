"""Loading a ticket the caller may see, or 404."""

from typing import Annotated

from fastapi import Depends

from helpdesk.auth.dependencies import CurrentUser
from helpdesk.db import ReadSessionDep
from helpdesk.errors import NotFound
from helpdesk.inboxes import service as inbox_service
from helpdesk.tickets.models import Ticket


async def visible_ticket(ticket_id: int, session: ReadSessionDep, user: CurrentUser) -> Ticket:
    """The ticket, if it exists in an inbox the user works; 404 otherwise (no existence leak)."""
    ticket = await session.get(Ticket, ticket_id)
    if ticket is None or not await inbox_service.works_in(session, user, ticket.inbox_id):
        raise NotFound("ticket not found")
    return ticket


CurrentTicket = Annotated[Ticket, Depends(visible_ticket)]
