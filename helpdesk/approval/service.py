"""Send approval: which replies wait for a supervisor, the queue of those waiting, decisions."""

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.approval.models import PENDING, ApprovalConfig, ApprovalPolicy, PendingApproval
from helpdesk.auth.models import User
from helpdesk.db import utcnow
from helpdesk.errors import Conflict, NotFound
from helpdesk.tickets import queries as ticket_queries
from helpdesk.tickets import service as tickets
from helpdesk.tickets.models import Message, MessagePublic, Ticket


async def load_config(session: AsyncSession, inbox_id: int) -> ApprovalConfig:
    """Whose replies in the inbox need approval ("none" when never set)."""
    row = await session.get(ApprovalPolicy, inbox_id)
    return ApprovalConfig() if row is None else ApprovalConfig(required_for=row.required_for)


async def save_config(session: AsyncSession, inbox_id: int, config: ApprovalConfig) -> ApprovalConfig:
    """Replace the inbox's approval rule."""
    row = await session.get(ApprovalPolicy, inbox_id)
    if row is None:
        row = ApprovalPolicy(inbox_id=inbox_id)
        session.add(row)
    row.required_for, row.updated_at = config.required_for, utcnow()
    await session.flush()
    return config


async def needs_approval(session: AsyncSession, *, inbox_id: int, author: User) -> bool:
    """Whether ``author``'s replies in the inbox wait for a supervisor (theirs never do)."""
    if author.sees_everything:
        return False
    rule = (await load_config(session, inbox_id)).required_for
    return rule == "all_operators" or (isinstance(rule, list) and author.id in rule)


async def pending(session: AsyncSession, *, limit: int = 200) -> list[PendingApproval]:
    """Replies waiting for approval, oldest first."""
    rows = (await session.execute(
        select(Message, col(Ticket.number), col(Ticket.subject), col(Ticket.inbox_id))
        .join(Ticket, col(Ticket.id) == col(Message.ticket_id))
        .where(col(Message.approval_status) == PENDING)
        .order_by(col(Message.created_at), col(Message.id)).limit(limit))).all()
    return [PendingApproval(message=ticket_queries.message_public(m, []), ticket_id=m.ticket_id,
                            ticket_number=n, ticket_subject=subject, inbox_id=inbox_id,
                            author_user_id=m.author_user_id)
            for m, n, subject, inbox_id in rows]


async def decide(session: AsyncSession, message_id: int, *, approver: User, approve: bool,
                 comment: str | None = None) -> MessagePublic:
    """Approve (sent at once) or return a held reply; 409 when it was decided already."""
    ticket_id = await session.scalar(select(col(Message.ticket_id)).where(col(Message.id) == message_id))
    if ticket_id is None:
        raise NotFound("message not found")
    # The ticket's row lock orders two supervisors deciding at once: the second sees the first.
    ticket = await ticket_queries.lock(session, ticket_id)
    message = await session.get(Message, message_id, populate_existing=True)
    assert ticket is not None and message is not None
    if message.approval_status != PENDING:
        raise Conflict(f"this reply is not waiting for approval ({message.approval_status or 'sent'})")
    return await tickets.decide_approval(session, ticket, message, approver=approver, approve=approve,
                                         comment=comment)


async def returned_to(session: AsyncSession, *, ticket_id: int, author_id: int) -> list[Message]:
    """The author's replies on the ticket that were returned since they last sent one, newest first."""
    mine = (col(Message.ticket_id) == ticket_id, col(Message.author_user_id) == author_id,
            col(Message.internal).is_(False))
    last_sent = await session.scalar(select(func.max(col(Message.id))).where(
        *mine, or_(col(Message.approval_status).is_(None), col(Message.approval_status) != "rejected")))
    return list(await session.scalars(select(Message).where(
        *mine, col(Message.approval_status) == "rejected", col(Message.id) > (last_sent or 0))
        .order_by(col(Message.id).desc())))
