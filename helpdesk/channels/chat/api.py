"""``GET /chat/ws``: the web chat widget's socket; and operators' typing for chat tickets.

Visitor → server frames: ``{"type": "resume", "after": id}`` (send what came after message
``id``, then live), ``{"type": "message", "text", "client_id"}``, ``{"type": "email", "email"}``
(left when nobody is online), ``{"type": "ping"}``. Server → visitor: ``welcome`` (with the
visitor token to keep), ``message``, ``typing``, ``email_saved``, ``pong``, ``error``.
"""

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect

from helpdesk import boundary, limits
from helpdesk.auth.dependencies import CurrentUser
from helpdesk.channels.chat import service
from helpdesk.config import Settings
from helpdesk.errors import HelpdeskError
from helpdesk.tickets.dependencies import CurrentTicket

log = logging.getLogger(__name__)
router = APIRouter(tags=["channels"])

MAX_FRAME = 20_000
FORGED_TOKEN = 4403
CLOSE_POLICY = 1008
MAX_MALFORMED = 10  # frames a visitor may get wrong before the socket is closed
BURST, RATE = 30, 5.0  # frames of any kind: a burst of 30, then 5 a second


@dataclass
class Conversation:
    """One socket's state: who, what it has shown, and a lock so frames never interleave."""

    ws: WebSocket
    visitor_id: str
    settings: Settings
    address: str = ""
    after: int | None = None
    malformed: int = 0
    tokens: float = float(BURST)
    refilled: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, frame: dict[str, Any]) -> None:
        async with self.lock:
            await self.ws.send_json(frame)


@router.websocket("/chat/ws")
async def chat_socket(ws: WebSocket, token: str | None = None) -> None:
    """A visitor's live conversation; a forged token is refused before anything is sent."""
    app = ws.app
    settings: Settings = app.state.settings
    visitor_id = service.read_token(settings.secret_key, token) if token else None
    if token and visitor_id is None:
        await ws.close(code=FORGED_TOKEN)
        return
    address = limits.client_address(ws.scope)
    admitted = await app.state.limiter.hit("chat-connect", address,
                                           limits.Rate.parse(settings.rate_chat_connect))
    await ws.accept()
    if not admitted.allowed:
        await ws.close(CLOSE_POLICY, f"too many connections; retry in {admitted.retry_after} s")
        return
    async with app.state.sessionmaker() as session:
        visitor = await service.open_visitor(session, visitor_id)
        online = await app.state.chat_hub.online_check(session)
        await session.commit()
    chat = Conversation(ws=ws, visitor_id=visitor.id, settings=settings, address=address)
    socket = service.VisitorSocket(visitor.id, chat.send, asyncio.Event())
    app.state.chat_hub.add(socket)
    try:
        await chat.send({"type": "welcome", "token": service.issue_token(settings.secret_key, visitor.id),
                         "operators_online": online, "email": visitor.email})
        await _converse(chat, socket)
    finally:
        if app.state.chat_hub.remove(socket):
            async with app.state.sessionmaker() as session:
                await service.set_online(session, visitor.id, False)
                await session.commit()


async def _converse(chat: Conversation, socket: service.VisitorSocket) -> None:
    tasks = [asyncio.create_task(_read(chat, socket)), asyncio.create_task(_write(chat, socket))]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task.exception() and not isinstance(task.exception(), WebSocketDisconnect):
                raise task.exception()  # type: ignore[misc]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _write(chat: Conversation, socket: service.VisitorSocket) -> None:
    """Whenever poked, send the messages after the last one shown."""
    sessionmaker = chat.ws.app.state.sessionmaker
    while True:
        await socket.poke.wait()
        socket.poke.clear()
        if chat.after is None:
            continue
        async with sessionmaker() as session:
            frames = await service.transcript_after(session, chat.visitor_id, chat.after)
        for frame in frames:
            await chat.send(frame)
            chat.after = frame["id"]
        if len(frames) == 200:
            socket.poke.set()


