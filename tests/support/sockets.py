"""Real websocket clients on a live server's ``/ws``, and reading what they receive."""

import asyncio
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from websockets.asyncio.client import ClientConnection, connect

from helpdesk.realtime.frames import LiveEvent
from helpdesk.realtime.models import Event
from tests.support.server import LiveServer


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


async def settled(ws: ClientConnection) -> list[dict[str, Any]]:
    """Wait until the socket is live: its pong comes after any replay it asked for.

    Returns the event frames (those with a seq) that arrived before the pong.
    """
    await ws.send(json.dumps({"type": "ping"}))
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while (frame := json.loads(await ws.recv()))["type"] != "pong":
            if "seq" in frame:
                frames.append(frame)
    return frames


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
