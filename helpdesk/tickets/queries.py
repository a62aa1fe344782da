"""Tickets as operators read them: filtered lists with cursors, details, tags, counts, row locks."""

import base64
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, overload

from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import SQLModel, col

from helpdesk import normalize
from helpdesk.auth.models import User
from helpdesk.config import DEFAULT_REGION
from helpdesk.customers import service as customers
from helpdesk.errors import BadInput
from helpdesk.inboxes import service as inbox_service
from helpdesk.search import service as search
from helpdesk.tickets import (
    counts,  # also keeps ticket_count current on every flush
    searching,
)
from helpdesk.tickets.models import (
    Attachment,
    AttachmentPublic,
    Channel,
    Message,
    MessagePublic,
    Status,
    Tag,
    Ticket,
    TicketDetail,
    TicketPublic,
    TicketTag,
)

OPEN_STATUSES = (Status.unhandled, Status.in_progress, Status.pending)


async def message_by_external_id(
    session: AsyncSession, channel: Channel, external_id: str
) -> Message | None:
    return await session.scalar(
        select(Message).where(col(Message.channel) == channel,
                              col(Message.external_id) == external_id)
    )


async def lock(session: AsyncSession, ticket_id: int) -> Ticket | None:
    """The ticket, row-locked until commit, or None."""
    # populate_existing: a ticket loaded earlier in the request (CurrentTicket) must be re-read
    # once the lock is held, or a racing writer's version goes unseen and both replies pass.
    return await session.scalar(
        select(Ticket).where(col(Ticket.id) == ticket_id).with_for_update()
        .execution_options(populate_existing=True)
    )


@dataclass(frozen=True)
class TicketFilter:
    status: Status | None = None
    assignee: str | None = None
    channel: Channel | None = None
    customer_id: int | None = None
    tag: str | None = None
    q: str | None = None
    inbox_id: int | None = None
    sort: str = "activity"  # or "due": soonest SLA deadline first, tickets without one last


async def list_tickets(
    session: AsyncSession, user: User, filters: TicketFilter, *, cursor: str | None,
    limit: int, region: str = DEFAULT_REGION,
) -> tuple[list[TicketPublic], str | None]:
    """A page of tickets ``user`` may see, newest activity (or soonest due) first, by keyset."""
    stmt = select(Ticket)
    visible = await inbox_service.visible_inbox_ids(session, user)
    if visible is not None:
        stmt = stmt.where(col(Ticket.inbox_id).in_(visible))
    stmt = _apply_filters(stmt, filters, user)
    terms = search.terms(filters.q, region) if filters.q else []
    if filters.sort == "due":
        stmt = _by_due(stmt, cursor)
        if terms:
            stmt = await searching.narrowed(session, stmt, terms)
    elif cursor:
        at, ticket_id = _decode_cursor(cursor)
        stmt = stmt.where(or_(col(Ticket.updated_at) < at,
                              and_(col(Ticket.updated_at) == at, col(Ticket.id) < ticket_id)))
    if terms and filters.sort != "due":
        rows = await searching.page(session, stmt, terms, limit=limit)
    else:
        if filters.sort != "due":
            stmt = stmt.order_by(col(Ticket.updated_at).desc(), col(Ticket.id).desc())
        rows = list(await session.scalars(stmt.limit(limit + 1)))
    page, more = rows[:limit], len(rows) > limit
    items = await publics(session, page)
    encode = _encode_due_cursor if filters.sort == "due" else _encode_cursor
    next_cursor = encode(page[-1]) if more and page else None
    return items, next_cursor


def _by_due(stmt, cursor: str | None):  # type: ignore[no-untyped-def]
    due, ticket_id = col(Ticket.sla_due_at), col(Ticket.id)
    if cursor:
        at, after_id = _decode_cursor(cursor, due=True)
        if at is None:
            stmt = stmt.where(due.is_(None), ticket_id > after_id)
        else:
            stmt = stmt.where(or_(due > at, and_(due == at, ticket_id > after_id), due.is_(None)))
    return stmt.order_by(due.asc().nulls_last(), ticket_id.asc())


def _apply_filters(stmt, filters: TicketFilter, user: User):  # type: ignore[no-untyped-def]
    if filters.status is not None:
        stmt = stmt.where(col(Ticket.status) == filters.status)
    if filters.assignee == "me":
        stmt = stmt.where(col(Ticket.assignee_id) == user.id)
    elif filters.assignee == "none":
        stmt = stmt.where(col(Ticket.assignee_id).is_(None))
    elif filters.assignee:
        stmt = stmt.where(col(Ticket.assignee_id) == _int(filters.assignee, "assignee"))
    if filters.channel is not None:
        stmt = stmt.where(col(Ticket.channel) == filters.channel)
    if filters.customer_id is not None:
        stmt = stmt.where(col(Ticket.customer_id) == filters.customer_id)
    if filters.inbox_id is not None:
        stmt = stmt.where(col(Ticket.inbox_id) == filters.inbox_id)
    if filters.tag:
        tagged = select(col(TicketTag.ticket_id)).join(Tag, col(Tag.id) == TicketTag.tag_id).where(
            col(Tag.name) == normalize.nfkc(filters.tag))
        stmt = stmt.where(col(Ticket.id).in_(tagged))
    return stmt


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise BadInput(f"{name} must be an id, 'me' or 'none'") from None


