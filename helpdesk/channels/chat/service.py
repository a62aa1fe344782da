"""Web chat: signed visitor tokens, visitor messages in, operator replies out to their sockets.

Replies reach a visitor through the database, never through process memory: the outbox marks a
reply sent and records ``message.updated``; the bus wakes the hub in whichever process holds the
visitor's socket, and that socket reads the messages it has not shown yet. A visitor who was
away reads the same way when they reconnect (``resume`` after the last id they saw).
"""

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from helpdesk import normalize
from helpdesk.channels.email import tasks as email_tasks
from helpdesk.channels.models import ChatVisitor
from helpdesk.customers import service as customers
from helpdesk.customers.models import IdentityKind
from helpdesk.db import utcnow
from helpdesk.errors import BadInput
from helpdesk.outbox.service import OutboundContext, Sender
from helpdesk.realtime import log as event_log
from helpdesk.realtime.presence import online_among
from helpdesk.tickets import ingest as ticket_ingest
from helpdesk.tickets.models import Channel, Direction, InboundMessage, IngestResult, Message, Ticket
from helpdesk.tickets.models import Sender as MessageSender

log = logging.getLogger(__name__)

TOKEN_SALT = "helpdesk.chat-visitor"
ONLINE_FOR = timedelta(seconds=90)  # the widget pings every 30 s
VISIBLE_DELIVERY = ("sent", "delivered", "read")
MAX_TEXT = 5000
DISPATCH_BATCH = 1000  # events the chat hub reads per look at the log


# ---- visitors -------------------------------------------------------------------------------


def issue_token(secret_key: str, visitor_id: str) -> str:
    """A token naming the visitor, signed with the app's secret key."""
    return URLSafeSerializer(secret_key, salt=TOKEN_SALT).dumps({"v": visitor_id})


def read_token(secret_key: str, token: str) -> str | None:
    """The visitor a token names, or None when it is forged or malformed."""
    try:
        data = URLSafeSerializer(secret_key, salt=TOKEN_SALT).loads(token)
    except BadSignature:
        return None
    visitor = data.get("v") if isinstance(data, dict) else None
    return visitor if isinstance(visitor, str) and 0 < len(visitor) <= 40 else None


async def open_visitor(session: AsyncSession, visitor_id: str | None) -> ChatVisitor:
    """The visitor's row (created on first contact), marked online."""
    visitor = await session.get(ChatVisitor, visitor_id) if visitor_id else None
    if visitor is None:
        visitor = ChatVisitor(id=visitor_id or secrets.token_urlsafe(18))
        session.add(visitor)
    visitor.online_until = utcnow() + ONLINE_FOR
    await session.flush()
    return visitor


async def set_online(session: AsyncSession, visitor_id: str, online: bool) -> None:
    """Push the visitor's presence forward (a ping) or end it (the last socket closed)."""
    until = utcnow() + ONLINE_FOR if online else utcnow()
    await session.execute(update(ChatVisitor).where(col(ChatVisitor.id) == visitor_id)
                          .values(online_until=until))


async def leave_email(session: AsyncSession, visitor_id: str, email: str, *, region: str) -> str:
    """Keep the address a visitor left so replies reach them by email while they are away."""
    address = normalize.email(email)
    if address is None or len(address) > 254:
        raise BadInput("that is not an email address")
    visitor = await session.get(ChatVisitor, visitor_id)
    if visitor is None:
        raise BadInput("unknown visitor")
    visitor.email = address
    # Identities in this order: the chat identity's owner keeps the thread; the address joins it.
    await customers.resolve(session, identities=[(IdentityKind.chat, visitor_id),
                                                 (IdentityKind.email, address)],
                            name=None, region=region)
    return address


# ---- messages -------------------------------------------------------------------------------


def conversation_key(visitor_id: str) -> str:
    """The ticket conversation key of a visitor's chat."""
    return f"chat:{visitor_id}"


async def post_message(session: AsyncSession, visitor_id: str, text: str, client_id: str, *,
                       region: str) -> IngestResult:
    """Ingest what the visitor wrote; ``client_id`` makes a resend after reconnecting harmless."""
    text = text.strip()
    if not text or len(text) > MAX_TEXT:
        raise BadInput(f"a message has 1 to {MAX_TEXT} characters")
    if not client_id or len(client_id) > 64:
        raise BadInput("client_id is required (at most 64 characters)")
    inbound = InboundMessage(
        channel=Channel.chat, external_id=f"{visitor_id}:{client_id}",
        sender=MessageSender(chat_id=visitor_id), body_text=text,
        conversation_key=conversation_key(visitor_id),
    )
    return await ticket_ingest.ingest(session, inbound, options=ticket_ingest.IngestOptions(region=region))


async def transcript_after(session: AsyncSession, visitor_id: str, after_id: int,
                           limit: int = 200) -> list[dict[str, Any]]:
    """What the visitor may see after message ``after_id``: their words and delivered replies."""
    keys = select(col(Ticket.id)).where(col(Ticket.channel) == Channel.chat,
                                        col(Ticket.conversation_key) == conversation_key(visitor_id))
    rows = await session.execute(
        select(col(Message.id), col(Message.direction), col(Message.author),
               col(Message.body_text), col(Message.created_at), col(Message.external_id))
        .where(col(Message.ticket_id).in_(keys), col(Message.id) > after_id,
               col(Message.internal).is_(False),
               or_(col(Message.direction) == Direction.inbound,
                   col(Message.delivery_status).in_(VISIBLE_DELIVERY)))
        .order_by(col(Message.id)).limit(limit)
    )
    return [frame(mid, direction, author, text, at, ext)
            for mid, direction, author, text, at, ext in rows.all() if mid is not None]


