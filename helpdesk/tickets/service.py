"""Tickets: the one ingest path every channel uses, and what operators do to tickets."""

import base64
import secrets
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, overload

import nh3
from sqlalchemy import and_, bindparam, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import SQLModel, col

from helpdesk import normalize
from helpdesk.assignment import service as assignment
from helpdesk.audit import service as audit
from helpdesk.auth.models import User
from helpdesk.customers import service as customers
from helpdesk.db import utcnow
from helpdesk.errors import BadInput, Conflict, Forbidden
from helpdesk.history import service as history
from helpdesk.outbox import service as outbox
from helpdesk.realtime import service as events
from helpdesk.routing import service as routing
from helpdesk.search import service as search
from helpdesk.sla import service as sla
from helpdesk.storage.counters import next_counter
from helpdesk.storage.locks import serialize_on
from helpdesk.storage.sessions import dialect_of
from helpdesk.tickets import counts  # also keeps ticket_count current on every flush
from helpdesk.tickets.models import (
    Attachment,
    AttachmentPublic,
    Channel,
    Direction,
    InboundAttachment,
    InboundMessage,
    IngestResult,
    Message,
    MessagePublic,
    Status,
    Tag,
    Ticket,
    TicketDetail,
    TicketPublic,
    TicketTag,
    TicketUpdate,
)

MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
OPEN_STATUSES = (Status.unhandled, Status.in_progress, Status.pending)


@dataclass(frozen=True)
class IngestOptions:
    region: str = "JP"
    reopen_window: timedelta = timedelta(days=14)


# ---- ingest ------------------------------------------------------------------------------


async def ingest(
    session: AsyncSession, inbound: InboundMessage, *, options: IngestOptions | None = None
) -> IngestResult:
    """Turn one inbound message into customer, ticket, message, events and outbox rows.

    Idempotent by (channel, external_id): a retry, even a concurrent one, returns the original.
    The caller commits.
    """
    options = options or IngestOptions()
    await serialize_on(session, f"inbound:{inbound.channel}:{inbound.external_id}")
    existing = await _message_by_external_id(session, inbound.channel, inbound.external_id)
    if existing is not None:
        return IngestResult(ticket_id=existing.ticket_id, message_id=existing.id, duplicate=True)
    inbox = await routing.inbox_by_name(session, inbound.inbox)
    sender = inbound.sender
    identities = customers.identities_of(
        email=sender.email, phone=sender.phone, line_id=sender.line_id,
        meta_id=sender.meta_id, chat_id=sender.chat_id, region=options.region,
    )
    customer = None if sender.withheld and not identities else await customers.resolve(
        session, identities=identities, name=sender.name, region=options.region
    )
    customer_id = customer.id if customer is not None else None
    assert inbox.id is not None
    ticket = await _conversation_ticket(session, inbound, customer_id, inbox.id, options)
    created = ticket is None
    if ticket is None:
        ticket = await _open_ticket(session, inbound, customer_id=customer_id, inbox_id=inbox.id)
    else:
        _touch(ticket)
    before = ticket.status
    author = (customer.name if customer is not None else None) or sender.name
    message = await _append_inbound(session, ticket, inbound, author=author)
    if customer is not None and customer.blocked_at is not None:  # blocked as spam: kept, out of the way
        ticket.status = Status.no_action
    await _keep_sla(session, ticket, before, message.created_at, created=created)
    # Last, so the inbox's assignment lock is held for as short a time as possible.
    reason = await auto_assign(session, ticket, why="new") \
        if ticket.assignee_id is None and ticket.status == Status.unhandled else None
    await _publish_ticket(session, ticket, "ticket.created" if created else "ticket.updated")
    if reason is not None:
        await _publish_ticket(session, ticket, "ticket.assigned", reason=reason)
    _publish_message(session, ticket, message)
    assert message.id is not None and ticket.id is not None
    return IngestResult(ticket_id=ticket.id, message_id=message.id, duplicate=False)


async def _message_by_external_id(
    session: AsyncSession, channel: Channel, external_id: str
) -> Message | None:
    return await session.scalar(
        select(Message).where(col(Message.channel) == channel,
                              col(Message.external_id) == external_id)
    )


