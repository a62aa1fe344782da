"""Per-inbox voice settings: the keypad menu's TwiML and routing, the queue's position and
callback offer, the closed-hours message, and recording with its notice."""

import xml.etree.ElementTree as ET

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.models import Role, User
from helpdesk.calls.models import Call
from helpdesk.inboxes import service as inbox_service
from helpdesk.storage.sessions import begin_write
from helpdesk.tickets.models import Ticket
from tests.support.staff import Staff
from tests.support.telephony import count, events_of, floor, online, status_params, twilio_post, voice_params
from tests.telephony.test_call_work import row

VOICE, MENU, WAIT = "/telephony/twilio/voice", "/telephony/twilio/menu", "/telephony/twilio/wait"
BASE = "https://helpdesk.example.jp"


def twiml(response: httpx.Response) -> ET.Element:
    assert response.status_code == 200, response.text
    return ET.fromstring(response.text)


async def returns_desk(db: AsyncSession, staff: Staff, *, online_now: bool = True) -> tuple[int, User]:
    await begin_write(db)
    inbox = await inbox_service.create_inbox(db, name="returns")
    await db.commit()
    assert inbox.id is not None
    op = await staff.create("returns0", inboxes=["returns"])
    if online_now:
        await online(db, op)
    return inbox.id, op


async def set_voice(tel: httpx.AsyncClient, staff: Staff, inbox: str, config: dict) -> httpx.Response:
    admin = next((u for u in staff.made if u.role == Role.admin), None)
    admin = admin or await staff.create("admin", role=Role.admin)
    await staff.session.rollback()
    found = await inbox_service.inbox_by_name(staff.session, inbox)
    await staff.session.commit()
    return await tel.put(f"/api/admin/inboxes/{found.id}/voice", json=config,
                         headers=Staff.headers(admin))


def menu_config(returns_id: int, **extra: object) -> dict:
    return {"greeting": "お電話ありがとうございます。", "menu": [
        {"digit": "1", "label": "ご注文について"},
        {"digit": "2", "label": "返品", "inbox_id": returns_id, "tag": "返品"}], **extra}


