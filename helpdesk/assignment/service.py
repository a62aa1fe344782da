"""Choosing who gets a ticket: manual, round-robin, least-loaded, sticky; capacity and weights.

``choose`` locks the inbox's policy row, so on PostgreSQL the automatic assignments of one inbox
run one at a time and each sees the loads the previous one committed (SQLite has one writer
anyway): fifty messages arriving at once can never push an operator past capacity.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.assignment.models import DEFAULT_WEIGHTS, AssignmentConfig, AssignmentPolicy
from helpdesk.db import utcnow
from helpdesk.inboxes import service as inbox_service
from helpdesk.realtime import presence
from helpdesk.realtime.models import Presence, PresenceStatus
from helpdesk.tickets.models import Status, Ticket

# The statuses that take an operator's time; 保留 waits on the customer and does not.
LOADED = (Status.unhandled, Status.in_progress)


async def load_config(session: AsyncSession, inbox_id: int) -> AssignmentConfig:
    """The inbox's assignment settings (manual when never set)."""
    row = await session.get(AssignmentPolicy, inbox_id)
    return AssignmentConfig() if row is None else config_of(row)


def config_of(row: AssignmentPolicy) -> AssignmentConfig:
    return AssignmentConfig(policy=row.policy, sticky=row.sticky,
                            offline_grace_seconds=row.offline_grace_seconds,
                            capacity=row.capacity, weights=row.weights)


async def save_config(session: AsyncSession, inbox_id: int, config: AssignmentConfig) -> AssignmentConfig:
    """Replace the inbox's assignment settings."""
    row = await session.get(AssignmentPolicy, inbox_id, with_for_update=True)
    if row is None:
        row = AssignmentPolicy(inbox_id=inbox_id)
        session.add(row)
    row.policy, row.sticky = config.policy, config.sticky
    row.offline_grace_seconds = config.offline_grace_seconds
    row.capacity, row.weights, row.updated_at = dict(config.capacity), dict(config.weights), utcnow()
    await session.flush()
    return config


@dataclass(frozen=True)
class Decision:
    """Who gets the ticket (None: nobody has room, it waits) and why."""

    user_id: int | None
    reason: dict[str, Any] = field(default_factory=dict)


def weight_of(weights: dict[str, float], channel: str) -> float:
    """A ticket's share of an operator's capacity."""
    return float(weights.get(channel, DEFAULT_WEIGHTS.get(channel, 1.0)))


async def loads(session: AsyncSession, user_ids: list[int], weights: dict[str, float]) -> dict[int, float]:
    """Each user's load: their unhandled and in-progress tickets, weighted by channel."""
    found = dict.fromkeys(user_ids, 0.0)
    if not user_ids:
        return found
    rows = await session.execute(
        select(col(Ticket.assignee_id), col(Ticket.channel), func.count())
        .where(col(Ticket.assignee_id).in_(user_ids), col(Ticket.status).in_(LOADED))
        .group_by(col(Ticket.assignee_id), col(Ticket.channel)))
    for user_id, channel, n in rows.all():
        found[user_id or 0] += weight_of(weights, str(channel)) * n
    return {k: round(v, 4) for k, v in found.items()}


async def choose(session: AsyncSession, ticket: Ticket, *,
                 exclude: set[int] | None = None) -> Decision | None:
    """Pick an operator for ``ticket`` by its inbox's policy; None when the inbox is manual.

    The policy row stays locked until the caller commits (see the module's docstring).
    """
    row = await session.scalar(select(AssignmentPolicy).where(
        col(AssignmentPolicy.inbox_id) == ticket.inbox_id).with_for_update()
        .execution_options(populate_existing=True))
    if row is None or row.policy == "manual":
        return None
    online = [u for u in await presence.online_among(session, inbox_service.active_members(ticket.inbox_id))
              if u not in (exclude or set())]
    current = await loads(session, online, row.weights)
    weight = weight_of(row.weights, ticket.channel)
    room = [u for u in online if _fits(row.capacity.get(str(u)), current[u], weight)]
    reason: dict[str, Any] = {
        "policy": row.policy, "weight": weight,
        "candidates": [{"user_id": u, "load": current[u], "capacity": row.capacity.get(str(u))}
                       for u in online]}
    chosen = await _sticky_choice(session, row, ticket, room) if row.sticky else None
    if chosen is not None:
        reason["sticky"] = True
    elif room:
        chosen = _pick(row, room, current)
    if chosen is not None:
        row.last_user_id = chosen
    return Decision(user_id=chosen, reason=reason)


