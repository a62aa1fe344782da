"""One change applied to many tickets at once (the inbox's bulk actions)."""

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk import normalize
from helpdesk.auth.models import User
from helpdesk.errors import BadInput, HelpdeskError
from helpdesk.inboxes import service as inbox_service
from helpdesk.tickets import queries as ticket_queries
from helpdesk.tickets import service
from helpdesk.tickets.models import Status, Ticket, TicketUpdate

MAX_TICKETS = 200
KEEP = "keep"  # the assignee is left as it is


@dataclass(frozen=True)
class BulkChange:
    """What to do to every selected ticket; None (or KEEP) leaves a field alone."""

    status: Status | None = None
    pending_reason: str | None = None
    assignee: int | str | None = KEEP  # a user id, None for nobody, or KEEP
    add_tags: tuple[str, ...] = ()
    remove_tags: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return (self.status is None and self.assignee == KEEP and not self.add_tags
                and not self.remove_tags)


@dataclass
class BulkResult:
    changed: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)  # (ticket number, why)


async def apply(session: AsyncSession, ticket_ids: list[int], change: BulkChange, *,
                actor: User) -> BulkResult:
    """Apply ``change`` to each ticket ``actor`` may see; what is refused for one ticket (an
    assignee they may not choose) is said, and the rest of that ticket's change still applies."""
    if change.is_empty():
        raise BadInput("choose what to change")
    if not ticket_ids or len(ticket_ids) > MAX_TICKETS:
        raise BadInput("select the tickets to change (at most 200 at once)")
    if change.status == Status.pending and not normalize.nfkc(change.pending_reason or ""):
        raise BadInput("pending_reason: 保留 needs a reason")
    visible = await inbox_service.visible_inbox_ids(session, actor)
    stmt = select(col(Ticket.id)).where(col(Ticket.id).in_(ticket_ids)).order_by(col(Ticket.id))
    if visible is not None:
        stmt = stmt.where(col(Ticket.inbox_id).in_(visible))
    result = BulkResult()
    ids: list[int] = [int(i) for i in await session.scalars(stmt) if i is not None]
    for ticket_id in ids:
        ticket = await ticket_queries.lock(session, ticket_id)
        if ticket is None:
            continue
        values = await _values(session, ticket, change, actor, result)
        if set(values) - {"version"}:
            try:
                async with session.begin_nested():
                    await service.update(session, ticket, TicketUpdate.model_validate(values),
                                         actor=actor)
            except HelpdeskError as refused:
                result.refused.append((ticket.number, str(refused)))
                continue
            result.changed += 1
    return result


async def _values(session: AsyncSession, ticket: Ticket, change: BulkChange, actor: User,
                  result: BulkResult) -> dict[str, object]:
    values: dict[str, object] = {"version": ticket.version}
    if change.status is not None and change.status != ticket.status:
        values.update(status=change.status, pending_reason=change.pending_reason)
    if change.assignee != KEEP and change.assignee != ticket.assignee_id:
        assignee = change.assignee if isinstance(change.assignee, int) else None
        refusal = await service.assignment_refusal(session, ticket, assignee, actor)
        if refusal is None:
            values["assignee_id"] = assignee
        else:
            result.refused.append((ticket.number, refusal))
    if change.add_tags or change.remove_tags:
        assert ticket.id is not None
        now = set((await ticket_queries.tags_of(session, [ticket.id]))[ticket.id])
        wanted = (now | {normalize.nfkc(t) for t in change.add_tags}) - {
            normalize.nfkc(t) for t in change.remove_tags}
        if wanted != now:
            values["tags"] = sorted(wanted)
    return values
