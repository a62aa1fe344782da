"""The supervisor board's figures, from kept counters and short index walks only."""

from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.assignment import service as assignment
from helpdesk.auth import service as auth
from helpdesk.auth.models import Role
from helpdesk.db import utcnow
from helpdesk.inboxes import service as inbox_service
from helpdesk.tickets import counts, pace
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
    """Every operator's load, today's pace, and the unassigned queue.

    Each part reads kept figures or walks an index with a limit, so the board costs the same
    whatever the number of tickets: loads and queue sizes from ``ticket_count``, today's pace
    from ``ticket_pace``, the queue from the oldest end of an index.
    """
    load = await counts.by_assignee(session)
    today = await pace.since(session, start_of_day(zone))
    rows = []
    for user in await auth.all_users(session):
        if not user.is_active or user.id is None or (user.role != Role.operator and user.id not in load):
            continue
        mine = load.get(user.id, {s.value: 0 for s in Status})
        done = today.get(user.id, pace.Pace())
        rows.append(OperatorRow(
            id=user.id, name=user.name, role=str(user.role), load=mine,
            open_total=sum(mine[s.value] for s in LOAD_STATUSES), handled_today=done.resolved,
            first_response_seconds=done.response_seconds, handling_seconds=done.resolution_seconds))
    queue_counts = await counts.unassigned_by_inbox(session)
    totals = {s.value: sum(c[s.value] for c in queue_counts.values()) for s in Status}
    return Board(operators=rows, queue_counts=queue_counts, queue=await waiting(session, queue_limit),
                 totals=totals)


async def waiting(session: AsyncSession, limit: int) -> list[TicketPublic]:
    """Open tickets nobody holds, longest waiting first.

    One walk per open status of the (assignee, status, updated_at, id) index, each stopping
    after ``limit`` entries, merged here: a single statement over the three statuses would have
    to sort every waiting ticket.
    """
    limit = min(limit, QUEUE_MAX)
    found: list[tuple[datetime, int]] = []
    for status in LOAD_STATUSES:
        rows = await session.execute(
            select(col(Ticket.updated_at), col(Ticket.id))
            .where(col(Ticket.assignee_id).is_(None), col(Ticket.status) == status)
            .order_by(col(Ticket.updated_at), col(Ticket.id)).limit(limit))
        found += [(updated, ticket_id) for updated, ticket_id in rows.all() if ticket_id is not None]
    chosen = [ticket_id for _, ticket_id in sorted(found)[:limit]]
    if not chosen:
        return []
    by_id = {t.id: t for t in await session.scalars(select(Ticket).where(col(Ticket.id).in_(chosen)))}
    return await ticket_queries.publics(session, [by_id[i] for i in chosen if i in by_id])


async def capacity_use(session: AsyncSession) -> list[assignment.CapacityUse]:
    """Load and capacity of every member of the inboxes assigned by a policy, from the counters.

    The same figures as ``assignment.capacity_use``, which counts the tickets (assignment itself
    decides on counted loads): each member's 未対応 and 対応中 tickets across every inbox,
    weighted by the inbox's channel weights.
    """
    found: list[assignment.CapacityUse] = []
    for inbox_id, config in (await assignment.automatic_inboxes(session)).items():
        members = cast(list[int], list(await session.scalars(inbox_service.active_members(inbox_id))))
        tickets = await counts.by_assignee_channel(session, members, assignment.LOADED)
        for user_id in members:
            load = sum(assignment.weight_of(config.weights, channel) * n
                       for channel, n in tickets.get(user_id, {}).items())
            found.append(assignment.CapacityUse(inbox_id, user_id, round(load, 4),
                                                config.capacity.get(str(user_id))))
    return found


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
