"""A call and its ticket, after-call work, missed calls a day, withheld callers, call-backs."""

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.models import Role
from helpdesk.calls.models import Call, WrapupState
from helpdesk.customers.models import Customer
from helpdesk.db import utcnow
from helpdesk.storage.sessions import begin_write
from helpdesk.tickets.models import Channel, Message, Ticket
from tests.support.inbound import inbound
from tests.support.staff import Staff
from tests.support.telephony import (
    count,
    cti_post,
    events_of,
    floor,
    status_params,
    twilio_post,
    voice_params,
)
from tests.telephony.test_cti import event, new_call, the_call

VOICE = "/telephony/twilio/voice"
STATUS = "/telephony/twilio/status"


async def thread_of(db: AsyncSession, ticket_id: int) -> list[str]:
    await db.rollback()
    bodies = list(await db.scalars(select(Message.body_text).where(Message.ticket_id == ticket_id)
                                   .order_by(Message.id)))
    await db.commit()
    return bodies


async def row(db: AsyncSession, model: type, pk: int) -> Any:
    db.expunge_all()
    await db.rollback()
    found = await db.get(model, pk)
    await db.commit()  # end the read so the server's writers are not held up (SQLite)
    return found


async def test_a_call_from_a_customer_with_an_open_ticket_lands_on_that_ticket(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    f = await floor(db, staff)
    op = f.sales_ops[0]
    # The customer (+81312345678) wrote in by email to the sales inbox and the ticket is open.
    mail = await inbound(db, "m-open", email="taro@example.jp", phone="+81312345678",
                         channel=Channel.email, inbox="sales", subject="配送について")
    await cti_post(tel, new_call("t1", caller="03-1234-5678"))
    ring = [e for e in await events_of(db, "call.ringing") if e.data["call"]["call_id"] == "t1"]
    assert ring[0].data["call"]["ticket_id"] == mail.ticket_id  # the card knows the ticket
    await cti_post(tel, event("answer", "t1", user=op.name))
    answered = [e for e in await events_of(db, "call.answered")
                if e.data["call"]["call_id"] == "t1"]
    assert answered[0].data["open"] == {"ticket_id": mail.ticket_id}
    await cti_post(tel, event("hangup", "t1", cause="normalClearing"))
    call = await the_call(db, "t1")
    assert call.ticket_id == mail.ticket_id
    assert await count(db, Ticket) == 1  # no "電話 …" ticket of its own
    thread = await thread_of(db, mail.ticket_id)
    assert thread[1].startswith("着信 ") and thread[2].startswith("通話終了 通話時間 ")
    ticket = await row(db, Ticket, mail.ticket_id)
    assert ticket is not None and ticket.assignee_id == op.id


async def test_after_call_work_is_timed_and_keeps_the_operator_from_calls_meanwhile(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    f = await floor(db, staff, sales_ops=1)
    op = f.sales_ops[0]
    await twilio_post(tel, VOICE, voice_params("CA-w1", "0311112222"))
    await twilio_post(tel, STATUS, {"CallSid": "CA-w1-leg", "ParentCallSid": "CA-w1",
                                    "CallStatus": "in-progress", "To": f"client:op-{op.id}"})
    await twilio_post(tel, STATUS, status_params("CA-w1", "completed", 3, CallDuration="83"))
    started = await events_of(db, "call.acw_started")
    assert [e.data["operator_id"] for e in started] == [op.id]
    # During the after-call work the only operator is not offered the next call: it queues.
    queued = await twilio_post(tel, VOICE, voice_params("CA-w2", "0322223333"))
    assert "<Enqueue" in queued.text and "<Dial" not in queued.text
    call_id = started[0].data["call_id"]
    headers = Staff.headers(op)
    bad = await tel.post(f"/api/calls/{call_id}/wrapup", json={"disposition": "gossip"},
                         headers=headers)
    assert bad.status_code == 422 and "disposition" in bad.json()["detail"]
    done = await tel.post(f"/api/calls/{call_id}/wrapup", headers=headers, json={
        "disposition": "callback", "notes": "在庫確認後に折り返す", "status": "pending",
        "follow_up_on": "2026-12-10"})
    assert done.status_code == 201, done.text
    finished = await events_of(db, "call.wrapup_done")
    assert len(finished) == 1
    data = finished[0].data
    assert data["operator_id"] == op.id and data["disposition"] == "callback"
    assert isinstance(data["acw_seconds"], int) and data["acw_seconds"] >= 0
    assert isinstance(data["talk_seconds"], int)
    panel = (await tel.get(f"/api/calls/{call_id}/wrapup", headers=headers)).json()
    assert panel["wrapup"]["submitted_at"] and panel["dispositions"][0] == "resolved"
    call = await row(db, Call, call_id)
    assert call is not None and call.ticket_id is not None
    thread = await thread_of(db, call.ticket_id)
    assert "通話結果: 折り返し\n次回対応日: 2026-12-10\n在庫確認後に折り返す" in thread
    ticket = await row(db, Ticket, call.ticket_id)
    assert ticket is not None and ticket.status == "pending"
    assert ticket.pending_reason == "次回対応日 2026-12-10"
    # Wrapped up: offered calls again.
    offered = await twilio_post(tel, VOICE, voice_params("CA-w3", "0333334444"))
    assert f"op-{op.id}</Client>" in offered.text


async def test_after_call_work_past_the_limit_no_longer_holds_calls_back(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    f = await floor(db, staff, sales_ops=1)
    op = f.sales_ops[0]
    await twilio_post(tel, VOICE, voice_params("CA-l1", "0311112222"))
    await twilio_post(tel, STATUS, {"CallSid": "CA-l1-leg", "ParentCallSid": "CA-l1",
                                    "CallStatus": "in-progress", "To": f"client:op-{op.id}"})
    await twilio_post(tel, STATUS, status_params("CA-l1", "completed", 3, CallDuration="10"))
    await begin_write(db)
    await db.execute(update(WrapupState).values(  # the limit is 120 s
        started_at=utcnow() - timedelta(seconds=121)))
    await db.commit()
    offered = await twilio_post(tel, VOICE, voice_params("CA-l2", "0322223333"))
    assert f"op-{op.id}</Client>" in offered.text


async def test_missed_calls_share_a_ticket_per_caller_a_day_and_withheld_callers_stay_nobody(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    await floor(db, staff)
    customers_before = await count(db, Customer)
    for call_id in ("m1", "m2"):
        await cti_post(tel, new_call(call_id, caller="09012345678"))
        await cti_post(tel, event("hangup", call_id, cause="cancel"))
    first, second = await the_call(db, "m1"), await the_call(db, "m2")
    assert first.ticket_id is not None and first.ticket_id == second.ticket_id
    assert len(await thread_of(db, first.ticket_id)) == 2
    for call_id in ("a1", "a2"):
        await cti_post(tel, new_call(call_id, caller="anonymous"))
        await cti_post(tel, event("hangup", call_id, cause="cancel"))
    withheld = await the_call(db, "a1")
    assert withheld.customer_id is None and withheld.ticket_id is not None
    ticket = await row(db, Ticket, withheld.ticket_id)
    assert ticket is not None and ticket.customer_id is None
    assert await count(db, Customer) == customers_before + 1  # the 090 caller only
    assert await count(db, Customer, Customer.name == "非通知") == 0


async def test_calling_back_records_the_result_and_reaching_them_marks_it_done(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    f = await floor(db, staff)
    op = f.sales_ops[0]
    await cti_post(tel, new_call("cb1", caller="09012345678"))
    await cti_post(tel, event("hangup", "cb1", cause="cancel"))
    missed = await the_call(db, "cb1")
    headers = Staff.headers(op)
    first = await tel.post(f"/api/calls/{missed.id}/callback", headers=headers,
                           json={"result": "no_answer"})
    assert first.status_code == 200 and first.json()["done"] is False
    bad = await tel.post(f"/api/calls/{missed.id}/callback", headers=headers,
                         json={"result": "maybe"})
    assert bad.status_code == 422
    reached = await tel.post(f"/api/calls/{missed.id}/callback", headers=headers,
                             json={"result": "reached", "notes": "再配達で解決"})
    assert reached.status_code == 200 and reached.json()["done"] is True
    call = await the_call(db, "cb1")
    assert call.callback_result == "reached" and call.callback_by == op.id
    assert call.ticket_id is not None
    thread = await thread_of(db, call.ticket_id)
    assert thread[-2:] == ["折り返し: 不在（sales0）", "折り返し: つながった（sales0）\n再配達で解決"]


async def test_outbound_calls_started_from_a_ticket_belong_to_it(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    f = await floor(db, staff)
    op = f.sales_ops[0]
    admin = await staff.create("admin", role=Role.admin)
    await tel.put("/api/admin/cti", json={"default_caller_id": "+815012345678"},
                  headers=Staff.headers(admin))
    mail = await inbound(db, "m-out", email="taro@example.jp", phone="+81312345678",
                         channel=Channel.email, inbox="sales", subject="返金について")
    # Click-to-call from the ticket page.
    placed = await tel.post("/api/calls/outbound", headers=Staff.headers(op),
                            json={"to": "03-1234-5678", "ticket_id": mail.ticket_id})
    assert placed.status_code == 201 and placed.json()["ticket_id"] == mail.ticket_id
    hidden = await inbound(db, "m-hidden", email="other@example.jp", inbox="support")
    refused = await tel.post("/api/calls/outbound", headers=Staff.headers(op),
                             json={"to": "03-1234-5678", "ticket_id": hidden.ticket_id})
    assert refused.status_code == 422  # a ticket the operator may not see
    # The browser phone's own call carries the ticket it was started from.
    await twilio_post(tel, VOICE, {"CallSid": "CA-out1", "From": f"client:op-{op.id}",
                                   "To": "03-1234-5678", "TicketId": str(mail.ticket_id)})
    out = await db.scalar(select(Call).where(Call.call_id == "CA-out1"))
    assert out is not None and out.ticket_id == mail.ticket_id
    await db.commit()
    # Answered and hung up: the call's length goes into that ticket's thread.
    await twilio_post(tel, STATUS, {"CallSid": "CA-out1", "CallStatus": "in-progress",
                                    "SequenceNumber": "2", "Direction": "outbound-api"})
    await twilio_post(tel, STATUS, {"CallSid": "CA-out1", "CallStatus": "completed",
                                    "SequenceNumber": "3", "Direction": "outbound-api"})
    assert (await thread_of(db, mail.ticket_id))[-1].startswith("発信終了 通話時間 ")
