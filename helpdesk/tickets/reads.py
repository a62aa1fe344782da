"""What each user has read, and the latest message of each ticket, for the inbox's rows."""

from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.storage.sessions import dialect_of
from helpdesk.tickets.models import Direction, Message, TicketRead

PREVIEW_CHARS = 80


@dataclass(frozen=True)
class RowExtras:
    """A ticket row's preview of its last public message, and whether it is unread."""

    preview: str = ""
    preview_inbound: bool = True
    unread: bool = False


def _latest() -> tuple[object, object]:
    inbound = func.max(case((col(Message.direction) == Direction.inbound, col(Message.id))))
    public = func.max(case((col(Message.internal).is_(False), col(Message.id))))
    return inbound, public


async def row_extras(session: AsyncSession, user_id: int, ticket_ids: list[int]) -> dict[int, RowExtras]:
    """Per ticket: the last public message's first words, and whether a customer message came
    after the newest one ``user_id`` has opened. Three small queries for a page of rows."""
    if not ticket_ids:
        return {}
    inbound, public = _latest()
    latest = (await session.execute(
        select(col(Message.ticket_id), inbound, public)  # type: ignore[call-overload]
        .where(col(Message.ticket_id).in_(ticket_ids)).group_by(col(Message.ticket_id)))).all()
    seen = dict((await session.execute(
        select(col(TicketRead.ticket_id), col(TicketRead.message_id))
        .where(col(TicketRead.user_id) == user_id, col(TicketRead.ticket_id).in_(ticket_ids)))).all())
    last_ids = [row[2] for row in latest if row[2] is not None]
    bodies = {mid: (text, direction) for mid, text, direction in (await session.execute(
        select(col(Message.id), func.substr(col(Message.body_text), 1, PREVIEW_CHARS + 1),
               col(Message.direction)).where(col(Message.id).in_(last_ids)))).all()}
    extras = {}
    for ticket_id, last_inbound, last_public in latest:
        text, direction = bodies.get(last_public, ("", Direction.inbound))
        extras[ticket_id] = RowExtras(
            preview=_shorten(text), preview_inbound=direction == Direction.inbound,
            unread=last_inbound is not None and last_inbound > seen.get(ticket_id, 0))
    return extras


def _shorten(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[:PREVIEW_CHARS].rstrip() + "…"


async def read_up_to(session: AsyncSession, ticket_id: int) -> int:
    """The ticket's newest customer message id (0 when none)."""
    latest = await session.scalar(select(func.max(col(Message.id))).where(
        col(Message.ticket_id) == ticket_id, col(Message.direction) == Direction.inbound))
    return int(latest or 0)


async def seen_up_to(session: AsyncSession, user_id: int, ticket_id: int) -> int:
    """The newest customer message id ``user_id`` has seen on the ticket."""
    seen = await session.scalar(select(col(TicketRead.message_id)).where(
        col(TicketRead.user_id) == user_id, col(TicketRead.ticket_id) == ticket_id))
    return int(seen or 0)


async def mark_read(session: AsyncSession, *, user_id: int, ticket_id: int, message_id: int) -> None:
    """Remember that ``user_id`` has seen the ticket up to ``message_id`` (never moves back)."""
    insert = pg_insert if dialect_of(session) == "postgresql" else sqlite_insert
    stmt = insert(TicketRead).values(user_id=user_id, ticket_id=ticket_id, message_id=message_id)
    stmt = stmt.on_conflict_do_update(
        index_elements=["user_id", "ticket_id"],
        set_={"message_id": func.max(stmt.excluded.message_id, TicketRead.message_id)}
        if dialect_of(session) == "sqlite"
        else {"message_id": func.greatest(stmt.excluded.message_id, TicketRead.message_id)})
    await session.execute(stmt)
