"""Finding 3: the public chat and the webhooks are rate limited per visitor, per address and per
source (429 with Retry-After; a socket gets 1008), in this process or, with Redis, across all."""

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from helpdesk import limits
from helpdesk.tickets.models import Message
from tests.support.database import count
from tests.support.server import LiveServer, make_settings

DAY = 86400  # windows this long: a test never straddles two


@pytest.fixture(scope="module")
def limited(database_url: str) -> Iterator[LiveServer]:
    settings = make_settings(database_url, rate_chat_connect=f"3/{DAY}",
                             rate_chat_message_visitor=f"5/{DAY}", rate_chat_message_address=f"8/{DAY}",
                             rate_webhook=f"5/{DAY}", line_channel_secret="s")
    with LiveServer(settings) as live:
        yield live


def chat_url(server: LiveServer) -> str:
    return server.url.replace("http", "ws") + "/chat/ws"


async def frames_of(ws: Any, kind: str, wanted: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while len(found) < wanted:
            frame = json.loads(await ws.recv())
            if frame["type"] == kind:
                found.append(frame)
    return found


async def test_chat_messages_are_limited_per_visitor_and_per_address(
        limited: LiveServer, engine: AsyncEngine, db: AsyncSession) -> None:
    async with websockets.connect(chat_url(limited), proxy=None) as first:
        for n in range(8):
            await first.send(json.dumps({"type": "message", "text": f"spam {n}", "client_id": f"a{n}"}))
        refused = await frames_of(first, "error", 3)
    assert all(f["retry_after"] > 0 and "too many messages" in f["detail"] for f in refused)
    assert await count(db, Message) == 5  # the visitor's 5
    async with websockets.connect(chat_url(limited), proxy=None) as second:
        for n in range(5):
            await second.send(json.dumps({"type": "message", "text": f"more {n}", "client_id": f"b{n}"}))
        await frames_of(second, "error", 2)
    assert await count(db, Message) == 8  # the address's 8
    async with websockets.connect(chat_url(limited), proxy=None) as third:
        await third.send(json.dumps({"type": "ping"}))
        await frames_of(third, "pong", 1)
    async with websockets.connect(chat_url(limited), proxy=None) as fourth:  # the 4th socket
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            async with asyncio.timeout(10):
                while True:
                    await fourth.recv()
        assert fourth.close_code == 1008 and "too many connections" in (fourth.close_reason or "")


async def test_a_burst_of_frames_closes_the_chat_socket(database_url: str, engine: AsyncEngine) -> None:
    with LiveServer(make_settings(database_url)) as live:
        async with websockets.connect(chat_url(live), proxy=None) as ws:
            for _ in range(200):
                await ws.send(json.dumps({"type": "typing"}))
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                async with asyncio.timeout(10):
                    while True:
                        await ws.recv()
            assert ws.close_code == 1008


async def test_webhooks_are_limited_per_source_and_family(limited: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=limited.url, timeout=10) as client:
        line = [await client.post("/webhooks/line", content=b"{}", headers={"X-Line-Signature": "x"})
                for _ in range(6)]
        other = await client.post("/webhooks/email", content=b"x")
    assert [r.status_code for r in line] == [403] * 5 + [429]
    assert 0 < int(line[-1].headers["retry-after"]) <= DAY
    assert other.status_code != 429


async def test_counts_are_shared_through_redis(redis_url: str) -> None:
    rate = limits.Rate(3, DAY)
    bucket, key = "test", uuid.uuid4().hex
    one = limits.create_limiter(redis_url, f"test-{key}")
    two = limits.create_limiter(redis_url, f"test-{key}")
    try:
        assert isinstance(one, limits.RedisLimiter)
        hits = [await one.hit(bucket, key, rate), await two.hit(bucket, key, rate),
                await one.hit(bucket, key, rate), await two.hit(bucket, key, rate)]
        assert [h.allowed for h in hits] == [True, True, True, False]
        assert 0 < hits[-1].retry_after <= DAY
    finally:
        await one.close()
        await two.close()


async def test_redis_being_away_lets_requests_through() -> None:
    away = limits.create_limiter("redis://127.0.0.1:1/0", "test")
    try:
        assert (await away.hit("b", "k", limits.Rate(1, 60))).allowed
        assert (await away.hit("b", "k", limits.Rate(1, 60))).allowed
    finally:
        await away.close()


def test_rates_parse_and_refuse_nonsense() -> None:
    assert limits.Rate.parse("20/60") == limits.Rate(20, 60.0)
    for bad in ("0/60", "5/0", "x/60"):
        with pytest.raises(ValueError):
            limits.Rate.parse(bad)
