"""The tickets JSON API."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from helpdesk.approval import service as approval
from helpdesk.audit import service as audit
from helpdesk.auth.dependencies import CurrentUser, client_ip
from helpdesk.config import SettingsDep
from helpdesk.db import ReadSessionDep, SessionDep
from helpdesk.history import service as history
from helpdesk.history.models import HistoryPage
from helpdesk.outbox.dependencies import SendersDep
from helpdesk.tickets import delivery, queries, service
from helpdesk.tickets.dependencies import CurrentTicket
from helpdesk.tickets.models import (
    Channel,
    MessagePublic,
    ReplyCreate,
    Status,
    TicketDetail,
    TicketPage,
    TicketPublic,
    TicketUpdate,
)

router = APIRouter(prefix="/api/tickets", tags=["tickets"])
CONFLICT: dict[int | str, dict[str, Any]] = {409: {"description": "stale version; body has `current`"}}


@router.get("", response_model=TicketPage)
async def list_tickets(
    session: ReadSessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    status: Status | None = None,
    assignee: Annotated[str | None, Query(max_length=20)] = None,
    channel: Channel | None = None,
    customer_id: int | None = None,
    inbox_id: int | None = None,
    tag: Annotated[str | None, Query(max_length=60)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    sort: Literal["activity", "due"] = "activity",
) -> TicketPage:
    """Tickets the caller may see, newest activity first (``sort=due``: soonest deadline first)."""
    filters = queries.TicketFilter(status=status, assignee=assignee, channel=channel,
                                   customer_id=customer_id, tag=tag, q=q, inbox_id=inbox_id,
                                   sort=sort)
    items, next_cursor = await queries.list_tickets(
        session, user, filters, cursor=cursor, limit=limit, region=settings.default_region)
    return TicketPage(items=items, next_cursor=next_cursor)


@router.get("/counts")
async def counts(session: ReadSessionDep, user: CurrentUser) -> dict[str, int]:
    """How many tickets the caller may see in each status."""
    return await queries.count_by_status(session, user)


@router.get("/{ticket_id}", response_model=TicketDetail)
async def get_ticket(ticket: CurrentTicket, session: ReadSessionDep) -> TicketDetail:
    """One ticket with its messages and customer."""
    return await queries.detail(session, ticket)


@router.get("/{ticket_id}/history", response_model=HistoryPage)
async def ticket_history(ticket: CurrentTicket, session: ReadSessionDep) -> HistoryPage:
    """Assignments with their reasons, status changes, SLA breaches and approvals, oldest first."""
    assert ticket.id is not None
    return HistoryPage(items=await history.of_ticket(session, ticket.id))


@router.patch("/{ticket_id}", response_model=TicketPublic, responses=CONFLICT)
async def update_ticket(
    ticket: CurrentTicket, change: TicketUpdate, session: SessionDep, user: CurrentUser
) -> TicketPublic:
    """Change status, assignee, priority or tags, guarded by ``version``."""
    assert ticket.id is not None
    locked = await service.lock_for_change(session, ticket.id, change.version)
    result = await service.update(session, locked, change, actor=user)
    await session.commit()
    return result


@router.post("/{ticket_id}/messages", response_model=MessagePublic, status_code=201,
             responses={**CONFLICT, 409: {"description": "stale version (body has `current`), "
                                          "or nothing here sends on the channel (`reason`)"}})
async def post_message(
    ticket: CurrentTicket, body: ReplyCreate, session: SessionDep, user: CurrentUser,
    senders: SendersDep,
) -> MessagePublic:
    """Reply on the ticket's channel, or add an internal note; 409 if the ticket moved on."""
    assert ticket.id is not None
    channel = delivery.reply_channel(ticket, body.channel)
    if not body.internal:
        delivery.ensure_sendable(senders, channel)
    locked = await service.lock_for_change(session, ticket.id, body.version)
    hold = await approval.needs_approval(session, inbox_id=locked.inbox_id, author=user)
    message = await service.reply(session, locked, body=body.body, internal=body.internal,
                                  actor=user, channel=channel, hold=hold)
    await session.commit()
    return message


@router.post("/{ticket_id}/messages/{message_id}/retry", response_model=MessagePublic,
             responses={409: {"description": "the reply has not failed, or cannot be sent here"}})
async def retry_message(ticket: CurrentTicket, message_id: int, session: SessionDep,
                        senders: SendersDep) -> MessagePublic:
    """Send a failed reply again."""
    message = await delivery.retry(session, ticket, message_id, registry=senders)
    await session.commit()
    return message


@router.post("/{ticket_id}/claim", response_model=TicketPublic, responses=CONFLICT)
async def claim(
    ticket: CurrentTicket, session: SessionDep, user: CurrentUser, request: Request
) -> TicketPublic:
    """Take the ticket; 409 when someone else holds it."""
    assert ticket.id is not None
    result = await service.claim(session, ticket.id, actor=user)
    audit.record(session, action="ticket.claim", actor_id=user.id, actor_email=user.email,
                 target_type="ticket", target_id=ticket.id,
                 ip=client_ip(request))
    await session.commit()
    return result