async def _conversation_ticket(
    session: AsyncSession, inbound: InboundMessage, customer_id: int | None, inbox_id: int,
    options: IngestOptions,
) -> Ticket | None:
    """The ticket this message continues: by references, token, subject number, then thread."""
    if inbound.references:
        ticket_id = await session.scalar(
            select(col(Message.ticket_id)).where(col(Message.external_id).in_(inbound.references))
            .order_by(col(Message.id).desc()).limit(1)
        )
        if ticket_id is not None:
            return await _locked_ticket(session, ticket_id)
    if inbound.ticket_token:
        found = await session.scalar(select(col(Ticket.id)).where(col(Ticket.token) == inbound.ticket_token))
        if found is not None:
            return await _locked_ticket(session, found)
    if inbound.ticket_number is not None and customer_id is not None:
        # A subject tag is easy to type, so it only threads for the same customer.
        found = await session.scalar(select(col(Ticket.id)).where(
            col(Ticket.number) == inbound.ticket_number, col(Ticket.customer_id) == customer_id))
        if found is not None:
            return await _locked_ticket(session, found)
    if inbound.channel == Channel.email:
        return None
    return await _recent_thread(session, inbound, customer_id, inbox_id, options)


async def _recent_thread(
    session: AsyncSession, inbound: InboundMessage, customer_id: int | None, inbox_id: int,
    options: IngestOptions,
) -> Ticket | None:
    """For chat-like channels: the customer's latest ticket there, unless closed long ago."""
    if customer_id is None and not inbound.conversation_key:
        return None  # nobody to continue a thread with
    stmt = select(col(Ticket.id)).where(col(Ticket.channel) == inbound.channel,
                                   col(Ticket.inbox_id) == inbox_id)
    if inbound.conversation_key:
        stmt = stmt.where(col(Ticket.conversation_key) == inbound.conversation_key)
    else:
        stmt = stmt.where(col(Ticket.customer_id) == customer_id)
    cutoff = utcnow() - options.reopen_window
    stmt = stmt.where(or_(col(Ticket.status).in_(OPEN_STATUSES),
                          col(Ticket.status) == Status.no_action,
                          col(Ticket.updated_at) >= cutoff))
    found = await session.scalar(stmt.order_by(col(Ticket.updated_at).desc()).limit(1))
    return await _locked_ticket(session, found) if found is not None else None


async def _locked_ticket(session: AsyncSession, ticket_id: int) -> Ticket | None:
    # populate_existing: a ticket loaded earlier in the request (CurrentTicket) must be re-read
    # once the lock is held, or a racing writer's version goes unseen and both replies pass.
    return await session.scalar(
        select(Ticket).where(col(Ticket.id) == ticket_id).with_for_update()
        .execution_options(populate_existing=True)
    )


async def _open_ticket(
    session: AsyncSession, inbound: InboundMessage, *, customer_id: int | None, inbox_id: int
) -> Ticket:
    subject = (inbound.subject or "").strip()[:300] or _subject_from(inbound.body_text)
    ticket = Ticket(
        number=await next_counter(session, "ticket_number"), subject=subject,
        channel=inbound.channel, inbox_id=inbox_id, customer_id=customer_id,
        conversation_key=inbound.conversation_key, token=secrets.token_hex(8),
    )
    session.add(ticket)
    await session.flush()
    assert ticket.id is not None
    search.add(session, kind="subject", ref_id=ticket.id, text_=subject,
               ticket_id=ticket.id, customer_id=customer_id)
    return ticket


async def auto_assign(session: AsyncSession, ticket: Ticket, *, why: str,
                      previous: int | None = None) -> dict[str, object] | None:
    """Assign by the inbox's policy; the reason when the assignee changed, else None.

    ``previous``: an absent assignee whose ticket goes to someone else, or back to the queue.
    The caller publishes the change.
    """
    decision = await assignment.choose(session, ticket, exclude={previous} if previous else None)
    if decision is None or (decision.user_id is None and previous is None):
        return None
    reason = {**decision.reason, "why": why}
    if previous is not None:
        reason["previous_assignee_id"] = previous
    ticket.assignee_id = decision.user_id
    await session.flush()  # the next choice in this transaction counts this ticket's load
    assert ticket.id is not None
    history.record(session, ticket_id=ticket.id, data={"assignee_id": decision.user_id, "reason": reason},
                   type="ticket.assigned" if decision.user_id is not None else "ticket.unassigned")
    return reason


