"""Frames written straight to idle sockets (``realtime.wire``), and the queue when they cannot be."""

import asyncio
import contextlib
import json
import logging
from collections.abc import Generator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy.ext.asyncio import AsyncSession
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from helpdesk.auth.models import Role
from helpdesk.realtime import log as events
from helpdesk.realtime.client import Client
from helpdesk.realtime.frames import LiveEvent
from helpdesk.realtime.hub import Hub
from helpdesk.realtime.wire import EncodedRun
from tests.realtime.conftest import FAST, ServerFactory
from tests.support.inbound import inbound_body, post_inbound
from tests.support.server import LiveServer, make_settings
from tests.support.sockets import committed_events, frames_until, open_socket, settled
from tests.support.staff import Staff
from tests.support.waiting import wait_until

pytestmark = pytest.mark.usefixtures("http")  # an emptied database for each test

# Frame lengths on each side of the wire format's length fields (125 and 65,535 bytes).
PADS = ["", "返" * 60, "品" * 30_000]


def hub_of(server: LiveServer) -> Hub:
    hub: Hub = server.app.state.hub
    return hub


async def record_runs(db: AsyncSession, count: int, *, per_commit: int = 3,
                      inbox_id: int | None = None) -> None:
    """``count`` broadcast events (or ``inbox_id``'s), committed ``per_commit`` at a time."""
    for n in range(count):
        events.record(db, type="bulk.test", data={"n": n, "pad": PADS[n % len(PADS)]},
                      inbox_id=inbox_id, broadcast=inbox_id is None)
        if n % per_commit == per_commit - 1 or n == count - 1:
            await db.commit()


async def until_seq(ws: ClientConnection, last: int) -> list[dict[str, Any]]:
    return await frames_until(ws, lambda f: f[-1:] != [] and f[-1]["seq"] >= last, wait=30)


async def delivered_in_order(sockets: list[ClientConnection], db: AsyncSession,
                             after: int) -> tuple[list[int], list[list[dict[str, Any]]]]:
    """The seqs committed after ``after``, and each socket's frames up to the last of them,
    checked to rise strictly."""
    committed = [event.seq for event in await committed_events(db, after)]
    got = [[f for f in await until_seq(ws, committed[-1]) if f["seq"] > after] for ws in sockets]
    for frames in got:
        seqs = [f["seq"] for f in frames]
        assert seqs == sorted(set(seqs)) and seqs[-1] == committed[-1]
    return committed, got


def bulk_numbers(frames: list[dict[str, Any]]) -> list[int]:
    return [f["data"]["n"] for f in frames if f["type"] == "bulk.test"]


async def test_many_sockets_get_every_frame_once_and_in_order_written_directly(
        live_servers: ServerFactory, staff: Staff, db: AsyncSession) -> None:
    live = live_servers(event_poll_seconds=0.05)
    hub = hub_of(live)
    boss = await staff.create("boss", Role.supervisor)
    operator = await staff.create("op", inboxes=["default"])
    tokens = [Staff.token(boss), Staff.token(operator)]
    async with contextlib.AsyncExitStack() as stack, httpx.AsyncClient(base_url=live.url) as http:
        sockets = [await stack.enter_async_context(open_socket(live, tokens[n % 2], max_size=None))
                   for n in range(24)]
        for ws in sockets:
            await settled(ws)
        await wait_until(lambda: len(hub.clients) == 24)
        start = (await committed_events(db))[-1].seq
        # Read from the log by the pump (another process's commits), in runs of three …
        await record_runs(db, 30)
        await record_runs(db, 3, inbox_id=10**6)  # an inbox the operator does not work
        # … and this process's own commits, fanned out as they complete, from clients at once.
        answers = await asyncio.gather(*(post_inbound(http, f"direct-{n}", inbound_body(
            f"直接 {n}", name=f"客 {n}", email=f"c{n}@example.jp")) for n in range(6)))
        assert all(answer.status_code == 201 for answer in answers)
        committed, got = await delivered_in_order(sockets, db, start)
        clients = list(hub.clients.values())

    for n, frames in enumerate(got):
        sees_all = n % 2 == 0
        assert bulk_numbers(frames) == list(range(30)) + ([0, 1, 2] if sees_all else [])
        assert [f["data"]["pad"] for f in frames if f["type"] == "bulk.test"][:3] == PADS
        assert sum(f["type"] == "message.created" for f in frames) == 6
        if sees_all:  # the supervisor gets every event, each exactly once
            assert [f["seq"] for f in frames] == committed
    assert len(clients) == 24 and all(client.sent_directly > 0 for client in clients)
    # Most frames skipped the queue (a socket's pong or ping may hold it up now and then).
    assert sum(client.sent_directly for client in clients) > 24 * 30


