"""Twilio REST (against a fake Twilio on a loopback port), SMS/WhatsApp inbound, browser tokens."""

import base64
import json

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from helpdesk.auth.models import Role
from helpdesk.calls.models import Call
from helpdesk.tickets.models import Message, Ticket
from telephony import twilio_rest
from tests.support.server import make_settings
from tests.support.staff import Staff
from tests.support.telephony import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    SALES_NUMBER,
    FakeTwilio,
    count,
    floor,
    twilio_post,
)


def rest(fake: FakeTwilio, token: str = AUTH_TOKEN) -> Client:
    settings = make_settings("sqlite+aiosqlite://", twilio_account_sid=ACCOUNT_SID,
                             twilio_auth_token=token, twilio_api_base=fake.url)
    return twilio_rest.rest_client(settings)


async def test_send_sms_and_whatsapp_through_the_real_client(fake_twilio: FakeTwilio) -> None:
    fake_twilio.requests.clear()
    sid = await twilio_rest.send_sms(rest(fake_twilio), to="+819012345678", from_=SALES_NUMBER,
                                        body="ご注文ありがとうございます", status_callback="https://h/cb")
    wa = await twilio_rest.send_sms(rest(fake_twilio), to="whatsapp:+819012345678",
                                       from_="whatsapp:+14155238886", body="こんにちは")
    assert sid.startswith("SM") and wa.startswith("SM") and sid != wa
    first, second = fake_twilio.requests
    assert first["path"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert first["form"]["To"] == "+819012345678" and first["form"]["From"] == SALES_NUMBER
    assert first["form"]["Body"] == "ご注文ありがとうございます"
    assert first["form"]["StatusCallback"] == "https://h/cb" and "StatusCallback" not in second["form"]
    assert second["form"]["To"] == "whatsapp:+819012345678"


async def test_send_sms_raises_when_twilio_refuses(fake_twilio: FakeTwilio) -> None:
    fake_twilio.fail_with = 400
    try:
        with pytest.raises(TwilioRestException) as refused:
            await twilio_rest.send_sms(rest(fake_twilio), to="+1", from_=SALES_NUMBER, body="x")
        assert refused.value.status == 400
    finally:
        fake_twilio.fail_with = None
    with pytest.raises(TwilioRestException) as unauthorised:
        await twilio_rest.send_sms(rest(fake_twilio, "wrong"), to="+1", from_=SALES_NUMBER, body="x")
    assert unauthorised.value.status == 401


async def test_click_to_call_rings_the_browser_then_bridges_the_customer(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff, fake_twilio: FakeTwilio) -> None:
    f = await floor(db, staff)
    admin = await staff.create("admin", role=Role.admin)
    await tel.put("/api/admin/cti", json={"default_caller_id": SALES_NUMBER},
                  headers=Staff.headers(admin))
    op = f.sales_ops[0]
    response = await tel.post("/api/calls/outbound", headers=Staff.headers(op),
                              json={"to": "03-1234-5678"})
    assert response.status_code == 201, response.text
    call = response.json()
    assert call["call_id"].startswith("CA") and call["direction"] == "out"
    assert call["customer_id"] == f.customer_id and call["operator_id"] == op.id
    (sent,) = fake_twilio.requests
    assert sent["path"].endswith("/Calls.json")
    assert sent["form"]["To"] == f"client:op-{op.id}" and sent["form"]["From"] == SALES_NUMBER
    assert "<Number>+81312345678</Number>" in sent["form"]["Twiml"]
    assert sent["form"]["StatusCallback"] == "https://helpdesk.example.jp/telephony/twilio/status"
    assert sorted(sent["form"].getlist("StatusCallbackEvent")) == [
        "answered", "completed", "initiated", "ringing"]
    status = {"CallSid": call["call_id"], "CallStatus": "completed", "SequenceNumber": "3",
              "CallDuration": "12", "Direction": "outbound-api"}
    assert (await twilio_post(tel, "/telephony/twilio/status", status)).status_code == 204
    await db.rollback()
    stored = await db.scalar(select(Call).where(Call.call_id == call["call_id"]))
    assert stored is not None and stored.state == "ended" and stored.done is True
    await db.commit()


async def test_click_to_call_refusals(tel: httpx.AsyncClient, http: httpx.AsyncClient,
                                      db: AsyncSession, staff: Staff,
                                      fake_twilio: FakeTwilio) -> None:
    f = await floor(db, staff)
    op = Staff.headers(f.sales_ops[0])
    not_configured = await http.post("/api/calls/outbound", headers=op, json={"to": "0312345678"})
    assert not_configured.status_code == 404
    no_caller_id = await tel.post("/api/calls/outbound", headers=op, json={"to": "0312345678"})
    assert no_caller_id.status_code == 422
    admin = await staff.create("admin", role=Role.admin)
    await tel.put("/api/admin/cti", json={"default_caller_id": SALES_NUMBER},
                  headers=Staff.headers(admin))
    not_a_number = await tel.post("/api/calls/outbound", headers=op, json={"to": "hello"})
    no_customer = await tel.post("/api/calls/outbound", headers=op,
                                 json={"to": "0312345678", "customer_id": 999999})
    assert (not_a_number.status_code, no_customer.status_code) == (422, 422)
    assert await count(db, Call) == 0 and fake_twilio.requests == []
    fake_twilio.fail_with = 400
    refused = await tel.post("/api/calls/outbound", headers=op, json={"to": "0312345678"})
    assert refused.status_code == 502 and "Twilio refused" in refused.json()["detail"]
    await db.rollback()
    failed = await db.scalar(select(Call))
    assert failed is not None and failed.state == "ended" and failed.cause == "failed"
    await db.commit()


async def test_browser_phone_token_names_the_operator(tel: httpx.AsyncClient, http: httpx.AsyncClient,
                                                      db: AsyncSession, staff: Staff) -> None:
    op = await staff.create("op1")
    response = await tel.get("/api/telephony/token", headers=Staff.headers(op))
    assert response.status_code == 200
    body = response.json()
    assert body["identity"] == f"op-{op.id}"
    payload = body["token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["grants"]["identity"] == f"op-{op.id}"
    assert claims["grants"]["voice"]["incoming"] == {"allow": True}
    assert claims["grants"]["voice"]["outgoing"]["application_sid"].startswith("AP")
    assert (await tel.get("/api/telephony/token")).status_code == 401
    assert (await http.get("/api/telephony/token", headers=Staff.headers(op))).status_code == 404


async def test_sms_and_whatsapp_inbound_become_tickets_once(tel: httpx.AsyncClient, db: AsyncSession,
                                                            staff: Staff) -> None:
    f = await floor(db, staff)
    sms = {"MessageSid": "SM1", "AccountSid": ACCOUNT_SID, "From": "+81312345678",
           "To": SALES_NUMBER, "Body": "注文を変更したい", "NumMedia": "0"}
    for _ in range(2):
        response = await twilio_post(tel, "/telephony/twilio/sms", sms)
        assert response.status_code == 200 and "<Response" in response.text
    whatsapp = {"MessageSid": "SM2", "From": "whatsapp:+819011112222", "To": f"whatsapp:{SALES_NUMBER}",
                "Body": "写真です", "NumMedia": "1", "ProfileName": "佐藤",
                "MediaUrl0": "https://api.twilio.com/media/ME1"}
    assert (await twilio_post(tel, "/telephony/twilio/sms", whatsapp)).status_code == 200
    forged = await twilio_post(tel, "/telephony/twilio/sms", {**sms, "MessageSid": "SM3"}, sign="x")
    assert forged.status_code == 403
    await db.rollback()
    messages = list(await db.scalars(select(Message).order_by(Message.id)))
    assert [(m.channel, m.external_id) for m in messages] == [("sms", "SM1"), ("whatsapp", "SM2")]
    assert messages[1].body_text == "写真です\nhttps://api.twilio.com/media/ME1"
    sms_ticket = await db.get(Ticket, messages[0].ticket_id)
    assert sms_ticket is not None and sms_ticket.customer_id == f.customer_id
    await db.commit()
    assert await count(db, Ticket) == 2
