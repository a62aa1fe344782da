"""The caller log's rows: each call with the names people read (customer, operator, ticket
number) and its after-call work, looked up a page at a time."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk import normalize
from helpdesk.auth.models import User
from helpdesk.calls.models import Call, CallDirection, CallLogEntry, WrapupPublic, WrapupState
from helpdesk.customers import service as customers
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