async def test_a_socket_that_stops_reading_falls_back_to_its_queue_and_is_dropped(
        live_servers: ServerFactory, staff: Staff, db: AsyncSession) -> None:
    live = live_servers(ws_queue_size=8, event_poll_seconds=0.05)
    hub = hub_of(live)
    token = Staff.token(await staff.create("boss", Role.supervisor))
    async with open_socket(live, token, max_size=None) as stalled, \
            open_socket(live, token, max_size=None) as reading:
        await settled(stalled)
        await settled(reading)
        await wait_until(lambda: len(hub.clients) == 2)
        both = list(hub.clients.values())
        start = (await committed_events(db))[-1].seq
        before = [client.sent_directly for client in both]
        await record_runs(db, 3)
        last = (await committed_events(db))[-1].seq
        await until_seq(stalled, last)
        await until_seq(reading, last)
        # Idle: written directly.
        assert all(c.sent_directly - n >= 3 for c, n in zip(both, before, strict=True))

        stalled.transport.pause_reading()  # its buffers fill, the server's transport pauses
        sent = 3
        while len(hub.clients) == 2:
            assert sent < 600, "the stalled socket was never dropped"
            await record_runs(db, 6)
            sent += 6
            await until_seq(reading, (await committed_events(db))[-1].seq)
        [dropped] = [client for client in both if client.id not in hub.clients]
        assert dropped.kicked is not None and dropped.kicked[0] == 4429
        assert dropped.sent_directly < sent  # it went through its queue once the socket backed up
        [kept] = hub.clients.values()
        assert kept.sent_directly > dropped.sent_directly

        stalled.transport.resume_reading()
        got: list[dict[str, Any]] = []
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(30):
                while True:
                    frame = json.loads(await stalled.recv())
                    if "seq" in frame and frame["seq"] > start:
                        got.append(frame)
    seqs = [f["seq"] for f in got]
    assert seqs == sorted(set(seqs))  # in order and nothing twice, up to where it was let go
    numbers = bulk_numbers(got)
    assert numbers == [n % 6 for n in range(len(numbers))]  # the runs of six since the pause
    assert len(numbers) < sent - 3


async def test_sockets_closing_mid_fan_out_leave_the_others_whole(
        live_servers: ServerFactory, staff: Staff, db: AsyncSession,
        caplog: pytest.LogCaptureFixture) -> None:
    live = live_servers(event_poll_seconds=0.05)
    hub = hub_of(live)
    token = Staff.token(await staff.create("boss", Role.supervisor))
    async with contextlib.AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(open_socket(live, token, max_size=None))
                   for _ in range(12)]
        for ws in sockets:
            await settled(ws)
        await wait_until(lambda: len(hub.clients) == 12)
        start = (await committed_events(db))[-1].seq
        going, staying = sockets[::2], sockets[1::2]
        with caplog.at_level(logging.ERROR):
            for round_ in range(3):
                # Gone without a close frame: the server learns it only when it writes to them.
                for ws in going:
                    ws.transport.abort()
                await record_runs(db, 6)
                await asyncio.sleep(0.05 * round_)
            _, got = await delivered_in_order(staying, db, start)
            await wait_until(lambda: len(hub.clients) == len(staying))
    assert all(bulk_numbers(frames) == list(range(6)) * 3 for frames in got)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


class OtherProtocolServer(LiveServer):
    """The app behind uvicorn's other ``websockets`` protocol: no direct writes, the ASGI send."""

    def __init__(self, database_url: str) -> None:
        super().__init__(make_settings(database_url, **{**FAST, "event_poll_seconds": 0.05}))
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="on",
                                                    ws="websockets", ws_per_message_deflate=False))


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
async def test_another_server_protocol_is_sent_to_through_asgi(
        database_url: str, staff: Staff, db: AsyncSession) -> None:
    token = Staff.token(await staff.create("boss", Role.supervisor))
    with OtherProtocolServer(database_url) as live:
        hub = hub_of(live)
        async with open_socket(live, token, max_size=None) as first, \
                open_socket(live, token, max_size=None) as second:
            await settled(first)
            await settled(second)
            await wait_until(lambda: len(hub.clients) == 2)
            clients: list[Client] = list(hub.clients.values())
            assert all(client.sink is None for client in clients)
            start = (await committed_events(db))[-1].seq
            await record_runs(db, 12)
            _, got = await delivered_in_order([first, second], db, start)
    assert all(bulk_numbers(frames) == list(range(12)) for frames in got)
    assert all(client.sent_directly == 0 for client in clients)


def parsed(data: bytes) -> list[str]:
    """The text frames in ``data``, read by the ``websockets`` library's own parser."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    texts = []
    while len(reader.buffer):
        frame = _run(Frame.parse(reader.read_exact, mask=False, max_size=None))
        assert frame.opcode is Opcode.TEXT and frame.fin
        texts.append(bytes(frame.data).decode())
    return texts


def _run(steps: Generator[None, None, Frame]) -> Frame:
    with pytest.raises(StopIteration) as done:
        while True:
            next(steps)
    frame: Frame = done.value.value
    return frame


def test_a_run_is_encoded_as_the_library_reads_frames_whatever_the_subset() -> None:
    at = datetime(2026, 12, 4, tzinfo=UTC)
    run = [LiveEvent(seq, "bulk.test", at, {"n": seq, "pad": PADS[seq % 3]}, broadcast=True)
           for seq in range(1, 6)]
    encoded = EncodedRun(run)
    # The whole run, one or two events of it, and other subsets (whose keys must not collide
    # with those: (first, last, length) of two events against every seq of three).
    for due in (run, run[:1], run[4:], [run[1], run[3]], run[1:4], [run[2], run[4]],
                [run[1], run[2], run[4]], [run[0], run[2], run[4]], run[2:5], run):
        assert parsed(encoded.frames_of(due)) == [event.text for event in due]
