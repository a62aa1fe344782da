"""Macros: a reply template that also sets the ticket's status and adds tags when it is sent."""

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk import normalize
from helpdesk.auth.models import User
from helpdesk.replies.models import ReplyTemplate
from helpdesk.tickets import queries as ticket_queries
from helpdesk.tickets import service
from helpdesk.tickets.models import Status, Ticket, TicketUpdate


def is_macro(template: ReplyTemplate) -> bool:
    """Whether sending the template changes more than the conversation."""
    return bool(template.set_status or template.add_tags.strip())


async def apply(session: AsyncSession, ticket: Ticket, template: ReplyTemplate, *,
                actor: User) -> None:
    """Set the macro's status and add its tags to a ticket already locked for the reply."""
    values: dict[str, object] = {"version": ticket.version}
    if template.set_status and template.set_status != ticket.status:
        status = Status(template.set_status)
        values.update(status=status,
                      pending_reason=template.name if status == Status.pending else None)
    if template.add_tags.strip():
        assert ticket.id is not None
        now = (await ticket_queries.tags_of(session, [ticket.id]))[ticket.id]
        added = {normalize.nfkc(t.strip()) for t in template.add_tags.split(",") if t.strip()}
        if not added <= set(now):
            values["tags"] = sorted(set(now) | added)
    if len(values) > 1:
        await service.update(session, ticket, TicketUpdate.model_validate(values), actor=actor)
