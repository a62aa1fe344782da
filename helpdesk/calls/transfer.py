"""Handing a call to another operator or to an inbox's queue, blind or after consulting first.

The card pops for the receiver with the first operator's notes. When the receiver has the call
(their phone answered it, the PBX says they did, or the first operator completes a consultation)
the call's operator changes, the ticket moves to them (and to the receiving inbox), and the
thread says who handed it over. The provider's part (Twilio conferences and redirects) is done
by the adapter through ``Switch``; a PBX on the generic CTI protocol transfers by itself and
tells us with an ``answer`` by the receiver.
"""

from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.auth.models import User
from helpdesk.calls import announce
from helpdesk.calls.models import (
    Call,
    CallState,
    CallTransfer,
    Routed,
    TransferMode,
    TransferRequest,
    TransferState,
)
from helpdesk.db import utcnow
from helpdesk.errors import BadInput, Conflict, Forbidden, HelpdeskError
from helpdesk.inboxes.models import Inbox
from helpdesk.profiles import service as profiles
from helpdesk.realtime import events
from helpdesk.tickets import ingest as ticket_ingest
from helpdesk.tickets import service as tickets
from helpdesk.tickets.models import Channel

OPEN = (TransferState.consulting.value, TransferState.ringing.value)
MODE_JA = {TransferMode.blind: "ブラインド転送", TransferMode.warm: "ウォーム転送"}


class SwitchFailed(HelpdeskError):
    status_code = 502


class Switch(Protocol):
    """What a provider does to move the audio (Twilio REST); absent for PBX-driven calls."""

    async def start(self, call: Call, transfer: CallTransfer, *, inbox_name: str | None) -> None: ...

    async def complete(self, call: Call, transfer: CallTransfer) -> None: ...

    async def cancel(self, call: Call, transfer: CallTransfer) -> None: ...


@dataclass(frozen=True)
class Pop:
    region: str
    dormant_after_days: int


async def open_transfer(session: AsyncSession, call: Call) -> CallTransfer | None:
    """The call's transfer under way (consulting or ringing the receiver), if any."""
    return await session.scalar(select(CallTransfer).where(
        col(CallTransfer.call_ref) == call.id, col(CallTransfer.state).in_(OPEN))
        .order_by(col(CallTransfer.id).desc()).limit(1))


async def start(session: AsyncSession, call: Call, body: TransferRequest, *, by: User,
                receivers: list[int], pop: Pop) -> CallTransfer:
    """Begin handing the call over; the card pops for ``receivers`` with the notes."""
    if call.state != CallState.answered:
        raise Conflict("only a call in progress can be transferred")
    if call.operator_id != by.id and not by.sees_everything:
        raise Forbidden("only the operator on the call (or a supervisor) can transfer it")
    if await open_transfer(session, call) is not None:
        raise Conflict("this call is already being transferred")
    await _check_target(session, call, body)
    assert call.id is not None
    transfer = CallTransfer(
        call_ref=call.id, from_user_id=call.operator_id, to_user_id=body.to_user_id,
        to_inbox_id=body.to_inbox_id, mode=body.mode, notes=body.notes,
        state=TransferState.consulting if body.mode == TransferMode.warm else TransferState.ringing)
    session.add(transfer)
    await session.flush()
    if body.to_inbox_id is not None and body.mode == TransferMode.blind:
        # The caller waits in the receiving inbox's queue; whoever answers there takes the call.
        call.routed, call.operator_id, call.inbox_id = Routed.queue, None, body.to_inbox_id
    await _pop(session, call, transfer, receivers, by=by, pop=pop)
    return transfer


async def _check_target(session: AsyncSession, call: Call, body: TransferRequest) -> None:
    if body.to_user_id is not None:
        target = await session.get(User, body.to_user_id)
        if target is None or not target.is_active:
            raise BadInput("to_user_id: no such operator")
        if target.id == call.operator_id:
            raise BadInput("to_user_id: the call is already theirs")
    if body.to_inbox_id is not None and await session.get(Inbox, body.to_inbox_id) is None:
        raise BadInput("to_inbox_id: no such inbox")


