"""The caller log: the calls a user may see, each with the names people read (customer,
operator, ticket number) and its after-call work, looked up a page at a time; marking calls done."""

import base64
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk import normalize
from helpdesk.auth.models import User
from helpdesk.calls import announce
from helpdesk.calls.models import (
    Call,
    CallDirection,
    CallLogEntry,
    CallState,
    WrapupPublic,
    WrapupState,
)
from helpdesk.customers import service as customers
from helpdesk.errors import BadInput, NotFound
from helpdesk.inboxes import service as inbox_service
from helpdesk.tickets.models import Ticket


async def entries(session: AsyncSession, calls: list[Call]) -> list[CallLogEntry]:
    """The page's calls as log rows, in four narrow queries whatever the page's length."""
    names = await customers.names(session, [c.customer_id for c in calls if c.customer_id])
    operators = {uid: name for uid, name in await session.execute(
        select(col(User.id), col(User.name)).where(
            col(User.id).in_({c.operator_id for c in calls if c.operator_id})))}
    numbers = {tid: number for tid, number in await session.execute(
        select(col(Ticket.id), col(Ticket.number)).where(
            col(Ticket.id).in_({c.ticket_id for c in calls if c.ticket_id})))}
    wrapups = {w.call_ref: w for w in await session.scalars(select(WrapupState).where(
        col(WrapupState.call_ref).in_([c.id for c in calls])))}
    return [CallLogEntry.model_validate(call).model_copy(update={
        "customer_name": names.get(call.customer_id) if call.customer_id else None,
        "operator_name": operators.get(call.operator_id) if call.operator_id else None,
        "ticket_number": numbers.get(call.ticket_id) if call.ticket_id else None,
        "withheld": _withheld(call),
        "wrapup": WrapupPublic.model_validate(wrapups[call.id]) if call.id in wrapups else None,
    }) for call in calls]


def _withheld(call: Call) -> bool:
    raw = call.from_number if call.direction == CallDirection.inbound else call.to_number
    return call.caller_e164 is None and normalize.is_withheld(raw)


async def visible_call(session: AsyncSession, call_pk: int, user: User) -> Call:
    """A call in an inbox the user works; 404 otherwise."""
    call = await session.get(Call, call_pk)
    if call is None or not await inbox_service.works_in(session, user, call.inbox_id):
        raise NotFound("call not found")
    return call


async def list_calls(
    session: AsyncSession, user: User, *, done: bool | None, cursor: str | None, limit: int
) -> tuple[list[CallLogEntry], str | None]:
    """The caller log the user may see, newest first, by keyset on id."""
    stmt = select(Call)
    visible = await inbox_service.visible_inbox_ids(session, user)
    if visible is not None:
        stmt = stmt.where(col(Call.inbox_id).in_(visible))
    if done is not None:
        stmt = stmt.where(col(Call.done).is_(done))
    if cursor:
        stmt = stmt.where(col(Call.id) < _decode_cursor(cursor))
    rows = list(await session.scalars(stmt.order_by(col(Call.id).desc()).limit(limit + 1)))
    page = rows[:limit]
    more = len(rows) > limit and page
    next_cursor = base64.urlsafe_b64encode(str(page[-1].id).encode()).decode() if more else None
    return await entries(session, page), next_cursor


async def current_calls(session: AsyncSession, user: User, *, limit: int = 50) -> list[dict[str, Any]]:
    """Calls ringing or in progress that the user may see, oldest first, shaped as in events."""
    stmt = select(Call).where(col(Call.state) != CallState.ended)
    visible = await inbox_service.visible_inbox_ids(session, user)
    if visible is not None:
        stmt = stmt.where(col(Call.inbox_id).in_(visible))
    rows = await session.scalars(stmt.order_by(col(Call.id)).limit(limit))
    return [announce.public(call) for call in rows]


def _decode_cursor(cursor: str) -> int:
    try:
        return int(base64.urlsafe_b64decode(cursor.encode()).decode())
    except (ValueError, UnicodeDecodeError):
        raise BadInput("cursor is not valid") from None


async def mark_done(session: AsyncSession, user: User, ids: list[int]) -> int:
    """Mark the user's visible calls among ``ids`` as done; returns how many were found."""
    stmt = update(Call).where(col(Call.id).in_(ids))
    visible = await inbox_service.visible_inbox_ids(session, user)
    if visible is not None:
        stmt = stmt.where(col(Call.inbox_id).in_(visible))
    result = await session.execute(stmt.values(done=True))
    return int(getattr(result, "rowcount", 0) or 0)
