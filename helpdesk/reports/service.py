"""The supervisor board's figures, from the ticket counters and today's tickets only."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.auth import service as auth
from helpdesk.auth.models import Role
from helpdesk.db import utcnow
from helpdesk.tickets import counts
from helpdesk.tickets import queries as ticket_queries
from helpdesk.tickets.models import Status, Ticket, TicketPublic

LOAD_STATUSES = (Status.unhandled, Status.in_progress, Status.pending)
QUEUE_LIMIT = 12  # the board shows this many waiting tickets, and this many more per "show more"
QUEUE_MAX = 1000


@dataclass
class OperatorRow:
    id: int
    name: str
    role: str
    load: dict[str, int]
    open_total: int
    handled_today: int = 0
    first_response_seconds: float | None = None
    handling_seconds: float | None = None


@dataclass
class Board:
    operators: list[OperatorRow]
    queue_counts: dict[int, dict[str, int]]
    queue: list[TicketPublic]
    totals: dict[str, int] = field(default_factory=dict)


def start_of_day(zone: tzinfo, now: datetime | None = None) -> datetime:
    """Midnight today in ``zone``, as an aware datetime."""
    local = (now or utcnow()).astimezone(zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


async def board(session: AsyncSession, *, zone: tzinfo, queue_limit: int = QUEUE_LIMIT) -> Board:
    """Every operator's load, today's pace, and the unassigned queue."""
    load = await counts.by_assignee(session)
    since = start_of_day(zone)
    handled, handling = await _resolved_since(session, since)
    first = await _first_responses_since(session, since)
    rows = []
    for user in await auth.all_users(session):
        if not user.is_active or user.id is None or (user.role != Role.operator and user.id not in load):
            continue
        mine = load.get(user.id, {s.value: 0 for s in Status})
        rows.append(OperatorRow(
            id=user.id, name=user.name, role=str(user.role), load=mine,
            open_total=sum(mine[s.value] for s in LOAD_STATUSES), handled_today=handled.get(user.id, 0),
            first_response_seconds=_mean(first.get(user.id)), handling_seconds=_mean(handling.get(user.id))))
    queue_counts = await counts.unassigned_by_inbox(session)
    totals = {s.value: sum(c[s.value] for c in queue_counts.values()) for s in Status}
    return Board(operators=rows, queue_counts=queue_counts, queue=await _queue(session, queue_limit),
                 totals=totals)


def _mean(values: list[float] | None) -> float | None:
    return sum(values) / len(values) if values else None


async def _resolved_since(
    session: AsyncSession, since: datetime
) -> tuple[dict[int, int], dict[int, list[float]]]:
    rows = await session.execute(
        select(col(Ticket.assignee_id), col(Ticket.created_at), col(Ticket.resolved_at))
        .where(col(Ticket.resolved_at) >= since, col(Ticket.status) == Status.resolved))
    handled: dict[int, int] = defaultdict(int)
    durations: dict[int, list[float]] = defaultdict(list)
    for assignee, created, resolved in rows.all():
        if assignee is not None and resolved is not None:
            handled[assignee] += 1
            durations[assignee].append((resolved - created).total_seconds())
    return handled, durations


async def _first_responses_since(session: AsyncSession, since: datetime) -> dict[int, list[float]]:
    rows = await session.execute(
        select(col(Ticket.assignee_id), col(Ticket.created_at), col(Ticket.first_response_at))
        .where(col(Ticket.first_response_at) >= since))
    found: dict[int, list[float]] = defaultdict(list)
    for assignee, created, responded in rows.all():
        if assignee is not None and responded is not None:
            found[assignee].append(max(0.0, (responded - created).total_seconds()))
    return found


async def _queue(session: AsyncSession, limit: int) -> list[TicketPublic]:
    """Open tickets nobody holds, longest waiting first."""
    rows = list(await session.scalars(
        select(Ticket).where(col(Ticket.assignee_id).is_(None),
                             col(Ticket.status).in_(LOAD_STATUSES))
        .order_by(col(Ticket.updated_at), col(Ticket.id)).limit(min(limit, QUEUE_MAX))))
    return await ticket_queries.publics(session, rows)


@dataclass(frozen=True)
class Bar:
    label: str
    y: int
    segments: list[tuple[str, int, int, int]]  # status, x, width, count
    total: int


def load_chart(operators: list[OperatorRow], *, width: int = 420, row: int = 26) -> list[Bar]:
    """Stacked horizontal bars of open load per operator, scaled to ``width`` pixels."""
    peak = max((op.open_total for op in operators), default=0) or 1
    bars = []
    for index, op in enumerate(operators):
        x, segments = 0, []
        for status in LOAD_STATUSES:
            n = op.load.get(status.value, 0)
            w = round(n * width / peak)
            if n:
                segments.append((status.value, x, w, n))
            x += w
        bars.append(Bar(label=op.name, y=index * row, segments=segments, total=op.open_total))
    return bars
