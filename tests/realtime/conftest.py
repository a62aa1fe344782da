"""Realtime fixtures: servers with short timings, a Redis we may stop, and a month of retention."""

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from helpdesk.db import utcnow
from helpdesk.realtime import log as events
from helpdesk.realtime.log import event_sessions
from helpdesk.retention import tasks as retention
from tests.support.server import LiveServer, make_settings
from tests.support.services import RedisProcess

FAST = {"presence_grace_seconds": 1.0, "event_poll_seconds": 0.3, "ws_resume_wait_seconds": 0.3,
        "redis_reconnect_max_seconds": 0.5}


@pytest.fixture
def redis_process() -> Iterator[RedisProcess]:
    """A private Redis (never the machine's shared one, which other work uses)."""
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


async def prune_all_but_the_newest(database_url: str, engine: AsyncEngine) -> int:
    """Run retention as if a month had passed; returns the seq it pruned through."""
    sessionmaker = event_sessions(engine)
    await retention.prune_all(sessionmaker, make_settings(database_url),
                              now=utcnow() + timedelta(days=31))
    async with sessionmaker() as session:
        return await events.pruned_through(session)
