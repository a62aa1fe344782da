"""/ws on one process: handshake auth, frame shape, resume without gaps or duplicates, hostile input."""

import asyncio
import json
import socket
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from helpdesk.auth.models import Role
from helpdesk.realtime import log as events
from tests.realtime.conftest import ServerFactory, prune_all_but_the_newest
from tests.support.inbound import post_inbound
from tests.support.server import LiveServer
from tests.support.sockets import (
    committed_events,
    frames_until,
    next_frame,
    open_socket,
    quiet,
    settled,
    ws_url,
)
from tests.support.staff import Staff
from tests.support.waiting import wait_until

pytestmark = pytest.mark.usefixtures("http")  # an emptied database for each test


async def closed_code(ws) -> int:  # type: ignore[no-untyped-def]
    """The close code, failing if any frame arrives first."""
    with pytest.raises(ConnectionClosed) as closed:
        frame = await asyncio.wait_for(ws.recv(), 10)
        pytest.fail(f"a frame arrived before the close: {frame}")
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


async def test_handshake_refuses_missing_bad_or_foreign_credentials(server: LiveServer,
                                                                     staff: Staff) -> None:
    user = await staff.create("sato", Role.operator, inboxes=["default"])
    cookie = Staff.cookie(user)
    attempts = [
        open_socket(server),
        open_socket(server, "not-a-token"),
        open_socket(server, cookie),  # a session cookie is not a bearer token
        open_socket(server, headers={"Cookie": "helpdesk_session=forged"}),
        # a page on another site must not ride the operator's cookie
        open_socket(server, headers={"Cookie": f"helpdesk_session={cookie}"},
                    origin="http://evil.example"),
    ]
    for attempt in attempts:
        async with attempt as ws:
            assert await closed_code(ws) == 4401

    for good in (open_socket(server, Staff.token(user)),
                 open_socket(server, headers={"Cookie": f"helpdesk_session={cookie}"},
                             origin=f"http://127.0.0.1:{server.port}"),
                 open_socket(server, headers={"Authorization": f"Bearer {Staff.token(user)}"})):
        async with good as ws:
            await ws.send(json.dumps({"type": "ping"}))
            assert (await next_frame(ws))["type"] == "pong"


async def test_disabled_account_is_refused(server: LiveServer, staff: Staff, db: AsyncSession) -> None:
    user = await staff.create("gone", Role.operator, inboxes=["default"])
    user.is_active = False
    await db.commit()
    async with open_socket(server, Staff.token(user)) as ws:
        assert await closed_code(ws) == 4401


async def test_frames_have_the_contract_shape_and_rising_seqs(server: LiveServer, staff: Staff,
                                                              http: httpx.AsyncClient) -> None:
    boss = await staff.create("boss", Role.supervisor)
    async with open_socket(server, Staff.token(boss)) as ws:
        await ws.send(json.dumps({"type": "resume", "after": 0}))
        for n in range(3):
            assert (await post_inbound(http, f"shape-{n}")).status_code == 201
        frames = await frames_until(ws, lambda f: sum(x["type"] == "message.created" for x in f) == 3)
    for frame in frames:
        assert set(frame) == {"seq", "type", "at", "data"}
        assert isinstance(frame["seq"], int) and frame["at"].endswith("+00:00")
    seqs = [f["seq"] for f in frames]
    assert seqs == sorted(set(seqs))
    types = [f["type"] for f in frames if f["type"] != "presence.changed"]
    assert types == ["ticket.created", "message.created"] + ["ticket.updated", "message.created"] * 2


def without_presence(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in frames if f["type"] != "presence.changed"]


async def test_resume_replays_exactly_the_missed_fifty_then_goes_live(
        server: LiveServer, staff: Staff, http: httpx.AsyncClient, db: AsyncSession) -> None:
    boss = await staff.create("boss", Role.supervisor)
    token = Staff.token(boss)
    async with open_socket(server, token) as ws:
        await ws.send(json.dumps({"type": "resume", "after": 0}))
        assert (await post_inbound(http, "before")).status_code == 201
        seen = await frames_until(ws, lambda f: any(x["type"] == "message.created" for x in f))
    last = seen[-1]["seq"]

    for n in range(25):  # each continues the same ticket: ticket.updated + message.created
        assert (await post_inbound(http, f"while-away-{n}")).status_code == 201
    # The first socket's going offline may be logged in this window too, depending on timing:
    # presence is not what this test is about, so it is left out on both sides.
    missed = [e for e in await committed_events(db, last) if e.type != "presence.changed"]
    assert len(missed) == 50

    async with open_socket(server, token) as ws:
        await ws.send(json.dumps({"type": "resume", "after": last}))
        replayed = without_presence(await frames_until(ws, lambda f: len(without_presence(f)) >= 50))
        assert [f["seq"] for f in replayed] == [e.seq for e in missed]
        assert [f["type"] for f in replayed] == [e.type for e in missed]
        assert [f["data"] for f in replayed] == [e.data for e in missed]
        assert (await post_inbound(http, "after-resume")).status_code == 201
        live = without_presence(await frames_until(ws, lambda f: len(without_presence(f)) >= 2))
        assert [f["type"] for f in live] == ["ticket.updated", "message.created"]
        assert min(f["seq"] for f in live) > missed[-1].seq
        assert await quiet(ws, 0.5) == []  # nothing twice


