"""The supervisor board: presence, load, pace, queue and calls, live; reassign from it."""

from datetime import date, timedelta
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth import service as auth
from helpdesk.auth.dependencies import Supervisor
from helpdesk.auth.models import User
from helpdesk.calls import log as call_log
from helpdesk.customers import service as customers
from helpdesk.db import ReadSessionDep, SessionDep, utcnow
from helpdesk.errors import NotFound
from helpdesk.inboxes import service as inbox_service
from helpdesk.realtime.presence import presence_list
from helpdesk.reports import charts, queries, service
from helpdesk.reports.dependencies import CalendarDep, DayRange, RangeDep, checked_range
from helpdesk.sla import display as sla_display
from helpdesk.sla import service as sla
from helpdesk.tickets import service as tickets
from helpdesk.tickets.models import Ticket, TicketUpdate
from helpdesk.web import i18n, templating
from helpdesk.web.sessions import fresh_reader

router = APIRouter(include_in_schema=False)


async def _context(session: AsyncSession, user: User,
                   queue_limit: int = service.QUEUE_LIMIT) -> dict[str, object]:
    board = await service.board(session, zone=i18n.zone(user.timezone), queue_limit=queue_limit)
    presence = {p.user_id: p.model_dump(mode="json") for p in await presence_list(session)}
    current = await call_log.current_calls(session, user)
    return {
        "presence": presence, "calls": current,
        # What the page's script starts from, then keeps up to date from the socket.
        "live_state": {"presence": list(presence.values()), "calls": current},
        "on_call": {c["operator_id"]: c for c in current
                    if c["state"] == "answered" and c["operator_id"] is not None},
        "board": board, "chart": service.load_chart(board.operators),
        "inboxes": {i.id: i.name for i in await inbox_service.all_inboxes(session)},
        "customer_names": await customers.names(
            session, [t.customer_id for t in board.queue if t.customer_id]),
        "staff_names": await auth.names(session),
        # Assignment and SLA: capacity use per automatic inbox, deadlines past or close.
        "capacity": await service.capacity_use(session),
        "risk": await sla.at_risk(session, now=utcnow(), near=sla_display.NEAR),
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


# ---- reports: figures over a range of days, from the rollups -------------------------------

RANGES = ("today", "7d", "month", "custom")


def pick_range(kind: str, start: date | None, end: date | None, today: date) -> DayRange:
    """Today, the last 7 days, this month so far, or ``start``–``end`` (custom)."""
    if kind == "today":
        return DayRange(today, today)
    if kind == "month":
        return DayRange(today.replace(day=1), today)
    if kind == "custom" and start is not None:
        return checked_range(start, min(end or start, today))
    return DayRange(today - timedelta(days=6), today)


@router.get("/reports")
async def reports_page(
    request: Request, session: ReadSessionDep, user: Supervisor, calendar: CalendarDep,
    chosen: Annotated[str, Query(alias="range", max_length=10)] = "7d",
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
) -> Response:
    """Per operator and per inbox figures over a range, with charts and CSV links."""
    kind = chosen if chosen in RANGES else "7d"
    days = pick_range(kind, start, end, calendar.today(utcnow()))
    names = await auth.names(session)
    inbox_names = {i.id: i.name for i in await inbox_service.all_inboxes(session) if i.id is not None}
    inbox_days = await queries.inbox_days(session, start=days.start, end=days.end, names=inbox_names)
    context = {
        "kind": kind, "days": days, "ranges": RANGES,
        "operators": await queries.operator_totals(session, start=days.start, end=days.end,
                                                   names=names),
        "inboxes": await queries.inbox_totals(session, start=days.start, end=days.end,
                                              days=inbox_days, names=inbox_names),
        "chart": charts.daily_chart(inbox_days, calendar),
        "query": urlencode({"from": days.start.isoformat(), "to": days.end.isoformat()}),
    }
    return templating.render(request, "reports.html", context, user=user)


@router.get("/reports/tickets")
async def report_tickets_page(
    request: Request, session: ReadSessionDep, user: Supervisor, days: RangeDep,
    metric: Annotated[Literal["resolution", "first_response"], Query()] = "resolution",
    user_id: Annotated[int | None, Query(ge=1)] = None,
    inbox_id: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """The tickets behind a number on the reports page."""
    found = await queries.sample_tickets(session, metric=metric, start=days.start, end=days.end,
                                         user_id=user_id, inbox_id=inbox_id)
    inbox_names = {i.id: i.name for i in await inbox_service.all_inboxes(session) if i.id is not None}
    context = {"tickets": found, "metric": metric, "days": days,
               "who": (await auth.names(session)).get(user_id or 0) or inbox_names.get(inbox_id or 0),
               "back": urlencode({"range": "custom", "from": days.start.isoformat(),
                                  "to": days.end.isoformat()})}
    return templating.render(request, "report_tickets.html", context, user=user)
