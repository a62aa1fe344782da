"""Merging two tickets of one customer: the other's conversation moves into the survivor, the
other is resolved, and each says so in an internal note."""

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.auth.models import User
from helpdesk.calls.models import Call
from helpdesk.errors import BadInput, NotFound
from helpdesk.inboxes import service as inbox_service
from helpdesk.search.models import SearchEntry
from helpdesk.tickets import queries as ticket_queries
from helpdesk.tickets import service
from helpdesk.tickets.models import Message, Status, Ticket, TicketUpdate


async def merge(session: AsyncSession, survivor_id: int, other_id: int, *, actor: User,
                notes: tuple[str, str]) -> int:
    """Move ``other_id``'s messages, calls and search entries into ``survivor_id`` and resolve it.

    ``notes`` are the internal notes left on the survivor and on the other (in the actor's
    language). Returns how many messages moved.
    """
    if survivor_id == other_id:
        raise BadInput("a ticket cannot be merged with itself")
    first, second = sorted((survivor_id, other_id))
    locked = {first: await ticket_queries.lock(session, first),
              second: await ticket_queries.lock(session, second)}
    survivor, other = locked[survivor_id], locked[other_id]
    if survivor is None or other is None or not (
            await inbox_service.works_in(session, actor, survivor.inbox_id)
            and await inbox_service.works_in(session, actor, other.inbox_id)):
        raise NotFound("ticket not found")
    if survivor.customer_id is None or survivor.customer_id != other.customer_id:
        raise BadInput("only tickets of the same customer can be merged")
    moved = await session.scalar(select(func.count()).select_from(Message)
                                 .where(col(Message.ticket_id) == other_id)) or 0
    await session.execute(update(Message).where(col(Message.ticket_id) == other_id)
                          .values(ticket_id=survivor_id))
    await session.execute(update(SearchEntry).where(col(SearchEntry.ticket_id) == other_id,
                                                    col(SearchEntry.kind) == "message")
                          .values(ticket_id=survivor_id))
    await session.execute(update(Call).where(col(Call.ticket_id) == other_id)
                          .values(ticket_id=survivor_id))
    survivor.conversation_key = survivor.conversation_key or other.conversation_key
    other.conversation_key = None
    await _settle(session, survivor, other, actor, notes)
    return int(moved)


async def _settle(session: AsyncSession, survivor: Ticket, other: Ticket, actor: User,
                  notes: tuple[str, str]) -> None:
    await session.flush()
    survivor_note, other_note = notes
    await service.reply(session, other, body=other_note, internal=True, actor=actor)
    if other.status != Status.resolved:
        await service.update(session, other, TicketUpdate(version=other.version,
                                                          status=Status.resolved), actor=actor)
    await service.reply(session, survivor, body=survivor_note, internal=True, actor=actor)