async def test_resume_while_events_keep_coming_has_no_gap_and_no_duplicate(
        server: LiveServer, staff: Staff, http: httpx.AsyncClient, db: AsyncSession) -> None:
    boss = await staff.create("boss", Role.supervisor)
    for n in range(10):
        assert (await post_inbound(http, f"early-{n}")).status_code == 201

    posting = asyncio.Event()

    async def keep_posting() -> None:
        for n in range(20):
            assert (await post_inbound(http, f"racing-{n}")).status_code == 201
            posting.set()

    poster = asyncio.create_task(keep_posting())
    await posting.wait()  # the socket opens while the posts are under way
    async with open_socket(server, Staff.token(boss), after=5) as ws:  # resume on the URL
        await poster
        total = (await committed_events(db))[-1].seq
        frames = await frames_until(ws, lambda f: bool(f) and f[-1]["seq"] >= total)
        frames += await quiet(ws, 0.5)  # (its own presence event may commit after the posts)
        assert [f["seq"] for f in frames] == [e.seq for e in await committed_events(db, 5)]


async def test_resume_from_a_seq_the_log_never_had_starts_at_the_present(
        server: LiveServer, staff: Staff, http: httpx.AsyncClient, db: AsyncSession) -> None:
    token = Staff.token(await staff.create("boss", Role.supervisor))
    assert (await post_inbound(http, "one")).status_code == 201
    before = (await committed_events(db))[-1].seq
    async with open_socket(server, token) as ws:
        await ws.send(json.dumps({"type": "resume", "after": 10**9}))  # e.g. from an older database
        early = await settled(ws)  # the resume is handled
        assert (await post_inbound(http, "two")).status_code == 201
        frames = early + await frames_until(
            ws, lambda f: any(x["type"] == "message.created" for x in f))
        # Nothing from before the socket opened; everything since, its own arrival included.
        assert [f["seq"] for f in frames] == [e.seq for e in await committed_events(db, before)]
        assert frames[0]["type"] == "presence.changed"


async def test_a_made_up_seq_on_the_url_loses_nothing_committed_while_the_socket_registers(
        server: LiveServer, staff: Staff, http: httpx.AsyncClient, db: AsyncSession) -> None:
    """The socket's own presence event commits after it joined the hub and before it replays.

    Replaying from the log's end at that moment used to mark that event as sent while it still
    sat in the socket's queue, so the socket never got it.
    """
    boss = await staff.create("boss", Role.supervisor)
    boss_id, token = boss.id, Staff.token(boss)
    assert (await post_inbound(http, "one")).status_code == 201
    before = (await committed_events(db))[-1].seq
    async with open_socket(server, token, after=10**9) as ws:
        early = await settled(ws)  # registered, and the replay from the URL's seq is done
        assert (await post_inbound(http, "two")).status_code == 201
        frames = early + await frames_until(
            ws, lambda f: any(x["type"] == "message.created" for x in f))
        committed = await committed_events(db, before)
        assert committed[0].type == "presence.changed" and committed[0].data["user_id"] == boss_id
        assert [f["seq"] for f in frames] == [e.seq for e in committed]


async def test_hostile_frames_get_errors_and_the_socket_stays_usable(server: LiveServer,
                                                                    staff: Staff) -> None:
    user = await staff.create("sato", Role.operator, inboxes=["default"])
    async with open_socket(server, Staff.token(user)) as ws:
        for bad in ("not json", "[1, 2]", json.dumps({"type": "launch"}),
                    json.dumps({"type": "resume", "after": "x"}),
                    json.dumps({"type": "viewing", "ticket_id": "abc"}),
                    json.dumps({"type": "typing", "ticket_id": 999999}),
                    json.dumps({"type": "presence", "status": "asleep"})):
            await ws.send(bad)
            frame = await next_frame(ws)
            assert frame["type"] == "error" and "seq" not in frame, bad
        await ws.send(b"\x00\x01")
        assert (await next_frame(ws))["type"] == "error"
        await ws.send(json.dumps({"type": "ping"}))
        assert (await next_frame(ws))["type"] == "pong"
        await ws.send(json.dumps({"type": "ping", "pad": "x" * 10_000}))
        assert await closed_code(ws) == 1009


