"""Transfers: blind and warm, to an operator or an inbox's queue, through Twilio's REST API (the
local stand-in) and through a PBX on the generic CTI protocol."""

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.calls.models import Call, CallTransfer
from helpdesk.inboxes import service as inbox_service
from helpdesk.tickets.models import Ticket
from tests.support.staff import Staff
from tests.support.telephony import FakeTwilio, count, cti_post, events_of, floor, twilio_post, voice_params
from tests.telephony.test_call_work import row, thread_of
from tests.telephony.test_cti import event, new_call, the_call

STATUS = "/telephony/twilio/status"


async def answered_twilio_call(tel: httpx.AsyncClient, db: AsyncSession, sid: str,
                               operator_id: int) -> Call:
    await twilio_post(tel, "/telephony/twilio/voice", voice_params(sid, "03-1234-5678"))
    await twilio_post(tel, STATUS, {"CallSid": f"{sid}-leg", "ParentCallSid": sid,
                                    "CallStatus": "in-progress", "To": f"client:op-{operator_id}"})
    ringing = [e for e in await events_of(db, "call.ringing") if e.data["call"]["call_id"] == sid]
    return await row(db, Call, ringing[0].data["call"]["id"])


async def test_blind_transfer_pops_the_card_for_the_receiver_moves_the_ticket_and_the_operator(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff, fake_twilio: FakeTwilio) -> None:
    f = await floor(db, staff)
    first, second = f.sales_ops
    call = await answered_twilio_call(tel, db, "CA-t1", first.id)
    fake_twilio.requests.clear()
    response = await tel.post(f"/api/calls/{call.id}/transfer", headers=Staff.headers(first), json={
        "to_user_id": second.id, "mode": "blind", "notes": "返品希望。注文番号 EC-1001"})
    assert response.status_code == 201, response.text
    assert response.json()["state"] == "ringing"
    # Twilio was told to ring the receiver's browser instead.
    [update] = fake_twilio.requests
    assert update["path"].endswith("/Calls/CA-t1.json")
    assert f"<Client statusCallback=\"https://helpdesk.example.jp/telephony/twilio/status\" " \
           f"statusCallbackEvent=\"answered\">op-{second.id}</Client>" in update["form"]["Twiml"]
    # The card pops for the receiver alone, with the first operator's notes.
    pops = [e for e in await events_of(db, "call.ringing") if e.data.get("transfer")]
    assert [p.user_ids for p in pops] == [[second.id]]
    assert pops[0].data["transfer"]["notes"] == "返品希望。注文番号 EC-1001"
    assert pops[0].data["transfer"]["from_name"] == first.name
    assert pops[0].data["profile"]["name"] == "山田 太郎"
    # The receiver's browser answers.
    await twilio_post(tel, STATUS, {"CallSid": "CA-t1-leg2", "ParentCallSid": "CA-t1",
                                    "CallStatus": "in-progress", "To": f"client:op-{second.id}"})
    moved = await row(db, Call, call.id)
    assert moved.operator_id == second.id and moved.ticket_id == call.ticket_id
    ticket = await row(db, Ticket, call.ticket_id)
    assert ticket.assignee_id == second.id
    log = (await tel.get("/api/calls", headers=Staff.headers(second))).json()["items"]
    assert next(c for c in log if c["id"] == call.id)["operator_id"] == second.id
    assert "ブラインド転送: sales0 → sales1\n返品希望。注文番号 EC-1001" in await thread_of(db, ticket.id)
    done = await events_of(db, "call.transferred")
    assert len(done) == 1 and sorted(done[0].user_ids or []) == sorted([first.id, second.id])


async def test_transfer_to_an_inbox_queues_the_caller_there_and_the_ticket_follows(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff, fake_twilio: FakeTwilio) -> None:
    f = await floor(db, staff)
    first = f.sales_ops[0]
    call = await answered_twilio_call(tel, db, "CA-t2", first.id)
    support_inbox = f.other_op  # the support inbox's only operator
    await db.rollback()
    target = await inbox_service.inbox_by_name(db, "support")
    await db.commit()
    fake_twilio.requests.clear()
    response = await tel.post(f"/api/calls/{call.id}/transfer", headers=Staff.headers(first),
                              json={"to_inbox_id": target.id, "notes": "請求書の件"})
    assert response.status_code == 201, response.text
    twiml = fake_twilio.requests[0]["form"]["Twiml"]
    assert ">support</Enqueue>" in twiml and "/telephony/twilio/offer</Redirect>" in twiml
    pops = [e for e in await events_of(db, "call.ringing") if e.data.get("transfer")]
    assert [p.user_ids for p in pops] == [[support_inbox.id]]
    offered = await twilio_post(tel, "/telephony/twilio/offer", {"CallSid": "CA-t2"})
    assert f"op-{support_inbox.id}</Client>" in offered.text
    await twilio_post(tel, STATUS, {"CallSid": "CA-t2-leg2", "ParentCallSid": "CA-t2",
                                    "CallStatus": "in-progress", "To": f"client:op-{support_inbox.id}"})
    moved = await row(db, Call, call.id)
    assert moved.operator_id == support_inbox.id and moved.inbox_id == target.id
    ticket = await row(db, Ticket, call.ticket_id)
    assert ticket.inbox_id == target.id and ticket.assignee_id == support_inbox.id


