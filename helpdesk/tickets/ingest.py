"""Tickets: the one ingest path every channel uses, and the entries the system adds to a thread."""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import ColumnElement, Table, bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk import html
from helpdesk.assignment import service as assignment
from helpdesk.assignment.models import AssignmentPolicy
from helpdesk.config import DEFAULT_REGION
from helpdesk.customers import service as customers
from helpdesk.customers.models import table_of
from helpdesk.db import utcnow
from helpdesk.errors import BadInput
from helpdesk.history import service as history
from helpdesk.inboxes.models import Inbox
from helpdesk.realtime import events
from helpdesk.search import service as search
from helpdesk.sla import service as sla
from helpdesk.sla.models import SlaSettings
from helpdesk.storage import new_rows, prepared
from helpdesk.storage.counters import next_counter
from helpdesk.storage.locks import serialize_on
from helpdesk.tickets import counts
from helpdesk.tickets.models import (
    Attachment,
    Channel,
    Direction,
    InboundAttachment,
    InboundMessage,
    IngestResult,
    Message,
    Status,
    Ticket,
)
from helpdesk.tickets.publish import publish_message, publish_ticket, touch
from helpdesk.tickets.queries import OPEN_STATUSES, attachments_of, inbox_of, lock, message_by_external_id

MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class IngestOptions:
    region: str = DEFAULT_REGION
    reopen_window: timedelta = timedelta(days=14)


async def ingest(
    session: AsyncSession, inbound: InboundMessage, *, options: IngestOptions | None = None
) -> IngestResult:
    """Turn one inbound message into customer, ticket, message, events and outbox rows.

    Idempotent by (channel, external_id): a retry, even a concurrent one, returns the original.
    The caller commits.
    """
    options = options or IngestOptions()
    await serialize_on(session, f"inbound:{inbound.channel}:{inbound.external_id}")
    existing = await prepared.first(session, _DELIVERED, {"channel": inbound.channel,
                                                          "external_id": inbound.external_id})
    if existing is not None:
        return IngestResult(ticket_id=existing.ticket_id, message_id=existing.id, duplicate=True)
    settings = await _settings(session, inbound.inbox)
    sender = inbound.sender
    identities = customers.identities_of(
        email=sender.email, phone=sender.phone, line_id=sender.line_id,
        meta_id=sender.meta_id, chat_id=sender.chat_id, region=options.region,
    )
    customer = None if sender.withheld and not identities else await customers.resolve(
        session, identities=identities, name=sender.name, region=options.region
    )
    customer_id = customer.id if customer is not None else None
    received = inbound.received_at or utcnow()
    ticket = await _conversation_ticket(session, inbound, customer_id, settings.inbox_id, options)
    created = ticket is None
    if ticket is None:
        ticket = await _new_ticket(session, inbound, customer_id=customer_id, inbox_id=settings.inbox_id)
    else:
        touch(ticket)
    before = ticket.status
    _take_inbound(ticket, inbound, received)
    if customer is not None and customer.blocked_at is not None:  # blocked as spam: kept, out of the way
        ticket.status = Status.no_action
    _keep_sla(sla.policy_of(settings.sla), ticket, before, received, created=created)
    if created:  # inserted whole, its due times included, by one statement of its own
        await new_rows.insert_new(session, ticket)
        await counts.count_new(session, ticket)
    author = (customer.name if customer is not None else None) or sender.name
    message = await _append_inbound(session, ticket, inbound, author=author, received=received,
                                    created=created)
    # Last, so the inbox's assignment lock is held for as short a time as possible.
    automatic = settings.assignment is not None and settings.assignment != "manual"
    reason = await auto_assign(session, ticket, why="new") \
        if automatic and ticket.assignee_id is None and ticket.status == Status.unhandled else None
    await publish_ticket(session, ticket, events.TicketCreated if created else events.TicketUpdated)
    if reason is not None:
        await publish_ticket(session, ticket, events.TicketAssigned, reason=reason)
    publish_message(session, ticket, message)
    assert message.id is not None and ticket.id is not None
    return IngestResult(ticket_id=ticket.id, message_id=message.id, duplicate=False)


