"""Several processes on one database and Redis: events, ephemerals and presence cross between them,
and losing Redis loses nothing."""

import asyncio
import json
import time

import httpx
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.models import Role
from tests.realtime.conftest import ServerFactory
from tests.support.inbound import post_inbound
from tests.support.server import LiveServer
from tests.support.services import RedisProcess, redis_overrides
from tests.support.sockets import committed_events, frames_until, open_socket, quiet, settled
from tests.support.staff import Staff
from tests.support.waiting import wait_until


def work(frames: list[dict]) -> list[dict]:
    return [f for f in frames if f["type"] != "presence.changed"]


def hub_of(server: LiveServer):  # type: ignore[no-untyped-def]
    return server.server.config.app.state.hub


async def subscribed(*servers: LiveServer) -> None:
    """Wait until every server's bus holds its Redis subscription."""
    await wait_until(lambda: all(hub_of(server).bus.connected for server in servers))


async def test_a_message_posted_to_one_process_reaches_a_socket_on_another(
        live_servers: ServerFactory, client_for, redis_url: str, staff: Staff,
        db: AsyncSession) -> None:
    # Polling is slowed to a crawl: only Redis can carry the news in time.
    shared = {**redis_overrides(redis_url), "event_poll_seconds": 60.0}
    a, b = live_servers(**shared), live_servers(**shared)
    boss = await staff.create("boss", Role.supervisor)
    await subscribed(a, b)
    async with open_socket(b, Staff.token(boss), after=0) as ws:
        await quiet(ws, 0.2)  # its own presence event
        started = time.monotonic()
        response = await post_inbound(client_for(a), "cross-1")
        assert response.status_code == 201
        frames = work(await frames_until(ws, lambda f: len(work(f)) >= 2))
        assert time.monotonic() - started < 30  # far sooner than the next poll
    stored = [e for e in await committed_events(db) if e.type != "presence.changed"]
    assert [(f["seq"], f["type"], f["data"]) for f in frames] == [
        (e.seq, e.type, e.data) for e in stored]


async def test_viewing_crosses_processes_and_presence_is_shared(
        live_servers: ServerFactory, client_for, redis_url: str, staff: Staff) -> None:
    shared = redis_overrides(redis_url)
    a, b = live_servers(**shared), live_servers(**shared)
    ticket_id = (await post_inbound(client_for(a), "t-1")).json()["ticket_id"]
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    tanaka = await staff.create("tanaka", Role.operator, inboxes=["default"])
    sato_id = sato.id
    await subscribed(a, b)
    async with open_socket(a, Staff.token(sato), after=0) as ws_a, \
            open_socket(b, Staff.token(tanaka), after=0) as ws_b:
        await settled(ws_b)
        await ws_a.send(json.dumps({"type": "viewing", "ticket_id": ticket_id}))
        async with asyncio.timeout(10):
            while (frame := json.loads(await ws_b.recv()))["type"] != "ticket.viewing":
                pass
        assert frame["data"] == {"ticket_id": ticket_id, "user_id": sato_id, "name": "sato"}
        # sato's socket lives on A; B answers for it from the shared table
        rows = (await client_for(b).get("/api/presence", headers=Staff.headers(tanaka))).json()
        assert {r["name"]: r["status"] for r in rows} == {"sato": "online", "tanaka": "online"}


async def test_redis_going_away_and_coming_back_loses_nothing(
        live_servers: ServerFactory, client_for, redis_process: RedisProcess, staff: Staff,
        db: AsyncSession) -> None:
    shared = redis_overrides(redis_process.url)
    a, b = live_servers(**shared), live_servers(**shared)
    http_a, http_b = client_for(a), client_for(b)
    boss = await staff.create("boss", Role.supervisor)
    await subscribed(a, b)
    statuses: list[int] = []

    async def post(n: int) -> None:
        response = await post_inbound(http_a if n % 2 else http_b, f"storm-{n}")
        statuses.append(response.status_code)

    async with open_socket(a, Staff.token(boss), after=0) as ws_a, \
            open_socket(b, Staff.token(boss), after=0) as ws_b:
        for n in range(10):
            await post(n)
        redis_process.kill()
        for n in range(10, 30):
            await post(n)
        await wait_until(lambda: not any(hub_of(server).bus.connected for server in (a, b)))
        redis_process.start()  # the same port again
        await subscribed(a, b)
        for n in range(30, 40):
            await post(n)
        assert statuses == [201] * 40  # the API never noticed

        expected = [e.seq for e in await committed_events(db)]
        for ws in (ws_a, ws_b):
            frames = await frames_until(ws, lambda f: len(f) >= len(expected))
            frames += await quiet(ws, 0.5)
            assert [f["seq"] for f in frames] == [e.seq for e in await committed_events(db)]

        # And the cross-process news is back on Redis: a commit on A is announced there.
        listener = aioredis.from_url(redis_process.url)
        pubsub = listener.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(f"{shared['redis_channel']}:events")
        await post(40)
        async with asyncio.timeout(10):
            while (message := await pubsub.get_message(timeout=1.0)) is None:
                pass
        assert json.loads(message["data"])["seq"] == (await committed_events(db))[-1].seq
        await pubsub.aclose()
        await listener.aclose()


async def test_a_socket_that_drops_during_the_outage_catches_up_by_resuming(
        live_servers: ServerFactory, client_for, redis_process: RedisProcess, staff: Staff,
        db: AsyncSession) -> None:
    shared = redis_overrides(redis_process.url)
    a, b = live_servers(**shared), live_servers(**shared)
    boss = await staff.create("boss", Role.supervisor)
    token = Staff.token(boss)
    async with open_socket(b, token, after=0) as ws:
        assert (await post_inbound(client_for(a), "first")).status_code == 201
        seen = await frames_until(ws, lambda f: len(work(f)) >= 2)
    redis_process.kill()
    for n in range(5):
        assert (await post_inbound(client_for(a), f"away-{n}")).status_code == 201
    async with open_socket(b, token, after=seen[-1]["seq"]) as ws:
        missed = await committed_events(db, seen[-1]["seq"])
        frames = await frames_until(ws, lambda f: len(f) >= len(missed))
        assert [f["seq"] for f in frames] == [e.seq for e in missed]


async def test_both_processes_share_one_log(live_servers: ServerFactory, client_for,
                                            redis_url: str, staff: Staff) -> None:
    shared = redis_overrides(redis_url)
    a, b = live_servers(**shared), live_servers(**shared)
    boss = await staff.create("boss", Role.supervisor)
    async with open_socket(a, Staff.token(boss), after=0) as ws_a, \
            open_socket(b, Staff.token(boss), after=0) as ws_b:
        clients: list[httpx.AsyncClient] = [client_for(a), client_for(b)]
        await asyncio.gather(*(post_inbound(clients[n % 2], f"both-{n}") for n in range(20)))
        frames_a = work(await frames_until(ws_a, lambda f: len(work(f)) >= 40))
        frames_b = work(await frames_until(ws_b, lambda f: len(work(f)) >= 40))
    assert [f["seq"] for f in frames_a] == [f["seq"] for f in frames_b]
    assert len({f["seq"] for f in frames_a}) == 40
