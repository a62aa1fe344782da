"""Service levels: the settings, each ticket's due times, and reporting breaches.

The ticket service calls the ``on_…`` functions in the transaction that changes a ticket, so due
times are always current in the row (the inbox sorts by them without computing anything).
"""

import copy
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.db import utcnow
from helpdesk.history import service as history
from helpdesk.realtime import events
from helpdesk.sla.hours import (
    DAY_NAMES,
    Calendar,
    add_business_minutes,
    business_minutes_between,
    parse_clock,
    shift_business_minutes,
)
from helpdesk.sla.models import TARGETS, SlaConfig, SlaSettings, SlaTarget, Target
from helpdesk.tickets.models import Channel, Priority, Status, Ticket

RUNNING = (Status.unhandled, Status.in_progress, Status.pending)


@dataclass(frozen=True)
class Policy:
    """The settings and the calendar built from them, read once per transaction."""

    config: SlaConfig
    calendar: Calendar

    def target(self, ticket: Ticket) -> SlaTarget | None:
        """The target for the ticket's priority and channel, else for its priority alone."""
        return self.target_for(ticket.priority, ticket.channel)

    def target_for(self, priority: Priority, channel: Channel) -> SlaTarget | None:
        """The target for ``priority`` on ``channel``, else for ``priority`` on any channel."""
        loose = None
        for target in self.config.targets:
            if target.priority == priority and target.channel == channel:
                return target
            if target.priority == priority and target.channel is None:
                loose = target
        return loose

    def due(self, start: datetime, minutes: int | None) -> datetime | None:
        return None if minutes is None else add_business_minutes(self.calendar, start, minutes)


def calendar_of(config: SlaConfig) -> Calendar:
    """The business-time calendar a configuration describes."""
    hours = {DAY_NAMES.index(day): tuple((parse_clock(a), parse_clock(b)) for a, b in periods)
             for day, periods in config.hours.items()}
    return Calendar(timezone=config.timezone, hours=hours, public_holidays=config.public_holidays,
                    closed_days=frozenset(config.closed_days))


async def load_config(session: AsyncSession) -> SlaConfig:
    """The saved settings, or the defaults when none were saved."""
    row = await session.get(SlaSettings, 1)
    return SlaConfig.model_validate(row.config) if row is not None else SlaConfig()


_last_parsed: tuple[dict[str, Any] | None, Policy] | None = None


def policy_of(saved: dict[str, Any] | None) -> Policy:
    """The policy of the settings as saved (None: none were), parsed again only when they
    differ from the last ones parsed; the caller reads them in its own transaction, so they
    are never older than that read, whichever worker saved them."""
    global _last_parsed
    last = _last_parsed
    if last is not None and last[0] == saved:
        return last[1]
    config = SlaConfig.model_validate(saved) if saved is not None else SlaConfig()
    found = Policy(config=config, calendar=calendar_of(config))
    _last_parsed = (copy.deepcopy(saved), found)
    return found


async def save_config(session: AsyncSession, config: SlaConfig) -> SlaConfig:
    """Replace the settings (tickets keep the due times they were given)."""
    row = await session.get(SlaSettings, 1)
    if row is None:
        row = SlaSettings(id=1)
        session.add(row)
    row.config = config.model_dump(mode="json")
    row.updated_at = utcnow()
    await session.flush()
    return config


async def policy(session: AsyncSession) -> Policy:
    """The settings with their calendar."""
    row = await session.get(SlaSettings, 1)
    return policy_of(row.config if row is not None else None)


# ---- keeping a ticket's due times --------------------------------------------------------------


def on_opened(policy: Policy, ticket: Ticket, at: datetime) -> None:
    """A new ticket: the first response and the resolution are due."""
    target = policy.target(ticket)
    if target is not None:
        ticket.first_response_due_at = policy.due(at, target.first_response_minutes)
        ticket.resolution_due_at = policy.due(at, target.resolution_minutes)
    refresh(ticket)


def on_inbound(policy: Policy, ticket: Ticket, before: Status, at: datetime) -> None:
    """The customer wrote again: once answered before, the next response is due."""
    _resume_if_unpaused(policy, ticket, before, at)
    target = policy.target(ticket)
    if target is not None and ticket.status in RUNNING:
        if ticket.first_response_at is not None and ticket.next_response_due_at is None:
            ticket.next_response_due_at = policy.due(at, target.next_response_minutes)
        if before in (Status.resolved, Status.no_action):  # reopened: a fresh resolution clock
            ticket.resolution_due_at = policy.due(at, target.resolution_minutes)
            _forget_breach(ticket, "resolution")
    refresh(ticket)


def on_reply(ticket: Ticket) -> None:
    """A public reply went out (or was approved): nothing is owed to the customer now."""
    ticket.next_response_due_at = None
    _forget_breach(ticket, "next_response")
    refresh(ticket)


def on_status(policy: Policy, ticket: Ticket, before: Status, now: datetime) -> None:
    """Status changed: 保留 stops the clock, leaving it starts it again where it stood."""
    _resume_if_unpaused(policy, ticket, before, now)
    if ticket.status == Status.pending and before != Status.pending:
        ticket.sla_paused_at = now
    refresh(ticket)


# Each deadline column, the target it keeps and that target's minutes in an ``SlaTarget``.
_DEADLINES: tuple[tuple[str, Target, str], ...] = (
    ("first_response_due_at", "first_response", "first_response_minutes"),
    ("next_response_due_at", "next_response", "next_response_minutes"),
    ("resolution_due_at", "resolution", "resolution_minutes"),
)