class _Settings(NamedTuple):
    """What a message's inbox is set to do, read in one statement: its id, its assignment
    policy's name (None: manual) and the SLA settings as saved (None: the defaults)."""

    inbox_id: int
    assignment: str | None
    sla: dict[str, Any] | None


_INBOX, _POLICY, _SLA = (table_of(model) for model in (Inbox, AssignmentPolicy, SlaSettings))
_SETTINGS = prepared.Query(
    select(_INBOX.c.id, _POLICY.c.policy, _SLA.c.config)
    .select_from(_INBOX.outerjoin(_POLICY, _POLICY.c.inbox_id == _INBOX.c.id)
                 .outerjoin(_SLA, _SLA.c.id == 1))
    .where(_INBOX.c.name == bindparam("name")), _Settings)


async def _settings(session: AsyncSession, inbox: str) -> _Settings:
    """The settings of the inbox called ``inbox``; 422 when there is none."""
    found = await prepared.first(session, _SETTINGS, {"name": inbox})
    if found is None:
        raise BadInput(f"unknown inbox: {inbox}")
    return found


class _Delivered(NamedTuple):
    id: int
    ticket_id: int


_MESSAGE = cast(Table, Message.__table__)  # type: ignore[attr-defined]
# The retry check runs for every delivery: two columns by the unique (channel, external_id) key.
_DELIVERED = prepared.Query(
    select(_MESSAGE.c.id, _MESSAGE.c.ticket_id).where(
        _MESSAGE.c.channel == bindparam("channel"), _MESSAGE.c.external_id == bindparam("external_id")),
    _Delivered)


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
            return await lock(session, ticket_id)
    if inbound.ticket_token:
        found = await session.scalar(select(col(Ticket.id)).where(col(Ticket.token) == inbound.ticket_token))
        if found is not None:
            return await lock(session, found)
    if inbound.ticket_number is not None and customer_id is not None:
        # A subject tag is easy to type, so it only threads for the same customer.
        found = await session.scalar(select(col(Ticket.id)).where(
            col(Ticket.number) == inbound.ticket_number, col(Ticket.customer_id) == customer_id))
        if found is not None:
            return await lock(session, found)
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
    by_conversation = bool(inbound.conversation_key)
    found = await prepared.first(session, THREAD_BY_CONVERSATION if by_conversation else THREAD_BY_CUSTOMER, {
        "channel": inbound.channel, "inbox_id": inbox_id, "cutoff": utcnow() - options.reopen_window,
        "key": inbound.conversation_key if by_conversation else customer_id})
    return await lock(session, found.id) if found is not None else None


class _Thread(NamedTuple):
    id: int


def _thread_query(key: ColumnElement[Any]) -> prepared.Query[_Thread]:
    """The latest ticket of a conversation (or a customer) on a channel and in an inbox,
    unless it was closed before ``cutoff``."""
    ticket = _TICKET.c
    # ``inbox_id + 0``: an inbox holds every ticket, so its index is the worst way in, yet without
    # statistics SQLite prefers it to the key's and walks the whole inbox on every message.
    return prepared.Query(select(ticket.id).where(
        ticket.channel == bindparam("channel"), (ticket.inbox_id + 0) == bindparam("inbox_id"),
        key == bindparam("key"),
        or_(ticket.status.in_(OPEN_STATUSES), ticket.status == Status.no_action,
            ticket.updated_at >= bindparam("cutoff")),
    ).order_by(ticket.updated_at.desc()).limit(1), _Thread)


_TICKET = cast(Table, Ticket.__table__)  # type: ignore[attr-defined]
THREAD_BY_CONVERSATION = _thread_query(_TICKET.c.conversation_key)
THREAD_BY_CUSTOMER = _thread_query(_TICKET.c.customer_id)