async def publish_assignment(session: AsyncSession, ticket: Ticket, reason: dict[str, object]) -> None:
    """Tell everyone a policy (re)assigned ``ticket``, which moved on a version."""
    _touch(ticket)
    await _publish_ticket(session, ticket, "ticket.updated")
    await _publish_ticket(session, ticket, "ticket.assigned", reason=reason)


async def _keep_sla(session: AsyncSession, ticket: Ticket, before: Status, at: datetime, *,
                    created: bool) -> None:
    policy = await sla.policy(session)
    if created:
        sla.on_opened(policy, ticket, at)
    elif not (before == ticket.status == Status.no_action):
        sla.on_inbound(policy, ticket, before, at)


def _subject_from(body: str) -> str:
    first_line = next((line.strip() for line in body.splitlines() if line.strip()), "")
    return first_line[:80]


async def _append_inbound(
    session: AsyncSession, ticket: Ticket, inbound: InboundMessage, *, author: str | None
) -> Message:
    received = inbound.received_at or utcnow()
    assert ticket.id is not None
    message = Message(
        ticket_id=ticket.id, direction=Direction.inbound, channel=inbound.channel,
        author=author, body_text=inbound.body_text,
        body_html=sanitize_html(inbound.body_html) if inbound.body_html else None,
        external_id=inbound.external_id, provider_message_id=inbound.provider_message_id,
        auto_reply=inbound.auto_reply, created_at=received,
    )
    session.add(message)
    await session.flush()
    assert message.id is not None
    _store_attachments(session, message.id, inbound)
    search.add(session, kind="message", ref_id=message.id, text_=inbound.body_text,
               ticket_id=ticket.id, customer_id=ticket.customer_id)
    # Auto-replies never reopen a ticket; nothing but 対応不要 stays put for a real message.
    if not inbound.auto_reply and ticket.status != Status.no_action:
        ticket.status = Status.unhandled
        ticket.pending_reason = None
    ticket.last_message_at = received
    return message


def _store_attachments(session: AsyncSession, message_id: int, inbound: InboundMessage) -> None:
    for item in inbound.attachments:
        if len(item.data) > MAX_ATTACHMENT_BYTES:
            continue
        session.add(_attachment_row(message_id, item))


def _attachment_row(message_id: int, item: InboundAttachment) -> Attachment:
    return Attachment(
        message_id=message_id, filename=item.filename[:255],
        content_type=item.content_type[:127], size=len(item.data),
        content_id=item.content_id, data=item.data,
    )


async def add_late_content(
    session: AsyncSession, *, message_id: int, attachments: list[InboundAttachment],
    note: str | None = None,
) -> bool:
    """Attach content fetched after ingest (a LINE photo) to a message, or note why it is missing.

    The caller decides how big is acceptable. Operators are told with ``message.updated``.
    False when the message no longer exists.
    """
    message = await session.get(Message, message_id)
    if message is None:
        return False
    session.add_all(_attachment_row(message_id, item) for item in attachments)
    if note:
        message.body_text = f"{message.body_text}\n{note}" if message.body_text else note
    await session.flush()
    inbox_id = await inbox_of(session, message.ticket_id)
    shown = (await _attachments_of(session, [message_id])).get(message_id, [])
    events.record(session, type="message.updated", inbox_id=inbox_id, data={
        "ticket_id": message.ticket_id, "message_id": message.id, "channel": message.channel,
        "direction": message.direction, "delivery_status": message.delivery_status, "error": None,
        "attachments": [a.model_dump() for a in shown], "preview": message.body_text[:140],
    })
    return True


def _touch(ticket: Ticket) -> None:
    ticket.version += 1
    ticket.updated_at = utcnow()


def sanitize_html(html: str) -> str:
    """Customer HTML made inert: no scripts, handlers, or remote loads (images need consent)."""
    return nh3.clean(
        html,
        url_schemes={"http", "https", "mailto", "cid", "tel"},
        link_rel="noopener noreferrer nofollow",
        attribute_filter=_block_remote_images,
    )


