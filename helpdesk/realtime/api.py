"""The live socket (``/ws``) and who is online (``GET /api/presence``).

Protocol (server → client): events ``{"seq", "type", "at", "data"}``; frames that are not stored
carry no seq: ``ticket.viewing``, ``ticket.typing``, ``ping``, ``pong``, ``error``, and
``resync`` ``{"after": seq}`` when events after the resumed seq were deleted by retention (the
client refetches what it shows and goes on from ``after``).
Client → server: ``resume`` (first frame, or ``?after=`` on the URL), ``viewing``, ``typing``,
``presence``, ``ping``, ``pong``. Close codes: 4401 not signed in, 4403 account disabled,
4408 silent for two pings, 4429 too slow, 4000 lifetime reached (reconnect and resume).
"""

import asyncio
import contextlib
import json
import logging
import random
import time
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.websockets import WebSocketDisconnect, WebSocketDisconnected

from helpdesk.auth import service as auth
from helpdesk.auth.dependencies import SESSION_COOKIE, CurrentUser, signed_token
from helpdesk.config import Settings
from helpdesk.db import ReadSessionDep, utcnow
from helpdesk.realtime import presence as presences
from helpdesk.realtime import wire
from helpdesk.realtime.audiences import audiences
from helpdesk.realtime.client import Client
from helpdesk.realtime.frames import Audience, ephemeral_text
from helpdesk.realtime.hub import Hub
from helpdesk.realtime.models import PresencePublic, PresenceStatus

log = logging.getLogger(__name__)
router = APIRouter(tags=["realtime"])

MAX_FRAME = 4096
BURST, RATE = 40, 20.0  # client frames: a burst of 40, then 20 a second
EPHEMERAL_EVERY = 0.5  # the same viewing/typing is passed on at most twice a second
TICKET_CACHE_SECONDS = 30.0

CLOSE_RECONNECT = 4000
CLOSE_UNAUTHORIZED = 4401
CLOSE_IDLE = 4408
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_ERROR = 1011
MAX_MALFORMED = 10  # frames a client may get wrong before it is closed with CLOSE_POLICY
PEER_GONE = (WebSocketDisconnect, WebSocketDisconnected, OSError)

Close = tuple[int, str] | None  # how a socket's task wants it closed; None: the peer is gone


@router.get("/api/presence", response_model=list[PresencePublic])
async def presence(session: ReadSessionDep, user: CurrentUser) -> list[PresencePublic]:
    """Every active staff member: online, away or offline, and since when."""
    return await presences.presence_list(session)


LIVE_PATH = "/ws"


@router.websocket(LIVE_PATH)  # served ahead of the middleware stack: see helpdesk.app.HelpdeskApp
async def live(websocket: WebSocket) -> None:
    """Events as they commit, filtered for the signed-in user; replay with ``resume``."""
    state = websocket.app.state
    signed_in = await _authenticate(websocket, state.settings, state.read_sessionmaker)
    await websocket.accept()
    if signed_in is None:
        await websocket.close(CLOSE_UNAUTHORIZED, "not signed in")
        return
    await LiveSocket(websocket, state.hub, state.settings, signed_in).run()


class SignedIn(NamedTuple):
    """Who is behind a socket: plain values, so no ORM object lives as long as the socket."""

    user_id: int
    name: str
    audience: Audience
    session_id: int  # the sign-in session: its revocation closes the socket