async def _new_ticket(
    session: AsyncSession, inbound: InboundMessage, *, customer_id: int | None, inbox_id: int
) -> Ticket:
    """A ticket for ``inbound``, not yet inserted (its status and due times come first)."""
    subject = (inbound.subject or "").strip()[:300] or _subject_from(inbound.body_text)
    ticket = new_rows.made(
        Ticket, number=await next_counter(session, "ticket_number"), subject=subject,
        channel=inbound.channel, inbox_id=inbox_id, customer_id=customer_id,
        conversation_key=inbound.conversation_key, token=secrets.token_hex(8),
    )
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
    touch(ticket)
    await publish_ticket(session, ticket, events.TicketUpdated)
    await publish_ticket(session, ticket, events.TicketAssigned, reason=reason)


def _keep_sla(policy: sla.Policy, ticket: Ticket, before: Status, at: datetime, *,
              created: bool) -> None:
    if created:
        sla.on_opened(policy, ticket, at)
    elif not (before == ticket.status == Status.no_action):
        sla.on_inbound(policy, ticket, before, at)


def _subject_from(body: str) -> str:
    first_line = next((line.strip() for line in body.splitlines() if line.strip()), "")
    return first_line[:80]


def _take_inbound(ticket: Ticket, inbound: InboundMessage, received: datetime) -> None:
    """What a customer's message does to its ticket's status and activity time."""
    # Auto-replies never reopen a ticket; nothing but 対応不要 stays put for a real message.
    if not inbound.auto_reply and ticket.status != Status.no_action:
        ticket.status = Status.unhandled
        ticket.pending_reason = None
    ticket.last_message_at = received


async def _append_inbound(
    session: AsyncSession, ticket: Ticket, inbound: InboundMessage, *, author: str | None,
    received: datetime, created: bool,
) -> Message:
    """The customer's message, inserted at once, and its search entries (the subject's too
    when the ticket is new)."""
    assert ticket.id is not None
    message = new_rows.made(
        Message, ticket_id=ticket.id, direction=Direction.inbound, channel=inbound.channel,
        author=author, body_text=inbound.body_text,
        body_html=html.inert(inbound.body_html) if inbound.body_html else None,
        external_id=inbound.external_id, provider_message_id=inbound.provider_message_id,
        auto_reply=inbound.auto_reply, created_at=received,
    )
    await new_rows.insert_new(session, message)
    assert message.id is not None
    _store_attachments(session, message.id, inbound)
    entries = [search.Entry(kind="message", ref_id=message.id, text=inbound.body_text,
                            ticket_id=ticket.id, customer_id=ticket.customer_id)]
    if created:
        entries.insert(0, search.Entry(kind="subject", ref_id=ticket.id, text=ticket.subject,
                                       ticket_id=ticket.id, customer_id=ticket.customer_id))
    await search.add_now(session, *entries)
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
    shown = (await attachments_of(session, [message_id])).get(message_id, [])
    events.record(session, events.MessageUpdated(
        inbox_id=inbox_id, ticket_id=message.ticket_id, message_id=message.id,
        channel=message.channel, direction=message.direction,
        delivery_status=message.delivery_status, error=None,
        attachments=[a.model_dump() for a in shown], preview=message.body_text[:140]))
    return True


async def system_note(
    session: AsyncSession, ticket_id: int, *, channel: Channel, external_id: str, body: str,
    at: datetime | None,
) -> Message | None:
    """An internal entry the system writes in a thread (a call's length, a recording), once per
    ``external_id``; the ticket's status and assignee stay as they are. None when it exists."""
    await serialize_on(session, f"inbound:{channel}:{external_id}")
    if await message_by_external_id(session, channel, external_id) is not None:
        return None
    ticket = await lock(session, ticket_id)
    if ticket is None:
        return None
    message = Message(ticket_id=ticket_id, direction=Direction.outbound, internal=True,
                      channel=channel, body_text=body, external_id=external_id,
                      created_at=at or utcnow())
    session.add(message)
    await session.flush()
    touch(ticket)
    await publish_ticket(session, ticket, events.TicketUpdated)
    publish_message(session, ticket, message)
    return message