def _block_remote_images(tag: str, attribute: str, value: str) -> str | None:
    if tag == "img" and attribute == "src" and not value.startswith("cid:"):
        return None
    return value


# ---- reading -----------------------------------------------------------------------------


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
    limit: int, region: str = "JP",
) -> tuple[list[TicketPublic], str | None]:
    """A page of tickets ``user`` may see, newest activity (or soonest due) first, by keyset."""
    stmt = select(Ticket)
    visible = await routing.visible_inbox_ids(session, user)
    if visible is not None:
        stmt = stmt.where(col(Ticket.inbox_id).in_(visible))
    stmt = _apply_filters(stmt, filters, user, dialect_of(session), region)
    if filters.sort == "due":
        stmt = _by_due(stmt, cursor)
    else:
        if cursor:
            at, ticket_id = _decode_cursor(cursor)
            stmt = stmt.where(or_(col(Ticket.updated_at) < at,
                                  and_(col(Ticket.updated_at) == at, col(Ticket.id) < ticket_id)))
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


def _apply_filters(stmt, filters: TicketFilter, user: User, dialect: str, region: str):  # type: ignore[no-untyped-def]
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
    if filters.q:
        hits = search.matching(dialect, filters.q, region).subquery()
        stmt = stmt.where(or_(
            col(Ticket.id).in_(select(hits.c.ticket_id).where(hits.c.ticket_id.is_not(None))),
            col(Ticket.customer_id).in_(select(hits.c.customer_id).where(hits.c.ticket_id.is_(None))),
            col(Ticket.customer_id).in_(customers.with_order_number(filters.q)),
        ))
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
    attachments = await _attachments_of(session, [m.id for m in messages if m.id is not None])
    summary = None
    if ticket.customer_id is not None:
        summary = (await customers.summaries(session, [ticket.customer_id])).get(ticket.customer_id)
    base = await public(session, ticket)
    return TicketDetail(
        **base.model_dump(),
        messages=[message_public(m, attachments.get(m.id or 0, [])) for m in messages],
        customer=summary,
    )


