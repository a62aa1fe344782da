"""Background work on tickets: the assignment sweep. Tickets of operators gone offline or away
past the grace period go to someone else (or back to the queue), and tickets that waited for
capacity are handed out.

It lives with the tickets because it moves them the way ingest does (``ingest.auto_assign``,
which asks ``assignment`` whom a ticket goes to): ``tickets`` -> ``assignment``, never back.
Every process runs it; tickets are taken with SKIP LOCKED, so two sweeps never move one ticket
twice, and each inbox's policy row is locked while choosing (see assignment/service.py).
"""

import logging
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpdesk.assignment import service as assignment
from helpdesk.db import utcnow
from helpdesk.tickets import ingest as ticket_ingest

log = logging.getLogger(__name__)


async def sweep_once(sessionmaker: async_sessionmaker[AsyncSession], *,
                     now: datetime | None = None) -> int:
    """One pass over every automatic inbox; how many tickets changed hands."""
    async with sessionmaker() as session:
        inboxes = await assignment.automatic_inboxes(session)
    moved = 0
    for inbox_id, config in inboxes.items():
        grace = timedelta(seconds=config.offline_grace_seconds)
        moved += await _take_from_absent(sessionmaker, inbox_id, grace, now or utcnow())
        moved += await _hand_out_waiting(sessionmaker, inbox_id)
    return moved


async def _take_from_absent(sessionmaker: async_sessionmaker[AsyncSession], inbox_id: int,
                            grace: timedelta, now: datetime) -> int:
    moved = 0
    async with sessionmaker() as session:
        for ticket in await assignment.absent_assignees_tickets(session, inbox_id=inbox_id,
                                                                grace=grace, now=now):
            previous = ticket.assignee_id
            assert previous is not None
            why = await assignment.presence_of(session, previous)  # "offline" or "away"
            reason = await ticket_ingest.auto_assign(session, ticket, why=why, previous=previous)
            if reason is not None:
                await ticket_ingest.publish_assignment(session, ticket, reason)
                moved += 1
        await session.commit()
    return moved


async def _hand_out_waiting(sessionmaker: async_sessionmaker[AsyncSession], inbox_id: int) -> int:
    moved = 0
    async with sessionmaker() as session:
        for ticket in await assignment.waiting_tickets(session, inbox_id=inbox_id):
            reason = await ticket_ingest.auto_assign(session, ticket, why="waiting")
            if reason is not None:
                await ticket_ingest.publish_assignment(session, ticket, reason)
                moved += 1
        await session.commit()
    return moved
