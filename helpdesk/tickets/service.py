"""Tickets: what operators (and calls) change on a ticket: status, assignee, tags, replies, approval."""

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk import normalize
from helpdesk.audit import service as audit
from helpdesk.auth.models import User
from helpdesk.db import utcnow
from helpdesk.errors import BadInput, Conflict, Forbidden
from helpdesk.history import service as history
from helpdesk.inboxes import service as inbox_service
from helpdesk.outbox import service as outbox
from helpdesk.realtime import events
from helpdesk.search import service as search
from helpdesk.sla import service as sla
from helpdesk.storage.locks import serialize_on
from helpdesk.tickets.models import (
    Channel,
    Direction,
    Message,
    MessagePublic,
    Status,
    Tag,
    Ticket,
    TicketPublic,
    TicketTag,
    TicketUpdate,
)
from helpdesk.tickets.publish import publish_message, publish_ticket, touch
from helpdesk.tickets.queries import lock, message_public, public, tags_of


async def lock_for_change(session: AsyncSession, ticket_id: int, version: int) -> Ticket:
    """The ticket, row-locked; 409 with the current ticket when ``version`` is stale."""
    ticket = await lock(session, ticket_id)
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
    if "priority" in fields and change.priority is not None and change.priority != ticket.priority:
        priority_before, ticket.priority = ticket.priority, change.priority
        sla.on_priority(await sla.policy(session), ticket, priority_before, utcnow())
    assigned = "assignee_id" in fields and change.assignee_id != ticket.assignee_id
    if assigned:
        await _check_assignable(session, ticket, change.assignee_id, actor)
        ticket.assignee_id = change.assignee_id
        _record_manual_assignment(session, ticket, actor)
    if "tags" in fields and change.tags is not None:
        await _set_tags(session, ticket, change.tags)
    touch(ticket)
    await session.flush()
    changed = {k: str(v) for k, v in before.items() if getattr(ticket, k) != v}
    audit.record(session, action="ticket.update", actor_id=actor.id, actor_email=actor.email,
                 target_type="ticket", target_id=ticket.id, fields=sorted(fields), before=changed)
    result = await publish_ticket(session, ticket, events.TicketUpdated)
    if assigned:
        await publish_ticket(session, ticket, events.TicketAssigned)
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
    if not assignee.sees_everything and ticket.inbox_id not in await inbox_service.inbox_ids_of(
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
    ticket = await lock(session, ticket_id)
    if ticket is None:
        return
    assigned = ticket.assignee_id != assignee_id
    ticket.inbox_id, ticket.assignee_id = inbox_id, assignee_id
    if assignee_id is not None and ticket.status == Status.unhandled:
        ticket.status = Status.in_progress
    touch(ticket)
    await session.flush()
    await publish_ticket(session, ticket, events.TicketUpdated)
    if assigned:
        history.record(session, ticket_id=ticket_id, type="ticket.assigned",
                       data={"assignee_id": assignee_id, "reason": {"policy": "transfer"}})
        await publish_ticket(session, ticket, events.TicketAssigned)


async def add_tag(session: AsyncSession, ticket_id: int, name: str) -> None:
    """Tag a ticket (a caller's keypad choice), keeping the tags it has."""
    ticket = await lock(session, ticket_id)
    if ticket is None:
        return
    current = (await tags_of(session, [ticket_id])).get(ticket_id, [])
    await _set_tags(session, ticket, [*current, name])
    touch(ticket)
    await session.flush()
    await publish_ticket(session, ticket, events.TicketUpdated)


async def claim(session: AsyncSession, ticket_id: int, *, actor: User) -> TicketPublic:
    """Assign the ticket to ``actor``; 409 when someone else holds it."""
    ticket = await lock(session, ticket_id)
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
    touch(ticket)
    await session.flush()
    await publish_ticket(session, ticket, events.TicketUpdated)
    return await publish_ticket(session, ticket, events.TicketAssigned)


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
        _record_approval(session, ticket, message, events.MessageApprovalRequested, actor_id=actor.id)
    elif not internal:
        _after_public_reply(ticket, actor.id, now)
        outbox.enqueue(session, kind=f"reply.{channel}", message_id=message.id,
                       payload={"ticket_id": ticket.id})
    touch(ticket)
    await publish_ticket(session, ticket, events.TicketUpdated)
    publish_message(session, ticket, message)
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
        touch(ticket)  # a reply went out: an operator's composer must see it before sending
    else:
        # Nothing reached the customer: the ticket's version stays, so the author can send
        # the corrected reply without being told that someone else replied.
        message.approval_status = "rejected"
    await session.flush()
    _record_approval(session, ticket, message, events.MessageApproved if approve else events.MessageRejected,
                     actor_id=approver.id)
    await publish_ticket(session, ticket, events.TicketUpdated)
    return message_public(message, [])


def _record_approval(session: AsyncSession, ticket: Ticket, message: Message,
                     kind: type[events.ApprovalEvent], *, actor_id: int | None) -> None:
    event = kind(inbox_id=ticket.inbox_id, ticket_id=ticket.id, ticket_version=ticket.version,
                 message_id=message.id, author_user_id=message.author_user_id,
                 approval_status=message.approval_status, comment=message.approval_comment,
                 preview=message.body_text[:140])
    events.record(session, event)
    assert ticket.id is not None
    history.record(session, ticket_id=ticket.id, type=event.type, actor_id=actor_id,
                   data={k: v for k, v in event.data().items() if k not in ("ticket_id", "ticket_version")})


def _after_public_reply(ticket: Ticket, author_id: int | None, now: datetime) -> None:
    if ticket.first_response_at is None:
        ticket.first_response_at = now
    if ticket.assignee_id is None:
        ticket.assignee_id = author_id
    if ticket.status == Status.unhandled:
        ticket.status = Status.in_progress
    ticket.last_message_at = now
    sla.on_reply(ticket)
