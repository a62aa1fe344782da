"""Screen pop: call.ringing with the caller's Profile to the offered operators only."""

import asyncio
import json
import sys
from asyncio.subprocess import PIPE
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import websockets
from sqlalchemy.ext.asyncio import AsyncSession

from tests.support.inbound import INBOUND_HEADERS
from tests.support.server import LiveServer
from tests.support.staff import Staff
from tests.support.telephony import (
    cti_post,
    events_of,
    floor,
    signature,
    status_params,
    twilio_post,
    voice_params,
)

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


# The operator's socket and Twilio's request on raw sockets, in a process of its own; the kernel
# stamps when each answer's first bytes arrived (SO_TIMESTAMPNS), so which came first does not
# depend on when this side got to read them.
_POP_BEFORE_TWIML = r"""
import base64, json, os, select, socket, struct, sys
port, token, request = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode()
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux's number, where Python lacks it

def connect():
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    return sock

def arrival(sock):
    sock.settimeout(10)
    _, ancillary, _, _ = sock.recvmsg(65536, 1024)
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            seconds, nanoseconds = struct.unpack("ll", data[:16])
            return seconds * 10**9 + nanoseconds
    raise RuntimeError("no arrival time")

operator = connect()
key = base64.b64encode(os.urandom(16)).decode()
operator.sendall(f"GET /ws?token={token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n".encode())
head = b""
while b"\r\n\r\n" not in head:
    head += operator.recv(1)
assert head.startswith(b"HTTP/1.1 101"), head
resume, mask = b'{"type":"resume","after":0}', os.urandom(4)
operator.sendall(bytes([0x81, 0x80 | len(resume)]) + mask
                 + bytes(byte ^ mask[i % 4] for i, byte in enumerate(resume)))
print("connected", flush=True)
sys.stdin.readline()  # the test made a first call, which has ended
seen = b""
while b'"call.ended"' not in seen:  # the first call has been through to this socket
    seen += operator.recv(65536)
while select.select([operator], [], [], 0.2)[0]:
    operator.recv(65536)
twilio = connect()
twilio.sendall(request)
twiml_at = arrival(twilio)
pop_at = arrival(operator)
print(json.dumps({"popped_first": pop_at < twiml_at}))
"""


async def test_the_pop_reaches_the_operator_before_the_twiml_rings_their_phone(
        tel: httpx.AsyncClient, tel_server: LiveServer, db: AsyncSession, staff: Staff) -> None:
    f = await floor(db, staff, sales_ops=1)
    params = list(voice_params("CA-sales", "03-1234-5678").items())
    body = urlencode(params)
    request = (f"POST {VOICE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
               f"X-Twilio-Signature: {signature(VOICE, params)}\r\nContent-Length: {len(body)}\r\n"
               f"\r\n{body}")
    client = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _POP_BEFORE_TWIML, str(tel_server.port), Staff.token(f.sales_ops[0]),
        request, stdin=PIPE, stdout=PIPE, stderr=PIPE)
    try:
        assert client.stdout is not None and client.stderr is not None
        if await client.stdout.readline() != b"connected\n":
            raise AssertionError((await client.stderr.read()).decode())
        # A first call while the operator is connected: the hub reads who may see what (the
        # staff just changed), as it does once after any such change.
        await twilio_post(tel, VOICE, voice_params("CA-first", "090-1111-2222"))
        await twilio_post(tel, "/telephony/twilio/status", status_params("CA-first", "completed", 1))
        out, err = await asyncio.wait_for(client.communicate(b"go\n"), 30)
    finally:
        if client.returncode is None:
            client.kill()
    assert client.returncode == 0, err.decode()
    assert json.loads(out) == {"popped_first": True}


async def _next_of(socket: websockets.ClientConnection, kind: str, *, within: float) -> dict[str, Any]:
    async with asyncio.timeout(within):
        while True:
            frame = json.loads(await socket.recv())
            if frame.get("type") == kind:
                return dict(frame)