async def _read(chat: Conversation, socket: service.VisitorSocket) -> None:
    while True:
        message = await chat.ws.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        if not _within_burst(chat):
            await chat.ws.close(CLOSE_POLICY, "too many frames")
            raise WebSocketDisconnect(CLOSE_POLICY)
        try:
            await _handle(chat, socket, _frame(message.get("text")))
        except HelpdeskError as exc:
            if exc.status_code in (413, 422):
                chat.malformed += 1
            await chat.send({"type": "error", "detail": exc.message, **exc.extra})
        if chat.malformed > MAX_MALFORMED:
            log.info("chat: closed visitor %s's socket after %d malformed frames",
                     chat.visitor_id, chat.malformed)
            await chat.ws.close(CLOSE_POLICY, "too many malformed frames")
            raise WebSocketDisconnect(CLOSE_POLICY)


def _within_burst(chat: Conversation) -> bool:
    """Any frames: a burst of BURST, then RATE a second (this socket alone)."""
    now = time.monotonic()
    chat.tokens = min(float(BURST), chat.tokens + (now - chat.refilled) * RATE)
    chat.refilled = now
    chat.tokens -= 1
    return chat.tokens >= 0


async def _may_store(chat: Conversation) -> None:
    """429 (an error frame with ``retry_after``) past the visitor's or the address's rate."""
    settings, limiter = chat.settings, chat.ws.app.state.limiter
    for bucket, key, rate in (("chat-visitor", chat.visitor_id, settings.rate_chat_message_visitor),
                              ("chat-address", chat.address, settings.rate_chat_message_address)):
        decision = await limiter.hit(bucket, key, limits.Rate.parse(rate))
        if not decision.allowed:
            raise HelpdeskError(f"too many messages; try again in {decision.retry_after} s", 429,
                                retry_after=decision.retry_after)


def _frame(raw: str | None) -> dict[str, Any]:
    if raw is None:
        raise HelpdeskError("frames are JSON text", 422)
    if len(raw) > MAX_FRAME:
        raise HelpdeskError("frame too large", 413)
    try:
        frame = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
        raise HelpdeskError("frames are JSON objects", 422) from None
    if not isinstance(frame, dict):
        raise HelpdeskError("frames are JSON objects", 422)
    problem = boundary.value_problem(frame)
    if problem:
        raise HelpdeskError(problem, 422)
    return frame


async def _handle(chat: Conversation, socket: service.VisitorSocket, frame: dict[str, Any]) -> None:
    kind = frame.get("type")
    sessionmaker = chat.ws.app.state.sessionmaker
    region = chat.settings.default_region
    if kind == "resume":
        after = frame.get("after", 0)
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            raise HelpdeskError("after: a message id (an integer ≥ 0)", 422)
        chat.after = after
        socket.poke.set()
        return
    if kind in ("message", "email"):
        await _may_store(chat)
    async with sessionmaker() as session:
        if kind == "message":
            await service.post_message(session, chat.visitor_id, str(frame.get("text", "")),
                                       str(frame.get("client_id", "")), region=region)
        elif kind == "email":
            address = await service.leave_email(session, chat.visitor_id, str(frame.get("email", "")),
                                                region=region)
        elif kind == "ping":
            await service.set_online(session, chat.visitor_id, True)
        elif kind != "typing":  # a visitor typing is not shown to operators yet
            raise HelpdeskError(f"unknown frame type: {kind}", 422)
        await session.commit()
    if kind == "message":
        socket.poke.set()
    elif kind == "email":
        await chat.send({"type": "email_saved", "email": address})
    elif kind == "ping":
        await chat.send({"type": "pong"})


@router.post("/api/chat/tickets/{ticket_id}/typing")
async def operator_typing(ticket: CurrentTicket, user: CurrentUser, request: Request) -> dict[str, int]:
    """Show the visitor of a chat ticket that an operator is typing (sockets of this process)."""
    hub: service.ChatHub = request.app.state.chat_hub
    return {"told": await hub.operator_typing(ticket.conversation_key, user.name)}
