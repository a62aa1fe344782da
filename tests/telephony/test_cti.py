"""POST /telephony/cti/{token}: the Zammad-compatible generic CTI protocol, rule by rule."""

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.auth.models import Role
from helpdesk.calls.models import Call
from helpdesk.calls.settings_models import CtiSettings
from helpdesk.db import utcnow
from helpdesk.realtime.models import Event
from helpdesk.storage.sessions import begin_write
from helpdesk.tickets.models import Ticket
from tests.support.staff import Staff
from tests.support.telephony import CTI_TOKEN, count, cti_post, customer_with_orders, events_of, floor

SALES = "0501234567"


def new_call(call_id: str, caller: str = "0312345678", direction: str = "in", **extra: str) -> dict[str, str]:
    return {"event": "newCall", "from": caller, "to": "05012345678", "direction": direction,
            "callId": call_id, **extra}


def event(kind: str, call_id: str, direction: str = "in", **extra: str) -> dict[str, str]:
    return {"event": kind, "from": "0312345678", "to": "05012345678", "direction": direction,
            "callId": call_id, **extra}


async def the_call(db: AsyncSession, call_id: str) -> Call:
    db.expunge_all()
    call = await db.scalar(select(Call).where(Call.provider == "cti", Call.call_id == call_id))
    assert call is not None
    await db.commit()  # end the read so the server's writers are not held up (SQLite)
    return call


async def admin_sets(tel: httpx.AsyncClient, staff: Staff, **config: object) -> None:
    admin = next((u for u in staff.made if u.role == Role.admin), None)
    admin = admin or await staff.create("admin", role=Role.admin)
    response = await tel.put("/api/admin/cti", json=config, headers=Staff.headers(admin))
    assert response.status_code == 200, response.text


async def test_tokens_directions_and_events_are_checked_and_store_nothing(
        tel: httpx.AsyncClient, http: httpx.AsyncClient, db: AsyncSession) -> None:
    assert (await cti_post(http, new_call("c0"))).status_code == 404  # CTI_TOKEN unset there
    assert (await cti_post(tel, new_call("c0"), token="wrong")).status_code == 401
    for body in (new_call("c0", direction="sideways"), {**new_call("c0"), "event": "ring"},
                 {**new_call("c0"), "event": ""}, {**new_call("c0"), "callId": ""},
                 {**new_call("c0"), "from": "0" * 65}):
        response = await cti_post(tel, body)
        assert response.status_code == 422, (body, response.text)
        assert isinstance(response.json()["detail"], str)
    bad_json = await tel.post(f"/telephony/cti/{CTI_TOKEN}", content=b"[1,2",
                              headers={"Content-Type": "application/json"})
    not_object = await cti_post(tel, ["newCall"], as_json=True)  # type: ignore[arg-type]
    assert (bad_json.status_code, not_object.status_code) == (422, 422)
    assert await count(db, Call) == 0
    assert await count(db, Event, Event.type != "presence.changed") == 0


async def test_inbound_call_is_not_done_until_answered(tel: httpx.AsyncClient, db: AsyncSession,
                                                      staff: Staff) -> None:
    f = await floor(db, staff)
    op = f.sales_ops[0]
    assert (await cti_post(tel, new_call("c1"))).json() == {}
    ringing = await the_call(db, "c1")
    assert ringing.done is False and ringing.state == "ringing"
    assert ringing.queue == "05012345678"  # queue defaults to `to` for inbound calls
    assert (await cti_post(tel, event("answer", "c1", user=op.name))).json() == {}
    answered = await the_call(db, "c1")
    assert answered.done is True and answered.state == "answered" and answered.operator_id == op.id
    assert (await cti_post(tel, event("hangup", "c1", cause="normalClearing"))).json() == {}
    ended = await the_call(db, "c1")
    assert ended.done is True and ended.state == "ended" and ended.cause == "normalClearing"
    ticket = await db.get(Ticket, ended.ticket_id)
    assert ticket is not None and ticket.assignee_id == op.id and ticket.channel == "phone"


