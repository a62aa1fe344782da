"""Finding 12: malformed frames on ``/ws`` and ``/chat/ws`` get an error frame, and a client that
keeps sending them is closed with 1008 and one log line; never 1011 or a traceback per frame."""

import asyncio
import json
import logging
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from helpdesk.auth.models import Role
from tests.support.server import LiveServer
from tests.support.sockets import open_socket
from tests.support.staff import Staff

DEEP = "[" * 2000 + "]" * 2000  # under /ws's 4 KiB frame limit, past the JSON parser's depth
DEEP_CHAT = "[" * 9000 + "]" * 9000
MALFORMED = [DEEP, "not json", '{"type": "resume", "after": "5"}', '{"type": "resume", "after": 1e400}',
             json.dumps({"type": "resume", "after": 2**70}),
             json.dumps({"type": "viewing", "ticket_id": 2**70}), '"a string"', "[1, 2]"]


async def errors_for(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while len(found) < count:
            frame = json.loads(await ws.recv())
            if frame.get("type") == "error":
                found.append(frame)
    return found


async def closed_with(ws: ClientConnection) -> int | None:
    with pytest.raises(websockets.exceptions.ConnectionClosed):
        async with asyncio.timeout(10):
            while True:
                await ws.recv()
    return ws.close_code


async def test_operator_socket_answers_malformed_frames_then_closes_1008(
        channel_server: LiveServer, staff: Staff, caplog: pytest.LogCaptureFixture) -> None:
    token = Staff.token(await staff.create("sato", role=Role.operator, inboxes=["default"]))
    caplog.set_level(logging.INFO)
    async with open_socket(channel_server, token) as ws:
        for text in MALFORMED:
            await ws.send(text)
        assert len(await errors_for(ws, len(MALFORMED))) == len(MALFORMED)
        await ws.send(json.dumps({"type": "ping"}))  # still served
        async with asyncio.timeout(10):
            while json.loads(await ws.recv()).get("type") != "pong":
                pass
        for _ in range(5):
            await ws.send("still not json")
        assert await closed_with(ws) == 1008
    assert not [r for r in caplog.records if r.exc_info], "no traceback for a client's mistake"
    assert len([r for r in caplog.records if "malformed" in r.getMessage()]) == 1


async def test_chat_socket_answers_malformed_frames_then_closes_1008(
        channel_server: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    url = channel_server.url.replace("http", "ws") + "/chat/ws"
    frames = [DEEP_CHAT, "not json", '{"type": "resume", "after": "5"}',
              json.dumps({"type": "resume", "after": 2**70}), '{"type": "message", "text": "a\\u0000b"}',
              '{"type": "message", "text": "\\ud800"}', "[1]"]
    async with websockets.connect(url, proxy=None) as ws:
        for text in frames:
            await ws.send(text)
        errors = await errors_for(ws, len(frames))
        assert errors[0]["detail"] == "frames are JSON objects"
        await ws.send(b"\x00binary")
        for _ in range(4):
            await ws.send("still not json")
        assert await closed_with(ws) == 1008
    assert not [r for r in caplog.records if r.exc_info], "no traceback for a client's mistake"
    assert len([r for r in caplog.records if "malformed" in r.getMessage()]) == 1
