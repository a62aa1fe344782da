"""Screen pop: call.ringing with the caller's Profile to the offered operators only."""

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import INBOUND_HEADERS, LiveServer, Staff
from tests.telephony.fixtures import cti_post, events_of, floor, twilio_post, voice_params

VOICE = "/telephony/twilio/voice"
SPELLINGS = ["03-1234-5678", "０３－１２３４－５６７８", "+81312345678", "(03) 1234-5678",
             "+81 (0)3 1234 5678", "0312345678", "03ー1234ー5678"]


@pytest.mark.parametrize("protocol", ["twilio", "cti"])
async def test_known_caller_in_any_spelling_pops_their_latest_orders_to_the_offered_operators(
        protocol: str, tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    f = await floor(db, staff, sales_ops=1)
    op = f.sales_ops[0]
    for i, spelling in enumerate(SPELLINGS):
        if protocol == "twilio":
            response = await twilio_post(tel, VOICE, voice_params(f"CA-{i}", spelling))
        else:
            response = await cti_post(tel, {"event": "newCall", "from": spelling, "to": "050-1234-5678",
                                            "direction": "in", "callId": f"pbx-{i}"})
        assert response.status_code == 200, response.text
    rings = await events_of(db, "call.ringing")
    assert len(rings) == len(SPELLINGS)
    for ring in rings:
        assert ring.user_ids == [op.id]  # the offered operator; supervisors see every event
        assert f.other_op.id not in (ring.user_ids or []) and ring.inbox_id is None
        assert ring.broadcast is False
        data = ring.data
        assert data["caller"] == {"number": "+81312345678", "display": "03-1234-5678",
                                  "withheld": False, "known": True, "customer_id": f.customer_id,
                                  "name": "山田 太郎"}
        profile = data["profile"]
        assert profile["id"] == f.customer_id and profile["orders_count"] == 12
        assert [o["number"] for o in profile["orders"]][:2] == [f"{f.customer_id}-0011",
                                                                 f"{f.customer_id}-0010"]
        assert len(profile["orders"]) == 10 and profile["orders"][0]["items"][0]["sku"] == "SKU-11"
        assert data["call"]["customer_id"] == f.customer_id and data["call"]["state"] == "ringing"
        assert "from" in data["call"] and "talk_seconds" in data["call"]


async def test_unknown_and_withheld_callers_get_new_customer_cards(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    await floor(db, staff)
    await twilio_post(tel, VOICE, voice_params("CA-new", "09087654321"))
    await twilio_post(tel, VOICE, voice_params("CA-anon", "anonymous"))
    await cti_post(tel, {"event": "newCall", "from": "", "to": "05012345678", "direction": "in",
                         "callId": "pbx-anon"})
    new, anon, pbx_anon = [e.data for e in await events_of(db, "call.ringing")]
    assert new["profile"] is None
    assert new["caller"] == {"number": "+819087654321", "display": "090-8765-4321", "withheld": False,
                             "known": False, "customer_id": None, "name": None}
    for card in (anon["caller"], pbx_anon["caller"]):
        assert card["withheld"] is True and card["display"] == "非通知" and card["number"] is None


async def test_operator_in_another_inbox_gets_no_pop(tel: httpx.AsyncClient, db: AsyncSession,
                                                    staff: Staff) -> None:
    f = await floor(db, staff, sales_ops=2)
    await twilio_post(tel, VOICE, voice_params("CA-sales", "03-1234-5678"))
    await twilio_post(tel, VOICE, voice_params("CA-support", "03-1234-5678", to="0120-000-111"))
    sales, support = await events_of(db, "call.ringing")
    assert sorted(sales.user_ids or []) == sorted(op.id for op in f.sales_ops)
    assert support.user_ids == [f.other_op.id]
    # The profile in the support pop lists only support's open tickets; none exist yet.
    assert support.data["profile"]["open_tickets"] == []


async def test_answer_tells_the_operator_to_open_the_customers_open_ticket(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    f = await floor(db, staff)
    op = f.sales_ops[1]
    inbound = {"channel": "api", "from": {"phone": "03-1234-5678"}, "body": "配送の件", "inbox": "sales"}
    created = await tel.post("/api/inbound", json=inbound,
                             headers={**INBOUND_HEADERS, "Idempotency-Key": "k1"})
    ticket_id = created.json()["ticket_id"]
    await cti_post(tel, {"event": "newCall", "from": "03-1234-5678", "to": "05012345678",
                         "direction": "in", "callId": "pop-1"})
    await cti_post(tel, {"event": "answer", "from": "03-1234-5678", "to": "05012345678",
                         "direction": "in", "callId": "pop-1", "answeringNumber": op.email})
    (answered,) = await events_of(db, "call.answered")
    assert answered.data["operator_id"] == op.id and op.id in (answered.user_ids or [])
    assert answered.data["open"] == {"ticket_id": ticket_id}
    detail = (await tel.get(f"/api/tickets/{ticket_id}", headers=Staff.headers(op))).json()
    assert detail["assignee_id"] == op.id and detail["status"] == "in_progress"
    assert detail["messages"][-1]["channel"] == "phone"
    profile = (await tel.get(f"/api/customers/{f.customer_id}", headers=Staff.headers(op))).json()
    assert [c["call_id"] for c in profile["recent_calls"]] == ["pop-1"]
    assert profile["recent_calls"][0]["state"] == "answered"


async def test_ringing_reaches_the_offered_operators_socket_and_no_one_elses(
        tel: httpx.AsyncClient, tel_server: LiveServer, db: AsyncSession, staff: Staff) -> None:
    f = await floor(db, staff, sales_ops=1)
    ws_url = tel_server.url.replace("http", "ws") + "/ws?token="
    async with websockets.connect(ws_url + Staff.token(f.sales_ops[0])) as mine, \
            websockets.connect(ws_url + Staff.token(f.other_op)) as theirs:
        for socket in (mine, theirs):  # live from the start of this test's log, no gap
            await socket.send(json.dumps({"type": "resume", "after": 0}))
        await twilio_post(tel, VOICE, voice_params("CA-ws", "03-1234-5678"))
        frame = await _next_of(mine, "call.ringing", within=5)
        assert frame["data"]["profile"]["id"] == f.customer_id
        with pytest.raises(TimeoutError):
            await _next_of(theirs, "call.ringing", within=0.5)


async def _next_of(socket: websockets.ClientConnection, kind: str, *, within: float) -> dict[str, Any]:
    async with asyncio.timeout(within):
        while True:
            frame = json.loads(await socket.recv())
            if frame.get("type") == kind:
                return dict(frame)