def on_priority(policy: Policy, ticket: Ticket, before: Priority, now: datetime) -> None:
    """The priority changed: each running deadline takes the new priority's target.

    A deadline moves by the difference between the two targets, in business minutes, so time
    already spent (and time on hold) counts as it did: 8 hours to answer becoming 1 hour moves
    the deadline 7 business hours earlier, possibly into the past (the breach sweep reports it).
    A target the old priority did not have starts its clock now; one the new priority lacks
    stops running.
    """
    old, new = policy.target_for(before, ticket.channel), policy.target(ticket)
    for column, target, minutes in _DEADLINES:
        if not _owed(ticket, target):
            continue
        old_minutes = getattr(old, minutes) if old is not None else None
        new_minutes = getattr(new, minutes) if new is not None else None
        due: datetime | None = getattr(ticket, column)
        if new_minutes is None:
            moved = None
        elif old_minutes is None or due is None:
            moved = policy.due(now, new_minutes)
        else:
            moved = shift_business_minutes(policy.calendar, due, new_minutes - old_minutes) or due
        setattr(ticket, column, moved)
        if moved is None or moved > now:
            _forget_breach(ticket, target)  # a later deadline may be breached (and told) again
    refresh(ticket)


def _owed(ticket: Ticket, target: Target) -> bool:
    """Whether ``target`` is still to be met on this open ticket (its clock runs or would)."""
    if ticket.status not in RUNNING:
        return False
    if target == "first_response":
        return ticket.first_response_at is None
    if target == "next_response":  # owed only once the customer wrote after a reply
        return ticket.next_response_due_at is not None
    return True


def _resume_if_unpaused(policy: Policy, ticket: Ticket, before: Status, now: datetime) -> None:
    paused = ticket.sla_paused_at
    if before != Status.pending or ticket.status == Status.pending or paused is None:
        return
    # Each running deadline moves on by the business minutes the ticket spent on hold.
    for name in ("first_response_due_at", "next_response_due_at", "resolution_due_at"):
        due: datetime | None = getattr(ticket, name)
        if due is not None and due > paused:
            left = business_minutes_between(policy.calendar, paused, due)
            setattr(ticket, name, add_business_minutes(policy.calendar, now, left) or due)
    ticket.sla_paused_at = None


def _forget_breach(ticket: Ticket, target: Target) -> None:
    # A new deadline for the same target may be breached (and reported) again.
    ticket.sla_breaches = ",".join(t for t in ticket.sla_breaches.split(",") if t and t != target)


def running_dues(ticket: Ticket) -> dict[Target, datetime]:
    """The deadlines still running, by target."""
    if ticket.status not in RUNNING:
        return {}
    found: dict[Target, datetime | None] = {
        "first_response": ticket.first_response_due_at if ticket.first_response_at is None else None,
        "next_response": ticket.next_response_due_at,
        "resolution": ticket.resolution_due_at,
    }
    return {k: v for k, v in found.items() if v is not None}


def refresh(ticket: Ticket) -> None:
    """Recompute the sort and check columns from the due times."""
    dues = running_dues(ticket)
    if ticket.status == Status.pending:
        ticket.sla_due_at = ticket.sla_check_at = None
        return
    reported = set(ticket.sla_breaches.split(","))
    ticket.sla_due_at = min(dues.values(), default=None)
    ticket.sla_check_at = min((v for k, v in dues.items() if k not in reported), default=None)


# ---- breaches ----------------------------------------------------------------------------------


def newly_breached(ticket: Ticket, now: datetime) -> list[Target]:
    """Running targets past due and not yet reported, in a fixed order (none while on hold)."""
    if ticket.status == Status.pending:
        return []
    dues = running_dues(ticket)
    reported = set(ticket.sla_breaches.split(","))
    return [t for t in TARGETS if t in dues and dues[t] <= now and t not in reported]


async def report_breaches(session: AsyncSession, *, now: datetime, limit: int = 500) -> int:
    """Record ``ticket.sla_breached`` once per target for tickets past due; how many were."""
    # SKIP LOCKED: a ticket being changed right now is looked at on the next pass, and two
    # processes running this at once share the work rather than reporting a breach twice.
    tickets = list(await session.scalars(
        select(Ticket).where(col(Ticket.sla_check_at) <= now).order_by(col(Ticket.sla_check_at))
        .limit(limit).with_for_update(skip_locked=True).execution_options(populate_existing=True)))
    count = 0
    for ticket in tickets:
        assert ticket.id is not None
        breached = newly_breached(ticket, now)
        for target in breached:
            breach = events.TicketSlaBreached(inbox_id=ticket.inbox_id, ticket_id=ticket.id,
                                              target=target,
                                              due_at=running_dues(ticket)[target].isoformat())
            events.record(session, breach)
            history.record(session, ticket_id=ticket.id, type=breach.type, data=breach.data(), at=now)
            count += 1
        ticket.sla_breaches = ",".join(t for t in TARGETS if t in set(ticket.sla_breaches.split(","))
                                       | set(breached))
        ticket.sla_breached = ticket.sla_breached or bool(breached)
        refresh(ticket)
    await session.flush()
    return count


# ---- the board ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Risk:
    """Open tickets past a deadline, close to one, and the soonest due."""

    breached: int
    near: int
    soonest: list[Ticket]


async def at_risk(session: AsyncSession, *, now: datetime, near: timedelta, limit: int = 10) -> Risk:
    """How many running deadlines are past or close, and the tickets due soonest."""
    due = col(Ticket.sla_due_at)
    breached = await session.scalar(select(func.count()).where(due <= now))
    close = await session.scalar(select(func.count()).where(due > now, due <= now + near))
    soonest = list(await session.scalars(select(Ticket).where(due.is_not(None))
                                         .order_by(due, col(Ticket.id)).limit(limit)))
    return Risk(breached=int(breached or 0), near=int(close or 0), soonest=soonest)
