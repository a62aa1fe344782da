"""Realtime fixtures: servers with short timings, real Redis, a Redis we may stop, socket helpers."""

import asyncio
import inspect
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from websockets.asyncio.client import ClientConnection, connect

from helpdesk.db import utcnow
from helpdesk.realtime import log as events
from helpdesk.realtime.frames import LiveEvent
from helpdesk.realtime.log import event_sessions
from helpdesk.realtime.models import Event
from helpdesk.retention import tasks as retention
from tests.conftest import LiveServer, free_port, make_settings

REQUIRE_SERVICES = os.environ.get("HELPDESK_TEST_REQUIRE_SERVICES") == "1"
FAST = {"presence_grace_seconds": 1.0, "event_poll_seconds": 0.3, "ws_resume_wait_seconds": 0.3,
        "redis_reconnect_max_seconds": 0.5}


def _unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (HELPDESK_TEST_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The shared test Redis: ``HELPDESK_TEST_REDIS_URL``, else db 1 of the local one."""
    url = os.environ.get("HELPDESK_TEST_REDIS_URL", "redis://127.0.0.1:6379/1")
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        _unavailable(f"Redis at {url} is not reachable: {exc}")
    finally:
        client.close()
    return url


class RedisProcess:
    """A throwaway redis-server on its own port, which a test may kill and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        try:
            for _ in range(200):
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    time.sleep(0.025)
        finally:
            client.close()
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        """Stop it the hard way, as a crash would."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def redis_process() -> Iterator[RedisProcess]:
    """A private Redis (never the machine's shared one, which other work uses)."""
    if shutil.which("redis-server") is None:
        _unavailable("redis-server is not installed")
    server = RedisProcess()
    server.start()
    yield server
    server.kill()


ServerFactory = Callable[..., LiveServer]


@pytest.fixture
def live_servers(database_url: str, engine: AsyncEngine) -> Iterator[ServerFactory]:
    """Start servers on the (emptied) test database with fast realtime timings; each its own
    app, engine and bus, as separate processes would have."""
    with ExitStack() as stack:

        def start(**overrides: Any) -> LiveServer:
            settings = make_settings(database_url, **{**FAST, **overrides})
            return stack.enter_context(LiveServer(settings))

        yield start


def redis_overrides(url: str) -> dict[str, Any]:
    """Settings that put servers on one Redis channel of their own (tests may run side by side)."""
    return {"redis_url": url, "redis_channel": f"test-{uuid.uuid4().hex[:12]}"}


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[[LiveServer], httpx.AsyncClient]]:
    """HTTP clients for extra servers, closed at the end."""
    clients: list[httpx.AsyncClient] = []

    def make(server: LiveServer) -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url=server.url, timeout=30)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


def ws_url(server: LiveServer, token: str | None = None, **params: object) -> str:
    query = {"token": token, **params} if token else params
    tail = "&".join(f"{k}={v}" for k, v in query.items())
    return f"ws://127.0.0.1:{server.port}/ws" + (f"?{tail}" if tail else "")


def open_socket(server: LiveServer, token: str | None = None, *, headers: dict[str, str] | None = None,
                origin: str | None = None, max_size: int | None = 2**20, **params: object) -> connect:
    """A real websockets client (no compression, no proxy) on the server's ``/ws``."""
    return connect(ws_url(server, token, **params), compression=None, proxy=None, open_timeout=10,
                   additional_headers=headers, origin=origin, max_size=max_size)  # type: ignore[arg-type]


async def next_frame(ws: ClientConnection, wait: float = 5.0,
                     skip: tuple[str, ...] = ("ping", "presence.changed")) -> dict[str, Any]:
    """The next frame that is not one of ``skip``."""
    async with asyncio.timeout(wait):
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("type") not in skip:
                return frame  # type: ignore[no-any-return]


async def frames_until(ws: ClientConnection, done: Callable[[list[dict[str, Any]]], bool],
                       wait: float = 10.0) -> list[dict[str, Any]]:
    """Collect event frames (those with a seq) until ``done(frames)``."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(wait):
        while not done(frames):
            frame = json.loads(await ws.recv())
            if "seq" in frame:
                frames.append(frame)
    return frames


async def quiet(ws: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    """Every event frame that arrives within ``seconds`` (expecting none, usually)."""
    frames: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                frame = json.loads(await ws.recv())
                if "seq" in frame:
                    frames.append(frame)
    except TimeoutError:
        pass
    return frames


async def until(check: Callable[[], Any], wait: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``check`` (plain or async) until it returns something truthy."""
    deadline = time.monotonic() + wait
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {wait}s (last: {result!r})")
        await asyncio.sleep(interval)


async def committed_events(db: AsyncSession, after: int = 0) -> list[LiveEvent]:
    """Events the server committed after ``after`` (read in a transaction of its own, so that
    SQLite's write lock is not held while the server works)."""
    await db.rollback()
    rows = await db.execute(select(Event.seq, Event.type, Event.at, Event.data, Event.inbox_id,
                                   Event.user_ids, Event.broadcast)
                            .where(Event.seq > after).order_by(Event.seq))
    events = [LiveEvent(*row) for row in rows.all()]
    await db.rollback()
    return events


async def prune_all_but_the_newest(database_url: str, engine: AsyncEngine) -> int:
    """Run retention as if a month had passed; returns the seq it pruned through."""
    sessionmaker = event_sessions(engine)
    await retention.prune_all(sessionmaker, make_settings(database_url),
                              now=utcnow() + timedelta(days=31))
    async with sessionmaker() as session:
        return await events.pruned_through(session)


async def settled(ws: ClientConnection) -> None:
    """Wait until the socket is live: its pong comes after any replay it asked for."""
    await ws.send(json.dumps({"type": "ping"}))
    async with asyncio.timeout(10):
        while json.loads(await ws.recv())["type"] != "pong":
            pass