async def test_hangup_without_answer_is_a_missed_call_and_retries_change_nothing(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    await floor(db, staff)
    await cti_post(tel, new_call("c2"))
    await cti_post(tel, new_call("c2"))  # a retried newCall is harmless
    for _ in range(3):
        assert (await cti_post(tel, event("hangup", "c2", cause="cancel"))).status_code == 200
    call = await the_call(db, "c2")
    assert call.done is False and call.state == "ended" and call.answered_at is None
    assert await count(db, Call) == 1
    assert await count(db, Ticket, Ticket.subject == "不在着信") == 1
    assert len(await events_of(db, "call.ringing")) == 1
    assert len(await events_of(db, "call.missed")) == 1


async def test_forwarded_hangup_is_not_missed(tel: httpx.AsyncClient, db: AsyncSession,
                                              staff: Staff) -> None:
    await floor(db, staff)
    await cti_post(tel, new_call("c3"))
    await cti_post(tel, event("hangup", "c3", cause="forwarded"))
    call = await the_call(db, "c3")
    assert call.done is True and call.cause == "forwarded" and call.ticket_id is None
    assert await events_of(db, "call.missed") == []


async def test_call_answered_by_voicemail_is_done_until_the_hangup(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    # Zammad's semantics: an answer, even by voicemail, counts as done until the hang-up.
    await floor(db, staff)
    await cti_post(tel, new_call("c4"))
    await cti_post(tel, event("answer", "c4", answeringNumber="voicemail"))
    answered = await the_call(db, "c4")
    assert answered.done is True and answered.voicemail is True
    await cti_post(tel, event("hangup", "c4", cause="normalClearing"))
    call = await the_call(db, "c4")
    assert call.done is False and call.voicemail is True and call.ticket_id is not None
    await cti_post(tel, new_call("c5"))
    await cti_post(tel, event("answer", "c5", user="voicemail"))
    await cti_post(tel, event("hangup", "c5", cause="normalClearing"))
    assert (await the_call(db, "c5")).done is False


async def test_answer_after_hangup_changes_nothing(tel: httpx.AsyncClient, db: AsyncSession,
                                                  staff: Staff) -> None:
    f = await floor(db, staff)
    await cti_post(tel, new_call("c6"))
    await cti_post(tel, event("hangup", "c6", cause="cancel"))
    await cti_post(tel, event("answer", "c6", user=f.sales_ops[0].name))
    call = await the_call(db, "c6")
    assert call.state == "ended" and call.done is False and call.operator_id is None
    assert await events_of(db, "call.answered") == []


async def test_blocked_caller_is_rejected_busy(tel: httpx.AsyncClient, db: AsyncSession,
                                               staff: Staff) -> None:
    await floor(db, staff)
    await admin_sets(tel, staff, blocked_caller_ids=["0399990000"])
    for _ in range(2):
        response = await cti_post(tel, new_call("c7", caller="+81 3-9999-0000"))
        assert response.json() == {"action": "reject", "reason": "busy"}
    call = await the_call(db, "c7")
    assert call.cause == "blocked" and call.done is True
    assert await events_of(db, "call.ringing") == []
    assert (await cti_post(tel, new_call("c8", caller="0399990001"))).json() == {}


async def test_settings_edits_reach_the_very_next_call_whoever_made_them(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    await floor(db, staff)
    await admin_sets(tel, staff, blocked_caller_ids=["0399990001"])
    assert (await cti_post(tel, new_call("e1", caller="0399990000"))).json() == {}  # settings read

    # An admin blocks the caller: the next call from them is turned away.
    await admin_sets(tel, staff, blocked_caller_ids=["0399990000"])
    assert (await cti_post(tel, new_call("e2", caller="0399990000"))).json() == {
        "action": "reject", "reason": "busy"}

    # Another server process saves the settings (same row, new updated_at): seen here at once.
    await begin_write(db)
    await db.execute(update(CtiSettings).where(col(CtiSettings.id) == 1)
                     .values(blocked_caller_ids=[], updated_at=utcnow()))
    await db.commit()
    assert (await cti_post(tel, new_call("e3", caller="0399990000"))).json() == {}


async def test_outbound_calls_get_caller_ids_from_the_routing_table_or_default(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    f = await floor(db, staff)
    await admin_sets(tel, staff, default_caller_id="496990009111", routing_table=[
        {"dest": "4989*", "caller_id": "498999998145", "note": "Munich"},
        {"dest": "4930*", "caller_id": "493023125877"}])
    munich = await cti_post(tel, {"event": "newCall", "direction": "out", "from": "30",
                                  "to": "4989123456", "callId": "o1", "user": f.sales_ops[0].name})
    assert munich.json() == {"action": "dial", "caller_id": "498999998145", "number": "4989123456"}
    other = await cti_post(tel, {"event": "newCall", "direction": "out", "from": "30",
                                 "to": "4940123456", "callId": "o2"}, as_json=True)
    assert other.json() == {"action": "dial", "caller_id": "496990009111", "number": "4940123456"}
    call = await the_call(db, "o1")
    assert call.direction == "out" and call.done is True and call.queue == "30"  # queue = from
    assert call.operator_id == f.sales_ops[0].id
    await admin_sets(tel, staff, routing_table=[], default_caller_id=None)
    plain = await cti_post(tel, {"event": "newCall", "direction": "out", "from": "30",
                                 "to": "4940123456", "callId": "o3"})
    assert plain.json() == {}


async def test_user_may_be_a_string_or_an_array(tel: httpx.AsyncClient, db: AsyncSession,
                                                staff: Staff) -> None:
    await floor(db, staff)
    form = [*new_call("u1").items(), ("user[]", "Alice"), ("user[]", "Bob")]
    await cti_post(tel, form)
    assert (await the_call(db, "u1")).user_label == "Alice, Bob"
    await cti_post(tel, {**new_call("u2"), "user": ["Carol", "Dave"]}, as_json=True)
    assert (await the_call(db, "u2")).user_label == "Carol, Dave"
    await cti_post(tel, {**new_call("u3"), "user": "Erin", "queue": "hotline"}, as_json=True)
    call = await the_call(db, "u3")
    assert call.user_label == "Erin" and call.queue == "hotline"
    bad = await cti_post(tel, {**new_call("u4"), "user": [1, 2]}, as_json=True)
    assert bad.status_code == 422


async def test_call_id_may_be_spelt_call_id_and_unknown_calls_are_404(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    await floor(db, staff)
    body = new_call("x")
    del body["callId"]
    assert (await cti_post(tel, {**body, "call_id": "snake"}, as_json=True)).status_code == 200
    assert (await the_call(db, "snake")).state == "ringing"
    assert (await cti_post(tel, event("answer", "never-rang"))).status_code == 404
    assert (await cti_post(tel, event("hangup", "never-rang"))).status_code == 404
    assert await count(db, Call) == 1


async def test_e164_digits_without_plus_find_their_customer(tel: httpx.AsyncClient, db: AsyncSession,
                                                            staff: Staff) -> None:
    # Zammad's generic CTI sends E.164 digits without "+": with DEFAULT_REGION=JP these were
    # read as +81 4912… and the German caller went unrecognised.
    f = await floor(db, staff)
    german = await customer_with_orders(db, phone="+4912347114711", name="Max Mustermann", orders=1)
    assert (await cti_post(tel, new_call("z1", caller="4912347114711"))).json() == {}
    assert (await the_call(db, "z1")).customer_id == german
    # Japan's country code spelt the same way still finds the Japanese customer
    assert (await cti_post(tel, new_call("z2", caller="81312345678"))).json() == {}
    assert (await the_call(db, "z2")).customer_id == f.customer_id
    # and a national number, trunk prefix first, is still national
    assert (await cti_post(tel, new_call("z3", caller="03-1234-5678"))).json() == {}
    assert (await the_call(db, "z3")).customer_id == f.customer_id