async def _attachments_of(
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


# ---- changing ----------------------------------------------------------------------------


async def lock_for_change(session: AsyncSession, ticket_id: int, version: int) -> Ticket:
    """The ticket, row-locked; 409 with the current ticket when ``version`` is stale."""
    ticket = await _locked_ticket(session, ticket_id)
    assert ticket is not None
    if ticket.version != version:
        raise Conflict("the ticket changed since you loaded it",
                       current=(await public(session, ticket)).model_dump(mode="json"))
    return ticket


async def update(
    session: AsyncSession, ticket: Ticket, change: TicketUpdate, *, actor: User
) -> TicketPublic:
    """Apply a PATCH already version-checked by ``lock_for_change``."""
    fields = change.model_fields_set - {"version"}
    before = {name: getattr(ticket, name) for name in fields if name != "tags"}
    if "status" in fields and change.status is not None:
        status_before = ticket.status
        _set_status(ticket, change.status, change.pending_reason)
        await _status_changed(session, ticket, status_before, actor)
    elif "pending_reason" in fields and ticket.status == Status.pending:
        ticket.pending_reason = _pending_reason(change.pending_reason)
    if "priority" in fields and change.priority is not None:
        ticket.priority = change.priority
    assigned = "assignee_id" in fields and change.assignee_id != ticket.assignee_id
    if assigned:
        await _check_assignable(session, ticket, change.assignee_id, actor)
        ticket.assignee_id = change.assignee_id
        _record_manual_assignment(session, ticket, actor)
    if "tags" in fields and change.tags is not None:
        await _set_tags(session, ticket, change.tags)
    _touch(ticket)
    await session.flush()
    changed = {k: str(v) for k, v in before.items() if getattr(ticket, k) != v}
    audit.record(session, action="ticket.update", actor_id=actor.id, actor_email=actor.email,
                 target_type="ticket", target_id=ticket.id, fields=sorted(fields), before=changed)
    result = await _publish_ticket(session, ticket, "ticket.updated")
    if assigned:
        await _publish_ticket(session, ticket, "ticket.assigned")
    return result


async def _status_changed(session: AsyncSession, ticket: Ticket, before: Status, actor: User) -> None:
    if ticket.status == before:
        return
    assert ticket.id is not None
    sla.on_status(await sla.policy(session), ticket, before, utcnow())
    history.record(session, ticket_id=ticket.id, type="ticket.status", actor_id=actor.id,
                   data={"from": str(before), "to": str(ticket.status),
                         "pending_reason": ticket.pending_reason})


def _set_status(ticket: Ticket, status: Status, reason: str | None) -> None:
    if status == Status.pending:
        ticket.pending_reason = _pending_reason(reason)
    else:
        ticket.pending_reason = None
    if status == Status.resolved and ticket.status != Status.resolved:
        ticket.resolved_at = utcnow()
    ticket.status = status


def _pending_reason(reason: str | None) -> str:
    cleaned = (reason or "").strip()
    if not cleaned:
        raise BadInput("pending_reason: 保留 needs a reason")
    return cleaned


def holder_fixed_for(actor: User, ticket: Ticket) -> bool:
    """Whether the ticket's assignee is out of ``actor``'s hands (someone else holds it)."""
    return not actor.sees_everything and ticket.assignee_id not in (None, actor.id)


def assignable_by(actor: User, ticket: Ticket, members: list[User]) -> list[User]:
    """Of the inbox's ``members``, those ``actor`` may give the ticket to (or leave it with)."""
    if actor.sees_everything:
        return members
    keep = ticket.assignee_id if holder_fixed_for(actor, ticket) else actor.id
    return [m for m in members if m.id == keep]


async def assignment_refusal(
    session: AsyncSession, ticket: Ticket, assignee_id: int | None, actor: User
) -> str | None:
    """Why ``actor`` may not give the ticket to ``assignee_id``; None when they may."""
    try:
        await _check_assignable(session, ticket, assignee_id, actor)
    except (Forbidden, BadInput) as refused:
        return str(refused)
    return None


async def _check_assignable(
    session: AsyncSession, ticket: Ticket, assignee_id: int | None, actor: User
) -> None:
    if not actor.sees_everything:
        if assignee_id not in (None, actor.id):
            raise Forbidden("only supervisors assign tickets to others")
        if ticket.assignee_id not in (None, actor.id):
            raise Forbidden("only supervisors take a ticket from someone else")
    if assignee_id is None:
        return
    assignee = await session.get(User, assignee_id)
    if assignee is None or not assignee.is_active:
        raise BadInput("assignee_id: no such active user")
    if not assignee.sees_everything and ticket.inbox_id not in await routing.inbox_ids_of(
            session, assignee_id):
        raise BadInput("assignee_id: that user is not a member of the ticket's inbox")


async def _set_tags(session: AsyncSession, ticket: Ticket, names: list[str]) -> None:
    cleaned = sorted({normalize.nfkc(n)[:60] for n in names if normalize.nfkc(n)})
    await session.execute(delete(TicketTag).where(col(TicketTag.ticket_id) == ticket.id))
    for name in cleaned:
        await serialize_on(session, f"tag:{name}")
        tag = await session.scalar(select(Tag).where(col(Tag.name) == name))
        if tag is None:
            tag = Tag(name=name)
            session.add(tag)
            await session.flush()
        assert ticket.id is not None and tag.id is not None
        session.add(TicketTag(ticket_id=ticket.id, tag_id=tag.id))


def _record_manual_assignment(session: AsyncSession, ticket: Ticket, actor: User) -> None:
    assert ticket.id is not None
    history.record(session, ticket_id=ticket.id, type="ticket.assigned", actor_id=actor.id,
                   data={"assignee_id": ticket.assignee_id, "reason": {"policy": "manual"}})
async def hand_over(session: AsyncSession, ticket_id: int, *, inbox_id: int,
                    assignee_id: int | None) -> None:
    """Move a ticket to another inbox and/or assignee (a transferred call takes its ticket)."""
    ticket = await _locked_ticket(session, ticket_id)
    if ticket is None:
        return
    assigned = ticket.assignee_id != assignee_id
    ticket.inbox_id, ticket.assignee_id = inbox_id, assignee_id
    if assignee_id is not None and ticket.status == Status.unhandled:
        ticket.status = Status.in_progress
    _touch(ticket)
    await session.flush()
    await _publish_ticket(session, ticket, "ticket.updated")
    if assigned:
        history.record(session, ticket_id=ticket_id, type="ticket.assigned",
                       data={"assignee_id": assignee_id, "reason": {"policy": "transfer"}})
        await _publish_ticket(session, ticket, "ticket.assigned")


async def add_tag(session: AsyncSession, ticket_id: int, name: str) -> None:
    """Tag a ticket (a caller's keypad choice), keeping the tags it has."""
    ticket = await _locked_ticket(session, ticket_id)
    if ticket is None:
        return
    current = (await tags_of(session, [ticket_id])).get(ticket_id, [])
    await _set_tags(session, ticket, [*current, name])
    _touch(ticket)
    await session.flush()
    await _publish_ticket(session, ticket, "ticket.updated")


async def claim(session: AsyncSession, ticket_id: int, *, actor: User) -> TicketPublic:
    """Assign the ticket to ``actor``; 409 when someone else holds it."""
    ticket = await _locked_ticket(session, ticket_id)
    assert ticket is not None
    if ticket.assignee_id == actor.id:
        return await public(session, ticket)
    if ticket.assignee_id is not None:
        raise Conflict("someone else holds this ticket",
                       current=(await public(session, ticket)).model_dump(mode="json"))
    ticket.assignee_id = actor.id
    _record_manual_assignment(session, ticket, actor)
    if ticket.status == Status.unhandled:
        ticket.status = Status.in_progress
    _touch(ticket)
    await session.flush()
    await _publish_ticket(session, ticket, "ticket.updated")
    return await _publish_ticket(session, ticket, "ticket.assigned")


async def reply(
    session: AsyncSession, ticket: Ticket, *, body: str, internal: bool, actor: User,
    channel: Channel | None = None,
    hold: bool = False,
) -> MessagePublic:
    """Add an operator's reply (sent through the outbox) or internal note to a locked ticket.

    ``channel`` answers on another channel than the ticket's (checked by the caller, see
    ``delivery.reply_channel``). ``hold``: the reply waits for a supervisor's approval (see
    helpdesk/approval) and is not sent.
    """
    now = utcnow()
    assert ticket.id is not None
    channel = channel or ticket.channel
    hold = hold and not internal
    message = Message(
        ticket_id=ticket.id, direction=Direction.outbound, internal=internal,
        channel=channel, author=actor.name, author_user_id=actor.id, body_text=body,
        delivery_status=None if internal or hold else "queued", created_at=now,
        approval_status="pending" if hold else None,
    )
    session.add(message)
    await session.flush()
    assert message.id is not None
    search.add(session, kind="message", ref_id=message.id, text_=body,
               ticket_id=ticket.id, customer_id=ticket.customer_id)
    if hold:
        _record_approval(session, ticket, message, "message.approval_requested", actor_id=actor.id)
    elif not internal:
        _after_public_reply(ticket, actor.id, now)
        outbox.enqueue(session, kind=f"reply.{channel}", message_id=message.id,
                       payload={"ticket_id": ticket.id})
    _touch(ticket)
    await _publish_ticket(session, ticket, "ticket.updated")
    _publish_message(session, ticket, message)
    return message_public(message, [])


async def decide_approval(session: AsyncSession, ticket: Ticket, message: Message, *, approver: User,
                          approve: bool, comment: str | None = None) -> MessagePublic:
    """Send a held reply now (approve) or return it to its author with ``comment``.

    ``ticket`` is locked and ``message`` one of its replies pending approval.
    """
    assert message.id is not None and ticket.id is not None
    now = utcnow()
    message.approval_comment = comment
    if approve:
        message.approval_status, message.delivery_status = "approved", "queued"
        _after_public_reply(ticket, message.author_user_id, now)
        outbox.enqueue(session, kind=f"reply.{message.channel}", message_id=message.id,
                       payload={"ticket_id": ticket.id})
        _touch(ticket)  # a reply went out: an operator's composer must see it before sending
    else:
        # Nothing reached the customer: the ticket's version stays, so the author can send
        # the corrected reply without being told that someone else replied.
        message.approval_status = "rejected"
    await session.flush()
    _record_approval(session, ticket, message, "message.approved" if approve else "message.rejected",
                     actor_id=approver.id)
    await _publish_ticket(session, ticket, "ticket.updated")
    return message_public(message, [])


def _record_approval(session: AsyncSession, ticket: Ticket, message: Message, kind: str, *,
                     actor_id: int | None) -> None:
    data = {"ticket_id": ticket.id, "ticket_version": ticket.version, "message_id": message.id,
            "author_user_id": message.author_user_id, "approval_status": message.approval_status,
            "comment": message.approval_comment, "preview": message.body_text[:140]}
    events.record(session, type=kind, inbox_id=ticket.inbox_id, data=data)
    assert ticket.id is not None
    history.record(session, ticket_id=ticket.id, type=kind, actor_id=actor_id,
                   data={k: v for k, v in data.items() if k not in ("ticket_id", "ticket_version")})


def _after_public_reply(ticket: Ticket, author_id: int | None, now: datetime) -> None:
    if ticket.first_response_at is None:
        ticket.first_response_at = now
    if ticket.assignee_id is None:
        ticket.assignee_id = author_id
    if ticket.status == Status.unhandled:
        ticket.status = Status.in_progress
    ticket.last_message_at = now
    sla.on_reply(ticket)


# ---- events ------------------------------------------------------------------------------


async def _publish_ticket(session: AsyncSession, ticket: Ticket, kind: str,
                          reason: dict[str, object] | None = None) -> TicketPublic:
    # A ticket opened in this transaction has no tags yet: skip the query.
    result = to_public(ticket, []) if kind == "ticket.created" else await public(session, ticket)
    data: dict[str, object] = {"ticket": result.model_dump(mode="json")}
    if reason is not None:
        data["reason"] = reason
    events.record(session, type=kind, data=data, inbox_id=ticket.inbox_id)
    return result


def _publish_message(session: AsyncSession, ticket: Ticket, message: Message) -> None:
    events.record(session, type="message.created", inbox_id=ticket.inbox_id, data={
        "ticket_id": ticket.id, "ticket_version": ticket.version, "message_id": message.id,
        "direction": message.direction, "internal": message.internal,
        "channel": message.channel, "author": message.author,
        "author_id": message.author_user_id, "preview": message.body_text[:140],
    })


async def count_by_status(session: AsyncSession, user: User) -> dict[str, int]:
    """Tickets per status among those ``user`` may see, from the kept counters (no COUNT)."""
    return await counts.by_status(session, inbox_ids=await routing.visible_inbox_ids(session, user))


async def lock(session: AsyncSession, ticket_id: int) -> Ticket | None:
    """The ticket, row-locked until commit, or None."""
    return await _locked_ticket(session, ticket_id)


async def open_ticket_token(session: AsyncSession, *, customer_id: int, inbox_id: int) -> str | None:
    """The token of the customer's most recently active open ticket in ``inbox_id``, if any."""
    return await session.scalar(
        select(col(Ticket.token)).where(col(Ticket.customer_id) == customer_id,
                                        col(Ticket.inbox_id) == inbox_id,
                                        col(Ticket.status).in_(OPEN_STATUSES))
        .order_by(col(Ticket.updated_at).desc(), col(Ticket.id).desc()).limit(1)
    )


async def system_note(
    session: AsyncSession, ticket_id: int, *, channel: Channel, external_id: str, body: str,
    at: datetime | None,
) -> Message | None:
    """An internal entry the system writes in a thread (a call's length, a recording), once per
    ``external_id``; the ticket's status and assignee stay as they are. None when it exists."""
    await serialize_on(session, f"inbound:{channel}:{external_id}")
    if await _message_by_external_id(session, channel, external_id) is not None:
        return None
    ticket = await _locked_ticket(session, ticket_id)
    if ticket is None:
        return None
    message = Message(ticket_id=ticket_id, direction=Direction.outbound, internal=True,
                      channel=channel, body_text=body, external_id=external_id,
                      created_at=at or utcnow())
    session.add(message)
    await session.flush()
    _touch(ticket)
    await _publish_ticket(session, ticket, "ticket.updated")
    _publish_message(session, ticket, message)
    return message
