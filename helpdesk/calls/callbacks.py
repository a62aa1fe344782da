"""Calling customers back: outbound calls that belong to a ticket, and what came of a call-back."""

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.models import User
from helpdesk.calls import threads
from helpdesk.calls.models import Call, CallbackOutcome, CallbackResult
from helpdesk.db import utcnow
from helpdesk.errors import BadInput
from helpdesk.inboxes import service as inbox_service
from helpdesk.realtime import events
from helpdesk.tickets import ingest as ticket_ingest
from helpdesk.tickets import queries as ticket_queries
from helpdesk.tickets.models import Channel

OUTCOME_JA = {CallbackOutcome.reached: "つながった", CallbackOutcome.no_answer: "不在",
              CallbackOutcome.voicemail: "留守番電話", CallbackOutcome.wrong_number: "番号違い"}


async def attach_outbound(session: AsyncSession, call: Call, *, user: User, ticket_id: int | None,
                          callback_of: int | None) -> None:
    """An outbound call started from a ticket (or calling back a missed call) belongs to that
    ticket; one started from a customer's page, to their open ticket in the calling inbox."""
    if callback_of is not None and ticket_id is None:
        missed = await session.get(Call, callback_of)
        ticket_id = missed.ticket_id if missed is not None else None
    if ticket_id is not None:
        await _check_visible(session, ticket_id, user)
        call.ticket_id = ticket_id
    elif call.customer_id is not None:
        call.ticket_id = await threads.open_ticket_id(session, customer_id=call.customer_id,
                                                      inbox_id=call.inbox_id)
    await session.flush()


async def _check_visible(session: AsyncSession, ticket_id: int, user: User) -> None:
    inbox_id = await ticket_queries.inbox_of(session, ticket_id)
    if inbox_id is None or not await inbox_service.works_in(session, user, inbox_id):
        raise BadInput("ticket_id: no such ticket")


async def record_result(session: AsyncSession, call: Call, body: CallbackResult, *,
                        user: User) -> None:
    """Keep what came of calling back; reaching the caller makes the missed call done."""
    now = utcnow()
    call.callback_result, call.callback_by, call.callback_at = body.result.value, user.id, now
    if body.result == CallbackOutcome.reached:
        call.done = True
    if call.ticket_id is not None:
        text = f"折り返し: {OUTCOME_JA[body.result]}（{user.name}）"
        if body.notes.strip():
            text += f"\n{body.notes}"
        await ticket_ingest.system_note(session, call.ticket_id, channel=Channel.phone, body=text,
                                  external_id=f"callback:{call.id}:{now.isoformat()}", at=now)
    await session.flush()
    events.record(session, events.CallCallbackResult(
        inbox_id=call.inbox_id, call_id=call.id, result=body.result.value, by=user.id,
        at=now.isoformat()))
