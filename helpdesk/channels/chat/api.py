"""``GET /chat/ws``: the web chat widget's socket; and operators' typing for chat tickets.

Visitor → server frames: ``{"type": "resume", "after": id}`` (send what came after message
``id``, then live), ``{"type": "message", "text", "client_id"}``, ``{"type": "email", "email"}``
(left when nobody is online), ``{"type": "ping"}``. Server → visitor: ``welcome`` (with the
visitor token to keep), ``message``, ``typing``, ``email_saved``, ``pong``, ``error``.
"""

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect

from helpdesk import boundary
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


@dataclass
class Conversation:
    """One socket's state: who, what it has shown, and a lock so frames never interleave."""

    ws: WebSocket
    visitor_id: str
    settings: Settings
    after: int | None = None
    malformed: int = 0
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
    await ws.accept()
    async with app.state.sessionmaker() as session:
        visitor = await service.open_visitor(session, visitor_id)
        online = await app.state.chat_hub.online_check(session)
        await session.commit()
    chat = Conversation(ws=ws, visitor_id=visitor.id, settings=settings)
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
        try:
            await _handle(chat, socket, _frame(message.get("text")))
        except HelpdeskError as exc:
            if exc.status_code in (413, 422):
                chat.malformed += 1
            await chat.send({"type": "error", "detail": exc.message})
        if chat.malformed > MAX_MALFORMED:
            log.info("chat: closed visitor %s's socket after %d malformed frames",
                     chat.visitor_id, chat.malformed)
            await chat.ws.close(CLOSE_POLICY, "too many malformed frames")
            raise WebSocketDisconnect(CLOSE_POLICY)


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