def _fits(capacity: float | None, load: float, weight: float) -> bool:
    return capacity is None or load + weight <= float(capacity) + 1e-9


def _pick(row: AssignmentPolicy, room: list[int], current: dict[int, float]) -> int:
    """Round-robin: the next after the last one given a ticket; least-loaded: the lightest,
    ties broken in the same round-robin order so equal operators take turns."""
    ordered = sorted(room)
    last = row.last_user_id or 0
    turn = [u for u in ordered if u > last] + [u for u in ordered if u <= last]
    if row.policy == "least_loaded":
        return min(turn, key=lambda u: current[u])  # min keeps the first of equals
    return turn[0]


async def _sticky_choice(session: AsyncSession, row: AssignmentPolicy, ticket: Ticket,
                         room: list[int]) -> int | None:
    """The customer's last operator in this inbox, when they are online and have room."""
    if ticket.customer_id is None or not room:
        return None
    last = await session.scalar(
        select(col(Ticket.assignee_id)).where(
            col(Ticket.customer_id) == ticket.customer_id, col(Ticket.inbox_id) == row.inbox_id,
            col(Ticket.id) != ticket.id, col(Ticket.assignee_id).is_not(None))
        .order_by(col(Ticket.updated_at).desc(), col(Ticket.id).desc()).limit(1))
    return last if last in room else None


async def automatic_inboxes(session: AsyncSession) -> dict[int, AssignmentConfig]:
    """Inboxes whose tickets are assigned by a policy, with their settings."""
    rows = await session.scalars(select(AssignmentPolicy).where(col(AssignmentPolicy.policy) != "manual"))
    return {row.inbox_id: config_of(row) for row in rows}


async def absent_assignees_tickets(session: AsyncSession, *, inbox_id: int, grace: timedelta,
                                   now: datetime, limit: int = 200) -> list[Ticket]:
    """未対応 tickets of the inbox whose assignee has been offline or away longer than ``grace``,
    row-locked (skipping rows another transaction holds)."""
    here = (select(col(Presence.user_id)).where(col(Presence.status) == PresenceStatus.online)
            .union(select(col(Presence.user_id)).where(col(Presence.since) > now - grace)))
    return list(await session.scalars(
        select(Ticket).where(col(Ticket.inbox_id) == inbox_id, col(Ticket.status) == Status.unhandled,
                             col(Ticket.assignee_id).is_not(None), col(Ticket.assignee_id).not_in(here))
        .order_by(col(Ticket.id)).limit(limit).with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)))


async def waiting_tickets(session: AsyncSession, *, inbox_id: int, limit: int = 200) -> list[Ticket]:
    """Unassigned 未対応 tickets of the inbox, oldest first, row-locked (skipping held rows)."""
    return list(await session.scalars(
        select(Ticket).where(col(Ticket.inbox_id) == inbox_id, col(Ticket.status) == Status.unhandled,
                             or_(col(Ticket.assignee_id).is_(None)))
        .order_by(col(Ticket.created_at), col(Ticket.id)).limit(limit).with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)))


async def presence_of(session: AsyncSession, user_id: int) -> str:
    """A user's status now (offline when never seen)."""
    status = await session.scalar(select(col(Presence.status)).where(col(Presence.user_id) == user_id))
    return str(status or PresenceStatus.offline)


@dataclass(frozen=True)
class CapacityUse:
    """One member of an automatic inbox: their load now and their capacity there."""

    inbox_id: int
    user_id: int
    load: float
    capacity: float | None


async def capacity_use(session: AsyncSession) -> list[CapacityUse]:
    """Load and capacity of every member of the inboxes assigned by a policy."""
    found: list[CapacityUse] = []
    for inbox_id, config in (await automatic_inboxes(session)).items():
        # active_members is typed loosely (a select of one column): its scalars are user ids.
        members = cast(list[int], list(await session.scalars(inbox_service.active_members(inbox_id))))
        current = await loads(session, members, config.weights)
        found += [CapacityUse(inbox_id, u, current[u], config.capacity.get(str(u))) for u in members]
    return found