def _encode_cursor(ticket: Ticket) -> str:
    raw = f"{ticket.updated_at.isoformat()}|{ticket.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _encode_due_cursor(ticket: Ticket) -> str:
    due = ticket.sla_due_at.isoformat() if ticket.sla_due_at else ""
    return base64.urlsafe_b64encode(f"due|{due}|{ticket.id}".encode()).decode()


@overload
def _decode_cursor(cursor: str) -> tuple[datetime, int]: ...


@overload
def _decode_cursor(cursor: str, *, due: Literal[True]) -> tuple[datetime | None, int]: ...


def _decode_cursor(cursor: str, *, due: bool = False) -> tuple[datetime | None, int]:
    try:
        parts = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        if due != (parts[0] == "due"):
            raise ValueError("cursor of another order")
        at, ticket_id = parts[1:] if due else parts
        return (datetime.fromisoformat(at) if at or not due else None), int(ticket_id)
    except (ValueError, UnicodeDecodeError):
        raise BadInput("cursor is not valid") from None


_TAGS_OF = (select(col(TicketTag.ticket_id), col(Tag.name)).join(Tag, col(Tag.id) == TicketTag.tag_id)
            .where(col(TicketTag.ticket_id).in_(bindparam("ticket_ids", expanding=True)))
            .order_by(col(Tag.name)))


async def tags_of(
    session: AsyncSession | AsyncConnection, ticket_ids: Iterable[int]
) -> dict[int, list[str]]:
    """Tag names per ticket, one query for the lot (on a session, or its connection)."""
    rows = await session.execute(_TAGS_OF, {"ticket_ids": list(ticket_ids)})
    found: dict[int, list[str]] = defaultdict(list)
    for ticket_id, name in rows.all():
        found[ticket_id].append(name)
    return found


async def publics(session: AsyncSession, tickets: list[Ticket]) -> list[TicketPublic]:
    """Tickets as the API shows them."""
    tags = await tags_of(session, [t.id for t in tickets if t.id is not None])
    return [to_public(t, tags.get(t.id or 0, [])) for t in tickets]


def to_public(ticket: Ticket, tags: list[str]) -> TicketPublic:
    """One ticket as the API shows it."""
    return TicketPublic.model_validate({**_attributes(ticket, TicketPublic), "tags": tags})


async def public(session: AsyncSession, ticket: Ticket) -> TicketPublic:
    """One ticket with its tags."""
    return (await publics(session, [ticket]))[0]


async def detail(session: AsyncSession, ticket: Ticket) -> TicketDetail:
    """The ticket with its whole thread and a summary of its customer."""
    assert ticket.id is not None
    messages = list(await session.scalars(
        select(Message).where(col(Message.ticket_id) == ticket.id)
        .order_by(col(Message.created_at), col(Message.id))
    ))
    attachments = await attachments_of(session, [m.id for m in messages if m.id is not None])
    summary = None
    if ticket.customer_id is not None:
        summary = (await customers.summaries(session, [ticket.customer_id])).get(ticket.customer_id)
    base = await public(session, ticket)
    return TicketDetail(
        **base.model_dump(),
        messages=[message_public(m, attachments.get(m.id or 0, [])) for m in messages],
        customer=summary,
    )


async def attachments_of(
    session: AsyncSession, message_ids: list[int]
) -> dict[int, list[AttachmentPublic]]:
    rows = await session.execute(
        select(col(Attachment.id), col(Attachment.message_id), col(Attachment.filename),
               col(Attachment.content_type), col(Attachment.size))
        .where(col(Attachment.message_id).in_(message_ids))
    )
    found: dict[int, list[AttachmentPublic]] = defaultdict(list)
    for att_id, message_id, filename, content_type, size in rows.all():
        found[message_id].append(AttachmentPublic(
            id=att_id or 0, filename=filename, content_type=content_type, size=size))
    return found


def message_public(message: Message, attachments: list[AttachmentPublic]) -> MessagePublic:
    """One message as the API shows it."""
    return MessagePublic.model_validate(
        {**_attributes(message, MessagePublic), "attachments": attachments})


def _attributes(row: object, shape: type[SQLModel]) -> dict[str, object]:
    """The attributes of a table row that an API shape names (no serialising round trip)."""
    return {name: getattr(row, name) for name in shape.model_fields if hasattr(row, name)}


async def inbox_of(session: AsyncSession, ticket_id: int) -> int | None:
    """The inbox a ticket belongs to; None when there is no such ticket."""
    return await session.scalar(select(col(Ticket.inbox_id)).where(col(Ticket.id) == ticket_id))


async def count_by_status(session: AsyncSession, user: User) -> dict[str, int]:
    """Tickets per status among those ``user`` may see, from the kept counters (no COUNT)."""
    return await counts.by_status(session, inbox_ids=await inbox_service.visible_inbox_ids(session, user))


async def open_ticket_token(session: AsyncSession, *, customer_id: int, inbox_id: int) -> str | None:
    """The token of the customer's most recently active open ticket in ``inbox_id``, if any."""
    return await session.scalar(
        select(col(Ticket.token)).where(col(Ticket.customer_id) == customer_id,
                                        col(Ticket.inbox_id) == inbox_id,
                                        col(Ticket.status).in_(OPEN_STATUSES))
        .order_by(col(Ticket.updated_at).desc(), col(Ticket.id).desc()).limit(1)
    )