async def _pop(session: AsyncSession, call: Call, transfer: CallTransfer, receivers: list[int],
               *, by: User, pop: Pop) -> None:
    customer = (await profiles.customer_rows(session, call.customer_id)
                if call.customer_id is not None else None)
    await announce.ringing(session, call, customer, region=pop.region,
                           dormant_after_days=pop.dormant_after_days, user_ids=receivers,
                           transfer=describe(transfer, from_name=by.name))
    events.record(session, events.CallTransferStarted(
        inbox_id=call.inbox_id, user_ids=[uid for uid in {by.id, transfer.from_user_id, *receivers} if uid],
        call=announce.public(call), transfer=describe(transfer, from_name=by.name)))


def describe(transfer: CallTransfer, *, from_name: str | None = None) -> dict[str, Any]:
    """A transfer as events and the API show it."""
    return {"id": transfer.id, "mode": transfer.mode, "state": transfer.state,
            "from_user_id": transfer.from_user_id, "from_name": from_name,
            "to_user_id": transfer.to_user_id, "to_inbox_id": transfer.to_inbox_id,
            "notes": transfer.notes}


async def picked_up(session: AsyncSession, call: Call, operator_id: int) -> bool:
    """Someone other than the call's operator picked it up: a transfer reached its receiver.

    With no transfer under way and an operator on the call, the PBX moved it by itself: that
    is recorded as a blind transfer. False when there is nothing to hand over.
    """
    transfer = await open_transfer(session, call)
    if transfer is None:
        if call.operator_id is None or call.id is None:
            return False
        transfer = CallTransfer(call_ref=call.id, from_user_id=call.operator_id,
                                to_user_id=operator_id, mode=TransferMode.blind,
                                state=TransferState.ringing)
        session.add(transfer)
        await session.flush()
    await complete(session, call, transfer, receiver_id=operator_id)
    return True


async def complete(session: AsyncSession, call: Call, transfer: CallTransfer, *,
                   receiver_id: int | None) -> None:
    """The receiver has the call: the operator changes, the ticket moves, the thread says so."""
    receiver_id = receiver_id or transfer.to_user_id
    if receiver_id is None:
        raise BadInput("this transfer has no receiver yet")
    transfer.state, transfer.completed_at = TransferState.completed, utcnow()
    transfer.to_user_id = receiver_id
    call.operator_id = receiver_id
    call.offered_user_ids = [*call.offered_user_ids, receiver_id] if receiver_id not in \
        call.offered_user_ids else call.offered_user_ids
    if transfer.to_inbox_id is not None:
        call.inbox_id = transfer.to_inbox_id
    if call.routed == Routed.queue:
        call.routed = Routed.dial
    if call.ticket_id is not None:
        await tickets.hand_over(session, call.ticket_id, inbox_id=call.inbox_id,
                                assignee_id=receiver_id)
        await _thread_entry(session, call, transfer)
    await session.flush()
    events.record(session, events.CallTransferred(
        inbox_id=call.inbox_id, user_ids=[uid for uid in {transfer.from_user_id, receiver_id} if uid],
        call=announce.public(call), transfer=describe(transfer)))
    announce.publish_answered(session, call)


async def _thread_entry(session: AsyncSession, call: Call, transfer: CallTransfer) -> None:
    names = {u.id: u.name for u in await session.scalars(select(User).where(
        col(User.id).in_([transfer.from_user_id or 0, transfer.to_user_id or 0])))}
    text = (f"{MODE_JA[TransferMode(transfer.mode)]}: {names.get(transfer.from_user_id, '—')} → "
            f"{names.get(transfer.to_user_id, '—')}")
    if transfer.notes.strip():
        text += f"\n{transfer.notes}"
    assert call.ticket_id is not None
    await ticket_ingest.system_note(session, call.ticket_id, channel=Channel.phone, body=text,
                              external_id=f"transfer:{transfer.id}", at=transfer.completed_at)


def cancel(call: Call, transfer: CallTransfer) -> None:
    """Call the transfer off: the first operator keeps the call."""
    transfer.state, transfer.completed_at = TransferState.cancelled, utcnow()
    if call.operator_id is None:
        call.operator_id = transfer.from_user_id