async def test_warm_transfer_consults_in_a_conference_then_hands_the_caller_over(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff, fake_twilio: FakeTwilio) -> None:
    f = await floor(db, staff)
    first, second = f.sales_ops
    call = await answered_twilio_call(tel, db, "CA-t3", first.id)
    fake_twilio.requests.clear()
    response = await tel.post(f"/api/calls/{call.id}/transfer", headers=Staff.headers(first),
                              json={"to_user_id": second.id, "mode": "warm", "notes": "相談させて"})
    assert response.status_code == 201 and response.json()["state"] == "consulting"
    hold, consult_a, consult_b = fake_twilio.requests
    assert hold["path"].endswith("/Calls/CA-t3.json")
    assert f">call-{call.id}</Conference>" in hold["form"]["Twiml"]
    assert 'startConferenceOnEnter="false"' in hold["form"]["Twiml"]
    assert [r["form"]["To"] for r in (consult_a, consult_b)] == [f"client:op-{first.id}",
                                                                  f"client:op-{second.id}"]
    assert all(">consult-" in r["form"]["Twiml"] for r in (consult_a, consult_b))
    assert (await row(db, Call, call.id)).operator_id == first.id  # still theirs while consulting
    fake_twilio.requests.clear()
    done = await tel.post(f"/api/calls/{call.id}/transfer/complete", headers=Staff.headers(first))
    assert done.status_code == 200 and done.json()["operator_id"] == second.id
    join, leave = fake_twilio.requests
    assert f">call-{call.id}</Conference>" in join["form"]["Twiml"]
    assert leave["form"]["Status"] == "completed"
    ticket = await row(db, Ticket, call.ticket_id)
    assert ticket.assignee_id == second.id
    again = await tel.post(f"/api/calls/{call.id}/transfer/complete", headers=Staff.headers(first))
    assert again.status_code == 409


async def test_transfers_refused_store_nothing(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff, fake_twilio: FakeTwilio) -> None:
    f = await floor(db, staff)
    first, second = f.sales_ops
    call = await answered_twilio_call(tel, db, "CA-t4", first.id)
    url = f"/api/calls/{call.id}/transfer"
    by_other = await tel.post(url, headers=Staff.headers(second), json={"to_user_id": first.id})
    assert by_other.status_code == 403
    to_self = await tel.post(url, headers=Staff.headers(first), json={"to_user_id": first.id})
    both = await tel.post(url, headers=Staff.headers(first),
                          json={"to_user_id": second.id, "to_inbox_id": 1})
    assert (to_self.status_code, both.status_code) == (422, 422)
    fake_twilio.fail_with = 404
    refused = await tel.post(url, headers=Staff.headers(first), json={"to_user_id": second.id})
    assert refused.status_code == 502 and "Twilio" in refused.json()["detail"]
    assert await count(db, CallTransfer) == 0
    assert [e for e in await events_of(db, "call.ringing") if e.data.get("transfer")] == []


async def test_a_pbx_transfer_changes_the_operator_and_moves_the_ticket(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    f = await floor(db, staff)
    first, second = f.sales_ops
    await cti_post(tel, new_call("x1"))
    await cti_post(tel, event("answer", "x1", user=first.name))
    # A warm transfer announced from the page: the receiver's card pops with the notes.
    ringing = await the_call(db, "x1")
    started = await tel.post(f"/api/calls/{ringing.id}/transfer", headers=Staff.headers(first),
                             json={"to_user_id": second.id, "mode": "warm", "notes": "配送の件"})
    assert started.status_code == 201
    pops = [e for e in await events_of(db, "call.ringing") if e.data.get("transfer")]
    assert pops[0].user_ids == [second.id] and pops[0].data["transfer"]["notes"] == "配送の件"
    # The PBX moves the call and says the receiver answered.
    await cti_post(tel, event("answer", "x1", user=second.name))
    await cti_post(tel, event("answer", "x1", user=second.name))  # a retry
    moved = await the_call(db, "x1")
    assert moved.operator_id == second.id
    ticket = await row(db, Ticket, moved.ticket_id)
    assert ticket.assignee_id == second.id
    assert len(await events_of(db, "call.transferred")) == 1
    assert "ウォーム転送: sales0 → sales1\n配送の件" in await thread_of(db, ticket.id)
