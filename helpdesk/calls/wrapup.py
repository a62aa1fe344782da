"""After-call work (後処理): from an answered call's hang-up until its operator submits the wrap-up.

Meanwhile the operator is not offered calls (up to the ACW limit, see ``choose_operators``).
Both ends are events: ``call.acw_started`` and ``call.wrapup_done``, whose ``acw_seconds`` and
``talk_seconds`` are what handling-time figures add up.
"""

from datetime import date, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.models import User
from helpdesk.calls.models import Call, WrapUp, WrapupState
from helpdesk.db import utcnow
from helpdesk.errors import BadInput
from helpdesk.inboxes import service as inbox_service
from helpdesk.realtime import events
from helpdesk.tickets import queries as ticket_queries
from helpdesk.tickets import service as tickets
from helpdesk.tickets.models import MessagePublic, Status, TicketUpdate

# How the thread names the outcome codes shipped by default; other configured codes as written.
DISPOSITION_JA = {"resolved": "解決", "callback": "折り返し", "transferred": "転送",
                  "no_action": "対応不要"}


async def begin(session: AsyncSession, call: Call, *, limit: timedelta) -> None:
    """An answered call ended: its operator's after-call work starts now."""
    if call.operator_id is None or call.id is None:
        return
    if await session.get(WrapupState, call.id) is not None:
        return
    started = call.ended_at or utcnow()
    session.add(WrapupState(call_ref=call.id, operator_id=call.operator_id,
                            ticket_id=call.ticket_id, started_at=started))
    events.record(session, events.CallAcwStarted(
        inbox_id=call.inbox_id, user_ids=[call.operator_id], call_id=call.id,
        operator_id=call.operator_id, ticket_id=call.ticket_id, started_at=started.isoformat(),
        limit_seconds=int(limit.total_seconds())))


async def state_of(session: AsyncSession, call: Call) -> WrapupState | None:
    """The call's after-call work, if it has any."""
    return await session.get(WrapupState, call.id) if call.id is not None else None


async def submit(session: AsyncSession, call: Call, body: WrapUp, *, user: User,
                 dispositions: list[str]) -> MessagePublic:
    """The wrap-up: notes (with the outcome and follow-up day) onto the call's ticket, its new
    status, and the end of the operator's after-call work, timed."""
    if body.disposition is not None and body.disposition not in dispositions:
        raise BadInput(f"disposition: one of {', '.join(dispositions)}")
    ticket_id = body.ticket_id or call.ticket_id
    if ticket_id is None:
        raise BadInput("ticket_id: this call has no ticket; name one")
    ticket = await ticket_queries.lock(session, ticket_id)
    if ticket is None or not await inbox_service.works_in(session, user, ticket.inbox_id):
        raise BadInput("ticket_id: no such ticket")
    message = await tickets.reply(session, ticket, body=_note(body), internal=True, actor=user)
    if body.status is not None:
        reason = body.pending_reason
        if body.status == Status.pending and not reason and body.follow_up_on:
            reason = f"次回対応日 {body.follow_up_on.isoformat()}"
        change = TicketUpdate(version=ticket.version, status=body.status, pending_reason=reason)
        await tickets.update(session, ticket, change, actor=user)
    call.ticket_id = call.ticket_id or ticket.id
    call.done = True
    await _finish(session, call, body, user=user, ticket_id=ticket.id, message_id=message.id)
    return message


def _note(body: WrapUp) -> str:
    lines = []
    if body.disposition:
        lines.append(f"通話結果: {DISPOSITION_JA.get(body.disposition, body.disposition)}")
    if body.follow_up_on:
        lines.append(f"次回対応日: {body.follow_up_on.isoformat()}")
    if body.notes:
        lines.append(body.notes)
    return "\n".join(lines)


async def _finish(session: AsyncSession, call: Call, body: WrapUp, *, user: User,
                  ticket_id: int | None, message_id: int | None) -> None:
    state = await state_of(session, call)
    now = utcnow()
    if state is None:  # a call wrapped up by someone who did not take it, or from long ago
        assert call.id is not None and user.id is not None
        state = WrapupState(call_ref=call.id, operator_id=call.operator_id or user.id,
                            started_at=call.ended_at or now)
        session.add(state)
    first = state.submitted_at is None
    if first:
        state.submitted_at = now
        state.acw_seconds = max(0, int((now - state.started_at).total_seconds()))
    state.ticket_id, state.message_id = ticket_id, message_id
    state.disposition = body.disposition or state.disposition
    state.follow_up_on = body.follow_up_on or state.follow_up_on
    await session.flush()
    if first:
        events.record(session, events.CallWrapupDone(
            inbox_id=call.inbox_id, user_ids=[state.operator_id], call_id=call.id,
            operator_id=state.operator_id, ticket_id=ticket_id, disposition=state.disposition,
            acw_seconds=state.acw_seconds, talk_seconds=_talk(call),
            follow_up_on=_day(state.follow_up_on)))


def _talk(call: Call) -> int | None:
    if call.answered_at is None or call.ended_at is None:
        return None
    return max(0, int((call.ended_at - call.answered_at).total_seconds()))


def _day(value: date | None) -> str | None:
    return value.isoformat() if value else None
