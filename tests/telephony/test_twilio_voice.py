"""POST /telephony/twilio/voice: signature checks, operator choice, and the TwiML answered."""

import xml.etree.ElementTree as ET

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.models import User
from helpdesk.calls.models import Call, CallState
from helpdesk.realtime.models import Event
from tests.support.staff import Staff
from tests.support.telephony import (
    SALES_NUMBER,
    count,
    events_of,
    floor,
    online,
    signature,
    status_params,
    twilio_post,
    voice_params,
)

VOICE = "/telephony/twilio/voice"


def twiml(response: httpx.Response) -> ET.Element:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/xml")
    return ET.fromstring(response.text)


async def wrap_up_latest(tel: httpx.AsyncClient, operator: User) -> None:
    """The operator submits the wrap-up of their latest call, ending their after-call work."""
    calls = (await tel.get("/api/calls", headers=Staff.headers(operator))).json()["items"]
    mine = next(c for c in calls if c["operator_id"] == operator.id and c["state"] == "ended")
    done = await tel.post(f"/api/calls/{mine['id']}/wrapup", json={"disposition": "resolved"},
                          headers=Staff.headers(operator))
    assert done.status_code == 201, done.text


async def test_signed_call_gets_a_dial_to_the_online_operators_of_the_number(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    f = await floor(db, staff, sales_ops=3)
    await staff.create("offline", inboxes=["sales"])  # a member, but not online
    root = twiml(await twilio_post(tel, VOICE, voice_params("CA1", "09011112222")))
    dial = root.find("Dial")
    assert dial is not None and dial.get("answerOnBridge") == "true" and dial.get("timeout") == "20"
    clients = sorted(c.text or "" for c in dial.findall("Client"))
    assert clients == sorted(f"op-{op.id}" for op in f.sales_ops)
    assert all(c.get("statusCallback") == "https://helpdesk.example.jp/telephony/twilio/status"
               for c in dial.findall("Client"))
    await db.rollback()
    call = (await db.execute(Call.__table__.select())).one()
    assert call.state == CallState.ringing and call.done is False
    assert sorted(call.offered_user_ids) == sorted(op.id for op in f.sales_ops)


async def test_wrong_or_missing_signature_is_403_and_stores_nothing(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    await floor(db, staff)
    params = voice_params("CA-forged", "09011112222")
    pairs = list(params.items())
    forged = [
        await twilio_post(tel, VOICE, params, sign=None),
        await twilio_post(tel, VOICE, params, sign="bm90IGEgc2lnbmF0dXJl"),
        await twilio_post(tel, VOICE, params, sign=signature(VOICE, pairs, token="other-token")),
        await twilio_post(tel, VOICE, params, sign=signature(VOICE, pairs, base="https://evil.example")),
        await twilio_post(tel, VOICE, {**params, "From": "09099998888"}, sign=signature(VOICE, pairs)),
        await twilio_post(tel, VOICE + "?x=1", params, sign=signature(VOICE, pairs)),
    ]
    assert [r.status_code for r in forged] == [403] * len(forged)
    assert all(isinstance(r.json()["detail"], str) for r in forged)
    assert await count(db, Call) == 0
    assert await count(db, Event, Event.type != "presence.changed") == 0


async def test_duplicate_form_keys_are_part_of_the_signature(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    await floor(db, staff)
    pairs = [*voice_params("CA-dup", "09011112222").items(), ("Extra", "b"), ("Extra", "a")]
    assert (await twilio_post(tel, VOICE, pairs)).status_code == 200
    dropped = pairs[:-1]
    response = await twilio_post(tel, VOICE, dropped, sign=signature(VOICE, pairs))
    assert response.status_code == 403


async def test_twilio_webhooks_are_404_when_twilio_is_not_configured(
        http: httpx.AsyncClient, db: AsyncSession) -> None:
    for path in (VOICE, "/telephony/twilio/status", "/telephony/twilio/sms"):
        response = await twilio_post(http, path, voice_params("CA404", "0311112222"))
        assert response.status_code == 404
    assert await count(db, Call) == 0


async def test_retried_webhook_answers_the_same_and_records_one_call(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    await floor(db, staff)
    first = await twilio_post(tel, VOICE, voice_params("CA-retry", "0311112222"))
    again = await twilio_post(tel, VOICE, voice_params("CA-retry", "0311112222"))
    assert first.text == again.text
    assert await count(db, Call) == 1
    assert len(await events_of(db, "call.ringing")) == 1


async def test_nobody_free_means_the_caller_waits_in_the_inbox_queue(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    f = await floor(db, staff, sales_ops=1)
    twiml(await twilio_post(tel, VOICE, voice_params("CA-busy", "0311112222")))
    child = {"CallSid": "CA-leg", "ParentCallSid": "CA-busy", "CallStatus": "in-progress",
             "To": f"client:op-{f.sales_ops[0].id}"}
    assert (await twilio_post(tel, "/telephony/twilio/status", child)).status_code == 204
    root = twiml(await twilio_post(tel, VOICE, voice_params("CA-second", "0322223333")))
    enqueue = root.find("Enqueue")
    assert root.find("Dial") is None and enqueue is not None and enqueue.text == "sales"
    assert enqueue.get("waitUrl") == "https://helpdesk.example.jp/telephony/twilio/wait"
    wait = await twilio_post(tel, "/telephony/twilio/wait", {"CallSid": "CA-second"})
    assert twiml(wait).find("Say") is not None


async def test_round_robin_offers_the_longest_idle_operator_first(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    f = await floor(db, staff, sales_ops=2)
    first, second = f.sales_ops
    twiml(await twilio_post(tel, VOICE, voice_params("CA-a", "0311112222")))
    await twilio_post(tel, "/telephony/twilio/status", {
        "CallSid": "CA-a-leg", "ParentCallSid": "CA-a", "CallStatus": "in-progress",
        "To": f"client:op-{first.id}"})
    await twilio_post(tel, "/telephony/twilio/status", status_params("CA-a", "completed", 3,
                                                                      CallDuration="30"))
    # The first operator's after-call work ends with the wrap-up: they can be offered calls.
    await wrap_up_latest(tel, first)
    root = twiml(await twilio_post(tel, VOICE, voice_params("CA-b", "0322223333")))
    dial = root.find("Dial")
    assert dial is not None
    assert [c.text for c in dial.findall("Client")] == [f"op-{second.id}", f"op-{first.id}"]


async def test_outside_business_hours_the_caller_leaves_a_voicemail(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    await floor(db, staff)
    admin = await staff.create("admin", role="admin")  # type: ignore[arg-type]
    closed = {"business_hours": {"days": [], "open": "09:00", "close": "18:00"}}
    assert (await tel.put("/api/admin/cti", json=closed, headers=Staff.headers(admin))).status_code == 200
    root = twiml(await twilio_post(tel, VOICE, voice_params("CA-night", "0311112222")))
    record = root.find("Record")
    assert root.find("Dial") is None and record is not None
    assert record.get("recordingStatusCallback") == "https://helpdesk.example.jp/telephony/twilio/status"
    await twilio_post(tel, "/telephony/twilio/status", {
        "CallSid": "CA-night", "RecordingSid": "RE1", "RecordingStatus": "completed",
        "RecordingUrl": "https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE1"})
    await twilio_post(tel, "/telephony/twilio/status", status_params("CA-night", "completed", 2,
                                                                      CallDuration="40"))
    await db.rollback()
    call = (await db.execute(Call.__table__.select())).one()
    assert call.state == "ended" and call.voicemail is True and call.done is False
    assert call.recording_url.endswith("/Recordings/RE1")
    assert call.ticket_id is not None


async def test_blocked_caller_is_rejected_busy_without_a_screen_pop(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    await floor(db, staff)
    admin = await staff.create("admin", role="admin")  # type: ignore[arg-type]
    await tel.put("/api/admin/cti", json={"blocked_caller_ids": ["03-9999-0000"]},
                  headers=Staff.headers(admin))
    root = twiml(await twilio_post(tel, VOICE, voice_params("CA-spam", "+81399990000")))
    reject = root.find("Reject")
    assert reject is not None and reject.get("reason") == "busy"
    assert await events_of(db, "call.ringing") == []


async def test_unknown_called_number_rings_the_default_inbox(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    await floor(db, staff)
    default_op = await staff.create("frontdesk", inboxes=["default"])
    await online(db, default_op)
    root = twiml(await twilio_post(tel, VOICE, voice_params("CA-def", "0311112222", to="+81300000000")))
    dial = root.find("Dial")
    assert dial is not None and [c.text for c in dial.findall("Client")] == [f"op-{default_op.id}"]
    assert SALES_NUMBER != "+81300000000"


async def test_a_queued_caller_leaves_the_queue_for_the_operator_who_frees_up(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    f = await floor(db, staff, sales_ops=1)
    operator = f.sales_ops[0]
    twiml(await twilio_post(tel, VOICE, voice_params("CA-first", "0311112222")))
    await twilio_post(tel, "/telephony/twilio/status", {
        "CallSid": "CA-first-leg", "ParentCallSid": "CA-first", "CallStatus": "in-progress",
        "To": f"client:op-{operator.id}"})
    root = twiml(await twilio_post(tel, VOICE, voice_params("CA-waiting", "0322223333")))
    redirect = root.find("Redirect")
    assert root.find("Enqueue") is not None and redirect is not None
    assert redirect.text == "https://helpdesk.example.jp/telephony/twilio/offer"

    still_busy = twiml(await twilio_post(tel, "/telephony/twilio/wait",
                                         {"CallSid": "CA-waiting", "QueueTime": "20"}))
    assert still_busy.find("Leave") is None and still_busy.find("Pause") is not None
    assert still_busy.find("Say") is None  # the greeting is said once, not every loop

    await twilio_post(tel, "/telephony/twilio/status", status_params("CA-first", "completed", 3,
                                                                      CallDuration="40"))
    await wrap_up_latest(tel, operator)
    freed = twiml(await twilio_post(tel, "/telephony/twilio/wait",
                                    {"CallSid": "CA-waiting", "QueueTime": "25"}))
    assert freed.find("Leave") is not None

    offered = twiml(await twilio_post(tel, "/telephony/twilio/offer", {"CallSid": "CA-waiting"}))
    dial = offered.find("Dial")
    assert dial is not None and [c.text for c in dial.findall("Client")] == [f"op-{operator.id}"]
    again = twiml(await twilio_post(tel, "/telephony/twilio/offer", {"CallSid": "CA-waiting"}))
    assert ET.tostring(again) == ET.tostring(offered)  # a retried request rings no one twice
    rings = [e for e in await events_of(db, "call.ringing")
             if e.data["call"]["call_id"] == "CA-waiting"]
    assert [e.user_ids for e in rings] == [[], [operator.id]]


async def test_offer_for_an_unknown_or_ended_call_hangs_up(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    await floor(db, staff, sales_ops=0)
    unknown = twiml(await twilio_post(tel, "/telephony/twilio/offer", {"CallSid": "CA-nobody"}))
    assert unknown.find("Hangup") is not None and unknown.find("Dial") is None
    twiml(await twilio_post(tel, VOICE, voice_params("CA-gone", "0311112222")))
    await twilio_post(tel, "/telephony/twilio/status", status_params("CA-gone", "canceled", 2))
    gone = twiml(await twilio_post(tel, "/telephony/twilio/offer", {"CallSid": "CA-gone"}))
    assert gone.find("Hangup") is not None and gone.find("Enqueue") is None
    forged = await twilio_post(tel, "/telephony/twilio/offer", {"CallSid": "CA-gone"}, sign=None)
    assert forged.status_code == 403
    for path in ("/telephony/twilio/offer", "/telephony/twilio/wait"):
        nameless = await twilio_post(tel, path, {"QueueTime": "3"})
        assert nameless.status_code == 422 and "CallSid" in nameless.json()["detail"]
