"""The supervisor board: presence, load, pace, queue and calls, live; reassign from it."""

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth import service as auth
from helpdesk.auth.dependencies import Supervisor
from helpdesk.auth.models import User
from helpdesk.calls import service as calls
from helpdesk.customers import service as customers
from helpdesk.db import ReadSessionDep, SessionDep
from helpdesk.errors import NotFound
from helpdesk.realtime import service as realtime
from helpdesk.reports import service
from helpdesk.routing import service as routing
from helpdesk.tickets import service as tickets
from helpdesk.tickets.models import Ticket, TicketUpdate
from helpdesk.web import i18n, templating
from helpdesk.web.sessions import fresh_reader

router = APIRouter(include_in_schema=False)


async def _context(session: AsyncSession, user: User,
                   queue_limit: int = service.QUEUE_LIMIT) -> dict[str, object]:
    board = await service.board(session, zone=i18n.zone(user.timezone), queue_limit=queue_limit)
    presence = {p.user_id: p.model_dump(mode="json") for p in await realtime.presence_list(session)}
    current = await calls.current_calls(session, user)
    return {
        "presence": presence, "calls": current,
        # What the page's script starts from, then keeps up to date from the socket.
        "live_state": {"presence": list(presence.values()), "calls": current},
        "on_call": {c["operator_id"]: c for c in current
                    if c["state"] == "answered" and c["operator_id"] is not None},
        "board": board, "chart": service.load_chart(board.operators),
        "inboxes": {i.id: i.name for i in await routing.all_inboxes(session)},
        "customer_names": await customers.names(
            session, [t.customer_id for t in board.queue if t.customer_id]),
        "staff_names": await auth.names(session),
        "queue_limit": queue_limit, "queue_step": service.QUEUE_LIMIT,
        "queue_waiting": sum(board.totals.get(s.value, 0) for s in service.LOAD_STATUSES),
    }


@router.get("/board")
async def board_page(
    request: Request, session: ReadSessionDep, user: Supervisor,
    queue: Annotated[int, Query(ge=1, le=service.QUEUE_MAX)] = service.QUEUE_LIMIT,
) -> Response:
    """Everyone's work at a glance; ``queue`` is how many waiting tickets the queue shows."""
    return templating.render(request, "board.html", await _context(session, user, queue), user=user)


@router.post("/board/assign")
async def reassign(
    request: Request, session: SessionDep, user: Supervisor, ticket_id: Annotated[int, Form()],
    version: Annotated[int, Form()], assignee_id: Annotated[str, Form(max_length=20)] = "",
    queue: Annotated[int, Form(ge=1, le=service.QUEUE_MAX)] = service.QUEUE_LIMIT,
) -> Response:
    """Give a ticket to an operator (or to nobody); a stale version is a 409 toast."""
    if await session.get(Ticket, ticket_id) is None:
        raise NotFound("ticket not found")
    target = int(assignee_id) if assignee_id.isdigit() else None
    locked = await tickets.lock_for_change(session, ticket_id, version)
    await tickets.update(session, locked, TicketUpdate(version=version, assignee_id=target), actor=user)
    await session.commit()
    async with fresh_reader(request) as reader:
        context = await _context(reader, user, queue)
    return templating.render(request, "board.html", context, user=user, block="board_body")