async def _authenticate(
    websocket: WebSocket, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> SignedIn | None:
    """The user and audience behind ``?token=``, a bearer header or the session cookie."""
    bearer = websocket.query_params.get("token") or _bearer_header(websocket)
    cookie = None if bearer else websocket.cookies.get(SESSION_COOKIE)
    if cookie and not _same_origin(websocket, settings):
        return None  # another site's page must not ride the cookie (cross-site socket hijacking)
    token = signed_token(settings, bearer, cookie)
    if token is None:
        return None
    async with sessionmaker() as session:  # released before the socket goes live
        found = await auth.signed_in(session, token)  # a live session of an active user
        if found is None:
            return None
        user_id, name = token.user_id, found[0].name
        audience = (await audiences(session, [user_id]))[user_id]
    return SignedIn(user_id, name, audience, found[1])


def _bearer_header(websocket: WebSocket) -> str | None:
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def _same_origin(websocket: WebSocket, settings: Settings) -> bool:
    origin = websocket.headers.get("origin")
    if origin is None:
        return True  # not a browser: no ambient cookie to abuse
    allowed = {websocket.headers.get("host", "").lower(), urlsplit(settings.public_url).netloc.lower()}
    return urlsplit(origin).netloc.lower() in allowed


class LiveSocket:
    """One signed-in socket: a reader, a writer and a pinger that end together."""

    def __init__(self, websocket: WebSocket, hub: Hub, settings: Settings, signed_in: SignedIn) -> None:
        self.websocket, self.hub, self.settings = websocket, hub, settings
        self.user_id, self.name, self.audience, self.session_id = signed_in
        self.started = asyncio.Event()
        self.resume_after = _seq(websocket.query_params.get("after"))
        if self.resume_after is not None:
            self.started.set()
        self.heard = time.monotonic()
        self.tokens, self.refilled = float(BURST), time.monotonic()
        self.ticket_inboxes: dict[int, tuple[float, int | None]] = {}
        self.passed_on: dict[tuple[str, int], float] = {}
        self.malformed = 0
        self.client: Client

    async def run(self) -> None:
        """Join the hub, count as present, serve until something ends it, then clean up."""
        try:
            self.client = await self.hub.join(user_id=self.user_id, name=self.name,
                                              audience=self.audience, session_id=self.session_id,
                                              sink=wire.direct_socket(self.websocket))
        except Exception:
            log.exception("realtime: could not join the hub")
            await self._close(CLOSE_ERROR, "try again")
            return
        try:
            if await self._register():
                close = await self._serve()
            else:
                close = (CLOSE_ERROR, "try again")
            if close is not None:
                await self._close(*close)
        finally:
            self.hub.leave(self.client)
            await self._unregister()

    async def _serve(self) -> Close:
        tasks = [asyncio.create_task(coro) for coro in
                 (self._read(), self._write(), self._ping(), self._kicked())]
        lifetime = self.settings.ws_max_lifetime_seconds * random.uniform(0.9, 1.0)
        try:
            done, _ = await asyncio.wait(tasks, timeout=lifetime, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if not done:
            return (CLOSE_RECONNECT, "connection lifetime reached; reconnect and resume")
        task = done.pop()
        error = task.exception()
        if error is None:
            return task.result()
        if isinstance(error, PEER_GONE):
            return None
        log.error("realtime: socket task failed", exc_info=error)
        return (CLOSE_ERROR, "server error; reconnect and resume")

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):  # a socket that reads nothing must not hold us
                await self.websocket.close(code, reason)

    # ---- presence of this socket ---------------------------------------------------------

    async def _register(self) -> bool:
        try:
            async with self.hub.sessionmaker() as session:
                await presences.connect(session, connection_id=self.client.id, user_id=self.user_id,
                                      node=self.hub.node, now=utcnow(), ttl=self.hub.grace)
                await session.commit()
        except Exception:
            log.exception("realtime: could not record the connection")
            return False
        self.client.registered = True
        return True

    async def _unregister(self) -> None:
        if not self.client.registered:
            return
        try:
            async with self.hub.sessionmaker() as session:
                await presences.disconnect(session, connection_id=self.client.id, now=utcnow(),
                                         grace=self.hub.grace)
                await session.commit()
        except Exception:
            log.warning("realtime: could not record a disconnect; the heartbeat will lapse it")

    # ---- the three tasks -----------------------------------------------------------------

    async def _write(self) -> Close:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.ws_resume_wait_seconds):
                await self.started.wait()
        self.started.set()
        await self.hub.replay(self.client, self.resume_after, self.websocket.send_text)
        client = self.client
        while True:
            seq, text = await client.queue.get()
            if seq is not None and seq <= client.sent_seq:
                continue  # already sent while replaying
            client.writing = True  # until it is written, the hub must not write past it
            try:
                await self.websocket.send_text(text)
            finally:
                client.writing = False
            if seq is not None:
                client.sent_seq = seq

    async def _ping(self) -> Close:
        interval = self.settings.ws_ping_seconds
        while True:
            await asyncio.sleep(interval)
            if time.monotonic() - self.heard > interval * 2.5:
                return (CLOSE_IDLE, "no answer to ping; reconnect and resume")
            self.client.reply(ephemeral_text("ping", {}))

    async def _kicked(self) -> Close:
        await self.client.kick_event.wait()
        return self.client.kicked

    async def _read(self) -> Close:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return None
            self.heard = time.monotonic()
            if not self._within_rate():
                return (CLOSE_POLICY, "too many frames")
            text = message.get("text")
            if text is None:
                self._malformed("send JSON text frames")
            elif len(text) > MAX_FRAME:
                return (CLOSE_TOO_BIG, "frame too large")
            else:
                await self._handle(text)
            if self.malformed > MAX_MALFORMED:
                log.info("realtime: closed the socket of user %s after %d malformed frames",
                         self.user_id, self.malformed)
                return (CLOSE_POLICY, "too many malformed frames")
            self.started.set()  # any first frame ends the wait for a resume

    def _within_rate(self) -> bool:
        now = time.monotonic()
        self.tokens = min(float(BURST), self.tokens + (now - self.refilled) * RATE)
        self.refilled = now
        self.tokens -= 1
        return self.tokens >= 0

    # ---- client frames -------------------------------------------------------------------

    async def _handle(self, text: str) -> None:
        try:
            frame = json.loads(text)
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
            self._malformed("frames are JSON objects")
            return
        if not isinstance(frame, dict):
            self._malformed("frames are JSON objects")
            return
        kind = frame.get("type")
        try:
            if kind == "resume":
                self._resume(frame.get("after"))
            elif kind in ("viewing", "typing"):
                await self._collision(kind, frame.get("ticket_id"))
            elif kind == "presence":
                await self._presence(frame.get("status"))
            elif kind == "ping":
                self.client.reply(ephemeral_text("pong", {}))
            elif kind != "pong":
                self._malformed("unknown frame type")
        except Exception:
            log.exception("realtime: handling a %s frame failed", kind)
            self._error("temporarily unavailable")

    def _error(self, detail: str) -> None:
        self.client.reply(ephemeral_text("error", {"detail": detail}))

    def _malformed(self, detail: str) -> None:
        """Tell the client what was wrong; enough of these close the socket (see ``_read``)."""
        self.malformed += 1
        self._error(detail)

    def _resume(self, after: Any) -> None:
        seq = None if isinstance(after, str) else _seq(after)  # in a frame, a seq is a number
        if after is not None and seq is None:
            self._malformed("after: a seq (an integer ≥ 0) or null")
        elif not self.started.is_set():
            self.resume_after = seq
        elif seq is not None and seq < self.client.sent_seq:
            self._error("resume must be the first frame; reconnect to resume from an earlier seq")

    async def _collision(self, kind: str, ticket_id: Any) -> None:
        if not isinstance(ticket_id, int) or isinstance(ticket_id, bool) or not 0 < ticket_id < 2**63:
            self._malformed("ticket_id: a ticket id")
            return
        now = time.monotonic()
        if now - self.passed_on.get((kind, ticket_id), -EPHEMERAL_EVERY) < EPHEMERAL_EVERY:
            return
        inbox_id = await self._inbox_of(ticket_id)
        if inbox_id is None or not self.client.audience.may_see_inbox(inbox_id):
            self._error("ticket not found")
            return
        if len(self.passed_on) > 256:
            self.passed_on.clear()
        self.passed_on[(kind, ticket_id)] = now
        text = ephemeral_text(f"ticket.{kind}", {
            "ticket_id": ticket_id, "user_id": self.user_id, "name": self.name})
        self.hub.publish_ephemeral(inbox_id=inbox_id, exclude_user=self.user_id, text=text)

    async def _inbox_of(self, ticket_id: int) -> int | None:
        cached = self.ticket_inboxes.get(ticket_id)
        if cached is not None and time.monotonic() - cached[0] < TICKET_CACHE_SECONDS:
            return cached[1]
        async with self.hub.reader() as session:
            inbox_id = await self.hub.ticket_inbox(session, ticket_id)
        if len(self.ticket_inboxes) > 256:
            self.ticket_inboxes.clear()
        self.ticket_inboxes[ticket_id] = (time.monotonic(), inbox_id)
        return inbox_id

    async def _presence(self, status: Any) -> None:
        try:
            wanted = PresenceStatus(status)
        except ValueError:
            self._malformed("status: online, away or offline")
            return
        if wanted == self.client.status:
            return  # a heartbeat: the process keeps the connection row alive
        self.client.status = wanted
        async with self.hub.sessionmaker() as session:
            await presences.set_status(session, connection_id=self.client.id, user_id=self.user_id,
                                     status=wanted, now=utcnow())
            await session.commit()


def _seq(value: Any) -> int | None:
    """A seq from a frame or query string, or None when it is not one."""
    if isinstance(value, str) and value.isdigit() and len(value) < 19:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
        return value
    return None
