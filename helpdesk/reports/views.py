"""The supervisor board: presence, load, pace, queue and calls, live; reassign from it."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from helpdesk.auth import service as auth
from helpdesk.auth.dependencies import Supervisor
from helpdesk.customers import service as customers
from helpdesk.db import SessionDep
from helpdesk.errors import NotFound
from helpdesk.reports import service
from helpdesk.routing import service as routing
from helpdesk.tickets import service as tickets
from helpdesk.tickets.models import Ticket, TicketUpdate
from helpdesk.web import i18n, templating

router = APIRouter(include_in_schema=False)


async def _context(session: SessionDep, zone_name: str) -> dict[str, object]:
    board = await service.board(session, zone=i18n.zone(zone_name))
    return {
        "board": board, "chart": service.load_chart(board.operators),
        "inboxes": {i.id: i.name for i in await routing.all_inboxes(session)},
        "customer_names": await customers.names(
            session, [t.customer_id for t in board.queue if t.customer_id]),
        "staff_names": await auth.names(session),
    }


@router.get("/board")
async def board_page(request: Request, session: SessionDep, user: Supervisor) -> Response:
    """Everyone's work at a glance."""
    return templating.render(request, "board.html", await _context(session, user.timezone), user=user)


@router.post("/board/assign")
async def reassign(
    request: Request, session: SessionDep, user: Supervisor, ticket_id: Annotated[int, Form()],
    version: Annotated[int, Form()], assignee_id: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Give a ticket to an operator (or to nobody); a stale version is a 409 toast."""
    if await session.get(Ticket, ticket_id) is None:
        raise NotFound("ticket not found")
    target = int(assignee_id) if assignee_id.isdigit() else None
    locked = await tickets.lock_for_change(session, ticket_id, version)
    await tickets.update(session, locked, TicketUpdate(version=version, assignee_id=target), actor=user)
    await session.commit()
    return templating.render(request, "board.html", await _context(session, user.timezone), user=user,
                             block="board_body")