async def test_a_flood_of_frames_is_cut_off(server: LiveServer, staff: Staff) -> None:
    user = await staff.create("sato", Role.operator, inboxes=["default"])
    async with open_socket(server, Staff.token(user)) as ws:
        for _ in range(200):
            try:
                await ws.send(json.dumps({"type": "pong"}))
            except ConnectionClosed:
                break
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_ping_keeps_alive_and_silence_is_closed(live_servers: ServerFactory,
                                                      staff: Staff) -> None:
    live = live_servers(ws_ping_seconds=0.2)
    user = await staff.create("sato", Role.operator, inboxes=["default"])
    async with open_socket(live, Staff.token(user)) as talker, \
            open_socket(live, Staff.token(user)) as silent:
        pings = 0
        async with asyncio.timeout(10):
            while pings < 6:  # 1.2 s, well past the 0.5 s a silent socket is given
                frame = json.loads(await talker.recv())
                if frame["type"] == "ping":
                    pings += 1
                    await talker.send(json.dumps({"type": "pong"}))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(silent.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4408
        await talker.send(json.dumps({"type": "ping"}))
        assert (await next_frame(talker))["type"] == "pong"


async def test_connection_lifetime_is_capped(live_servers: ServerFactory, staff: Staff) -> None:
    live = live_servers(ws_max_lifetime_seconds=0.5)
    user = await staff.create("sato", Role.operator, inboxes=["default"])
    async with open_socket(live, Staff.token(user)) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000



async def test_a_slow_socket_is_dropped_without_holding_up_the_others(
        live_servers: ServerFactory, staff: Staff, db: AsyncSession) -> None:
    live = live_servers(ws_queue_size=16, event_poll_seconds=0.05)
    hub = live.server.config.app.state.hub
    boss = await staff.create("boss", Role.supervisor)
    token = Staff.token(boss)
    # A reader that stops reading: a tiny receive window, then no reads at all.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", live.port))
    slow = await connect(ws_url(live, token, after=0), sock=sock, compression=None, proxy=None,
                         max_size=None, max_queue=1)
    try:
        async with open_socket(live, token, after=0, max_size=None) as fast:
            await wait_until(lambda: len(hub.clients) == 2)
            slow.transport.pause_reading()
            blob = "重" * 40_000  # ~120 KB a frame: the stalled socket's buffers fill in megabytes
            sent = 0
            while len(hub.clients) == 2:  # until the stalled one is let go
                assert sent < 400, "the stalled socket was never dropped"
                for _ in range(4):
                    events.record(db, type="bulk.test", data={"n": sent, "blob": blob}, broadcast=True)
                    sent += 1
                await db.commit()
                # the reading socket keeps up all along: it is never more than 4 frames behind
                frames = await frames_until(fast, lambda f, last=sent - 1: f[-1:] != []
                                            and f[-1]["type"] == "bulk.test"
                                            and f[-1]["data"]["n"] == last, wait=30)
                assert [f["data"]["n"] for f in frames if f["type"] == "bulk.test"] == list(
                    range(sent - 4, sent))

        slow.transport.resume_reading()
        got: list[dict] = []
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(30):
                while True:
                    frame = json.loads(await slow.recv())
                    if "seq" in frame:
                        got.append(frame)
    finally:
        await slow.close()
    assert sum(f["type"] == "bulk.test" for f in got) < sent  # it fell behind and was let go
    async with open_socket(live, token, after=got[-1]["seq"] if got else 0, max_size=None) as again:
        rest = await frames_until(again, lambda f: f[-1:] != [] and f[-1]["type"] == "bulk.test"
                                  and f[-1]["data"]["n"] == sent - 1, wait=30)
    resumed = [f["data"]["n"] for f in got + rest if f["type"] == "bulk.test"]
    assert resumed == list(range(sent))  # and on resume it gets the rest, nothing twice


async def test_resume_from_a_pruned_seq_is_told_to_resync_and_goes_on_without_a_gap(
        server: LiveServer, staff: Staff, http: httpx.AsyncClient, db: AsyncSession,
        database_url: str, engine: AsyncEngine) -> None:
    token = Staff.token(await staff.create("boss", Role.supervisor))
    for n in range(3):
        assert (await post_inbound(http, f"old-{n}")).status_code == 201
    first = (await committed_events(db))[0].seq
    pruned = await prune_all_but_the_newest(database_url, engine)
    assert pruned > first and [e.seq for e in await committed_events(db)] == [pruned + 1]

    async with open_socket(server, token) as ws:
        await ws.send(json.dumps({"type": "resume", "after": first}))
        resync = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert resync["type"] == "resync" and "seq" not in resync
        after = resync["data"]["after"]
        assert after >= pruned
        assert (await post_inbound(http, "new")).status_code == 201
        total = (await committed_events(db))[-1].seq
        frames = await frames_until(ws, lambda f: bool(f) and f[-1]["seq"] >= total)
        frames += await quiet(ws, 0.5)
        assert [f["seq"] for f in frames] == [e.seq for e in await committed_events(db, after)]

    # From the watermark on, everything is still there: a plain replay, no resync.
    async with open_socket(server, token, after=pruned) as ws:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert frame["seq"] == pruned + 1


async def test_frames_go_uncompressed_even_when_the_browser_offers_deflate(
        server: LiveServer, staff: Staff) -> None:
    # Browsers always offer permessage-deflate; the server declines it (see SERVER_OPTIONS).
    boss = await staff.create("boss", Role.supervisor)
    async with connect(ws_url(server, Staff.token(boss)), compression="deflate", proxy=None) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        await asyncio.wait_for(ws.recv(), 10)
        assert ws.protocol.extensions == []
        assert "permessage-deflate" not in (ws.response.headers.get("Sec-WebSocket-Extensions") or "")