def frame(message_id: int, direction: str, author: str | None, text: str, at: datetime,
          external_id: str | None) -> dict[str, Any]:
    """One message as the widget receives it."""
    client_id = (external_id or "").partition(":")[2] if direction == Direction.inbound else None
    return {"type": "message", "id": message_id, "direction": str(direction),
            "author": author if direction == Direction.outbound else None, "text": text,
            "at": at.isoformat(), "client_id": client_id or None}


async def operators_online(session: AsyncSession) -> bool:
    """Whether any staff member is online now (presence as the realtime layer keeps it)."""
    return bool(await online_among(session))


# ---- replies --------------------------------------------------------------------------------


def make_sender(sessionmaker: async_sessionmaker[AsyncSession]) -> Sender:
    """The ``reply.chat`` sender: the socket reads it from the database; email if they are away."""

    async def send(context: OutboundContext) -> str | None:
        visitor_id = (context.conversation_key or "").removeprefix("chat:")
        async with sessionmaker() as session:
            visitor = await session.get(ChatVisitor, visitor_id)
        away = visitor is None or visitor.online_until is None or visitor.online_until < utcnow()
        if not away or visitor is None or not visitor.email or not context.settings.smtp_url:
            return None  # shown on the visitor's socket, now or when they come back
        # Their email reply threads back here: its In-Reply-To names this Message-ID.
        return await email_tasks.send_reply(replace(context, identities={
            **context.identities, "email": [visitor.email]}))

    return send


# ---- the per-process hub --------------------------------------------------------------------


@dataclass(eq=False)
class VisitorSocket:
    """One open widget connection: the hub pokes it, it reads what is new and sends it."""

    visitor_id: str
    send_json: Callable[[dict[str, Any]], Awaitable[None]]
    poke: asyncio.Event


class ChatHub:
    """Wakes the sockets of this process whose tickets changed (after commits, from the bus)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession],
                 read_sessionmaker: async_sessionmaker[AsyncSession] | None = None) -> None:
        self.sessionmaker = sessionmaker
        # Following the log only reads: on SQLite it must not queue behind (or hold up) writers.
        self.reader = read_sessionmaker or sessionmaker
        self.sockets: dict[str, set[VisitorSocket]] = {}
        self.online_check: Callable[[AsyncSession], Awaitable[bool]] = operators_online
        self._seq = 0
        self._news = 0  # the highest seq the bus reported; 0 until it reports one
        self._look = False  # the bus asked for a look at the table (a reconnect, a seq we passed)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, listen: Callable[[Callable[[int], None]], Callable[[], None]]) -> None:
        """Follow the bus from the latest committed event on."""
        async with self.reader() as session:
            self._seq = await event_log.settled_high(session)
        self._unlisten = listen(self._on_news)
        self._task = asyncio.create_task(self._run())

    def _on_news(self, seq: int) -> None:
        if seq <= self._seq:
            self._look = True
        self._news = max(self._news, seq)
        self._wake.set()

    async def stop(self) -> None:
        """Stop following the bus."""
        if self._task is not None:
            self._unlisten()
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def add(self, socket: VisitorSocket) -> None:
        """Start waking ``socket`` for its visitor's tickets."""
        self.sockets.setdefault(socket.visitor_id, set()).add(socket)

    def remove(self, socket: VisitorSocket) -> bool:
        """Stop waking ``socket``; True when it was the visitor's last one here."""
        mine = self.sockets.get(socket.visitor_id, set())
        mine.discard(socket)
        if not mine:
            self.sockets.pop(socket.visitor_id, None)
        return not mine

    async def operator_typing(self, conversation: str | None, author: str | None) -> int:
        """Show "typing…" to the visitor of a chat conversation on this process; returns sockets told."""
        told = 0
        if not conversation or not conversation.startswith("chat:"):
            return told
        for socket in list(self.sockets.get(conversation.removeprefix("chat:"), ())):
            try:
                await socket.send_json({"type": "typing", "author": author})
                told += 1
            except Exception:  # a socket closing under us is not the typist's problem
                continue
        return told

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._dispatch()
            except Exception:  # keep following the bus after a database hiccup
                log.exception("chat hub dispatch failed")
                await asyncio.sleep(1)

    async def _dispatch(self) -> None:
        if not self.sockets and not self._look and self._news > self._seq:
            # Nobody here to wake: skip the commits (a visitor who connects later reads their
            # transcript from the table anyway).
            self._seq = self._news
            return
        self._look = False
        async with self.reader() as session:
            # Through the log's reader: it never passes a seq still being committed.
            batch = await event_log.live_events_after(session, self._seq, DISPATCH_BATCH)
        if batch:
            self._seq = batch[-1].seq
            if len(batch) == DISPATCH_BATCH:
                self._wake.set()
        if not self.sockets:
            return
        touched = {event.data.get("ticket_id") for event in batch
                   if event.type in ("message.created", "message.updated")}
        for visitor_id in await self._visitors_of({t for t in touched if isinstance(t, int)}):
            for socket in self.sockets.get(visitor_id, ()):
                socket.poke.set()

    async def _visitors_of(self, ticket_ids: set[int]) -> set[str]:
        if not ticket_ids:
            return set()
        async with self.reader() as session:
            keys = await session.scalars(select(col(Ticket.conversation_key)).where(
                col(Ticket.id).in_(ticket_ids), col(Ticket.channel) == Channel.chat))
        return {key.removeprefix("chat:") for key in keys if key and key.startswith("chat:")}
