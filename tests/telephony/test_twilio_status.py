"""POST /telephony/twilio/status: retries, out-of-order delivery, missed calls, recordings."""

import asyncio

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.calls.models import Call, CallEvent
from helpdesk.tickets.models import Message, Ticket
from tests.support.staff import Staff
from tests.support.telephony import count, events_of, floor, status_params, twilio_post, voice_params

VOICE, STATUS = "/telephony/twilio/voice", "/telephony/twilio/status"


async def the_call(db: AsyncSession, sid: str) -> Call:
    db.expunge_all()
    call = await db.scalar(select(Call).where(Call.call_id == sid))
    assert call is not None
    await db.commit()  # end the read so the server's writers are not held up (SQLite)
    return call


async def test_answered_call_delivered_twice_and_out_of_order_ends_answered(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    f = await floor(db, staff)
    op = f.sales_ops[0]
    await twilio_post(tel, VOICE, voice_params("CA-ooo", "03-1234-5678"))
    answered_leg = {"CallSid": "CA-leg", "ParentCallSid": "CA-ooo", "CallStatus": "in-progress",
                    "To": f"client:op-{op.id}"}
    deliveries = [
        answered_leg,
        status_params("CA-ooo", "completed", 3, CallDuration="95"),
        status_params("CA-ooo", "ringing", 1),
        status_params("CA-ooo", "in-progress", 2),
        status_params("CA-ooo", "completed", 3, CallDuration="95"),
        answered_leg,
        status_params("CA-ooo", "initiated", 0),
    ]
    for params in deliveries:
        assert (await twilio_post(tel, STATUS, params)).status_code == 204
    call = await the_call(db, "CA-ooo")
    assert call.state == "ended" and call.done is True and call.operator_id == op.id
    assert call.answered_at is not None and call.last_sequence == 3
    assert call.cause == "completed"
    ticket = await db.get(Ticket, call.ticket_id)
    assert ticket is not None and ticket.assignee_id == op.id and ticket.customer_id == f.customer_id
    assert ticket.status == "in_progress"
    assert [e.type for e in await events_of(db, "call.answered")] == ["call.answered"]
    assert len(await events_of(db, "call.ended")) == 1
    assert await events_of(db, "call.missed") == []
    assert await count(db, Ticket, Ticket.subject == "不在着信") == 0


async def test_completion_before_any_answer_callback_still_counts_the_bridged_call(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    await floor(db, staff)
    await twilio_post(tel, VOICE, voice_params("CA-late", "03-1234-5678"))
    await twilio_post(tel, STATUS, status_params("CA-late", "completed", 3, CallDuration="60"))
    await twilio_post(tel, STATUS, status_params("CA-late", "in-progress", 2))
    call = await the_call(db, "CA-late")
    assert call.state == "ended" and call.done is True and call.answered_at is not None
    assert call.ended_at is not None
    assert 59 <= (call.ended_at - call.answered_at).total_seconds() <= 61
    assert await count(db, Ticket, Ticket.subject == "不在着信") == 0


async def test_missed_call_yields_exactly_one_ticket_whatever_is_retried(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    f = await floor(db, staff)
    await twilio_post(tel, VOICE, voice_params("CA-miss", "03-1234-5678"))
    retries = [status_params("CA-miss", "no-answer", 2)] * 3 + [status_params("CA-miss", "ringing", 1)]
    responses = await asyncio.gather(*(twilio_post(tel, STATUS, p) for p in retries))
    assert {r.status_code for r in responses} == {204}
    await twilio_post(tel, STATUS, status_params("CA-miss", "completed", 3, CallDuration="0"))
    call = await the_call(db, "CA-miss")
    call_ref = call.id
    assert call.state == "ended" and call.done is False and call.answered_at is None
    assert call.cause == "no-answer"
    missed = list(await db.scalars(select(Ticket).where(Ticket.subject == "不在着信")))
    assert len(missed) == 1 and missed[0].status == "unhandled" and missed[0].channel == "phone"
    assert missed[0].customer_id == f.customer_id and call.ticket_id == missed[0].id
    body = await db.scalar(select(Message.body_text).where(Message.ticket_id == missed[0].id))
    assert body is not None and "03-1234-5678" in body
    assert len(await events_of(db, "call.missed")) == 1
    keys = set(await db.scalars(select(CallEvent.key).where(CallEvent.call_ref == call_ref)))
    assert {"CA-miss:no-answer", "CA-miss:ringing", "CA-miss:completed"} <= keys


async def test_recording_url_is_stored_once(tel: httpx.AsyncClient, db: AsyncSession,
                                           staff: Staff) -> None:
    await floor(db, staff)
    await twilio_post(tel, VOICE, voice_params("CA-rec", "0311112222"))
    base = {"CallSid": "CA-rec", "RecordingSid": "RE9", "RecordingStatus": "completed"}
    await twilio_post(tel, STATUS, {**base, "RecordingUrl": "https://api.twilio.com/rec/RE9"})
    await twilio_post(tel, STATUS, {**base, "RecordingUrl": "https://api.twilio.com/rec/RE9"})
    call = await the_call(db, "CA-rec")
    assert call.recording_url == "https://api.twilio.com/rec/RE9"


async def test_unknown_calls_and_bad_statuses_store_nothing(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    await floor(db, staff)
    unknown = await twilio_post(tel, STATUS, status_params("CA-nobody", "completed", 1))
    assert unknown.status_code == 204
    await twilio_post(tel, VOICE, voice_params("CA-known", "0311112222"))
    bad = await twilio_post(tel, STATUS, status_params("CA-known", "exploded", 1))
    bad_seq = await twilio_post(tel, STATUS, status_params("CA-known", "ringing", 1) | {
        "SequenceNumber": "-1"})
    no_sid = await twilio_post(tel, STATUS, {"CallStatus": "completed"})
    assert (bad.status_code, bad_seq.status_code, no_sid.status_code) == (422, 422, 422)
    assert await count(db, Call) == 1
    assert await count(db, CallEvent) == 1  # only the ring