async def test_the_menu_is_spoken_in_japanese_and_key_2_rings_the_returns_inbox(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    f = await floor(db, staff)
    returns_id, returns_op = await returns_desk(db, staff)
    assert (await set_voice(tel, staff, "sales", menu_config(returns_id))).status_code == 200
    root = twiml(await twilio_post(tel, VOICE, voice_params("CA-m1", "0311112222")))
    gather = root.find("Gather")
    assert gather is not None and gather.get("action") == BASE + MENU and gather.get("numDigits") == "1"
    said = [s.text or "" for s in gather.findall("Say")]
    assert all(s.get("language") == "ja-JP" for s in gather.findall("Say"))
    assert said == ["お電話ありがとうございます。", "ご注文については1、返品は2を押してください。"]
    assert root.find("Dial") is None
    assert await events_of(db, "call.ringing") == []  # nobody rings before the caller chooses
    routed = twiml(await twilio_post(tel, MENU, {"CallSid": "CA-m1", "Digits": "2"}))
    dial = routed.find("Dial")
    assert dial is not None and [c.text for c in dial.findall("Client")] == [f"op-{returns_op.id}"]
    assert all(op.id is not None for op in f.sales_ops)
    call = (await events_of(db, "call.ringing"))[0]
    assert call.user_ids == [returns_op.id] and call.data["call"]["inbox_id"] == returns_id
    again = twiml(await twilio_post(tel, MENU, {"CallSid": "CA-m1", "Digits": "1"}))
    assert ET.tostring(again) == ET.tostring(routed)  # a retry (or a late key) changes nothing
    # The ticket the call makes is in the returns inbox and carries the option's tag.
    await twilio_post(tel, "/telephony/twilio/status", {
        "CallSid": "CA-m1-leg", "ParentCallSid": "CA-m1", "CallStatus": "in-progress",
        "To": f"client:op-{returns_op.id}"})
    answered = await row(db, Call, call.data["call"]["id"])
    ticket = await row(db, Ticket, answered.ticket_id)
    assert ticket.inbox_id == returns_id
    detail = (await tel.get(f"/api/tickets/{ticket.id}", headers=Staff.headers(returns_op))).json()
    assert detail["tags"] == ["返品"]


async def test_no_key_keeps_the_call_in_the_called_inbox(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    f = await floor(db, staff, sales_ops=1)
    returns_id, _ = await returns_desk(db, staff)
    await set_voice(tel, staff, "sales", menu_config(returns_id))
    await twilio_post(tel, VOICE, voice_params("CA-m2", "0311112222"))
    dial = twiml(await twilio_post(tel, MENU, {"CallSid": "CA-m2"})).find("Dial")
    assert dial is not None and [c.text for c in dial.findall("Client")] == [f"op-{f.sales_ops[0].id}"]


async def test_bad_voice_settings_are_refused_and_change_nothing(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    await floor(db, staff)
    for config in ({"menu": [{"digit": "1", "label": "a"}, {"digit": "1", "label": "b"}]},
                   {"menu": [{"digit": "12", "label": "a"}]},
                   {"hold_music_url": "javascript:alert(1)"},
                   {"menu": [{"digit": "3", "label": "x", "inbox_id": 999999}]},
                   {"greeting": "あ" * 501}):
        response = await set_voice(tel, staff, "sales", config)
        assert response.status_code == 422, (config, response.text)
        assert isinstance(response.json()["detail"], str | list)
    root = twiml(await twilio_post(tel, VOICE, voice_params("CA-m3", "0311112222")))
    assert root.find("Gather") is None and root.find("Dial") is not None


async def test_a_queued_caller_hears_their_place_and_pressing_1_makes_a_callback_task(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    await floor(db, staff)
    returns_id, _ = await returns_desk(db, staff, online_now=False)
    await set_voice(tel, staff, "sales", menu_config(returns_id))
    # The returns inbox's queue plays its own hold music and offers a callback.
    await set_voice(tel, staff, "returns", {"callback_offer": True,
                                            "hold_music_url": "https://cdn.example.jp/hold.mp3"})
    await twilio_post(tel, VOICE, voice_params("CA-q1", "09055556666"))
    queued = twiml(await twilio_post(tel, MENU, {"CallSid": "CA-q1", "Digits": "2"}))
    enqueue = queued.find("Enqueue")
    assert enqueue is not None and enqueue.text == "returns"
    wait = twiml(await twilio_post(tel, WAIT, {"CallSid": "CA-q1", "QueueTime": "0",
                                               "QueuePosition": "3"}))
    said = [s.text for s in wait.findall("Say")]
    assert "現在3番目でお待ちいただいております。" in said
    offer = wait.find("Gather")
    assert offer is not None and offer.get("action") == BASE + "/telephony/twilio/callback"
    assert (offer.find("Say").text or "").startswith("折り返しをご希望の方は1を")  # type: ignore[union-attr]
    assert (wait.find("Play").text or "") == "https://cdn.example.jp/hold.mp3"  # type: ignore[union-attr]
    other = twiml(await twilio_post(tel, "/telephony/twilio/callback", {"CallSid": "CA-q1", "Digits": "5"}))
    assert other.find("Hangup") is None
    taken = twiml(await twilio_post(tel, "/telephony/twilio/callback", {"CallSid": "CA-q1", "Digits": "1"}))
    assert taken.find("Hangup") is not None
    await twilio_post(tel, "/telephony/twilio/callback", {"CallSid": "CA-q1", "Digits": "1"})  # retry
    requested = await events_of(db, "call.callback_requested")
    assert len(requested) == 1
    ticket = await row(db, Ticket, requested[0].data["ticket_id"])
    assert ticket.inbox_id == returns_id and ticket.subject == "折り返し依頼"
    # The caller hangs up: still one ticket, and the call waits to be called back.
    await twilio_post(tel, "/telephony/twilio/status", status_params("CA-q1", "completed", 5))
    assert await count(db, Ticket, Ticket.inbox_id == returns_id) == 1
    call = await row(db, Call, requested[0].data["call_id"])
    assert call.ticket_id == ticket.id and call.done is False


async def test_closed_hours_message_and_recorded_calls_with_their_notice(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    await floor(db, staff)
    await set_voice(tel, staff, "sales", {"record_calls": True,
                                          "record_announcement": "この通話は録音されます。",
                                          "closed_message": "本日の営業は終了しました。"})
    root = twiml(await twilio_post(tel, VOICE, voice_params("CA-r1", "0311112222")))
    assert [s.text for s in root.findall("Say")] == ["この通話は録音されます。"]
    dial = root.find("Dial")
    assert dial is not None and dial.get("record") == "record-from-answer-dual"
    assert dial.get("recordingStatusCallback") == BASE + "/telephony/twilio/status"
    closed = {"days": [], "open": "09:00", "close": "18:00"}
    admin = next(u for u in staff.made if u.role == Role.admin)
    await tel.put("/api/admin/cti", json={"business_hours": closed}, headers=Staff.headers(admin))
    night = twiml(await twilio_post(tel, VOICE, voice_params("CA-r2", "0311112222")))
    assert [s.text for s in night.findall("Say")] == ["本日の営業は終了しました。"]
    assert night.find("Record") is not None
