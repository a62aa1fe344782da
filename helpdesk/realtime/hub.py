"""One dispatcher per process: it reads new events from the table once and hands them to this
process's sockets: written straight to a socket that has nothing else in flight, else through
the socket's own bounded queue, so a slow socket never slows the others."""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpdesk.config import Settings
from helpdesk.db import utcnow
from helpdesk.realtime import log as event_log
from helpdesk.realtime.bus import MemoryBus
from helpdesk.realtime.client import CLOSE_REVOKED, Client
from helpdesk.realtime.events import SessionRevoked
from helpdesk.realtime.frames import Audience, LiveEvent, ephemeral_text
from helpdesk.realtime.log import LocalEvents
from helpdesk.realtime.models import PresenceStatus
from helpdesk.realtime.wire import DirectSocket, EncodedRun

log = logging.getLogger(__name__)

BATCH = 500
HOLE_RETRY = 0.05  # seconds before looking again when the log has a hole still in flight
# What the hub asks of the domain is injected (see app.lifespan), since the hub knows no domain:
# which inbox a ticket belongs to (None: no such ticket),
TicketInbox = Callable[[AsyncSession, int], Awaitable[int | None]]
# the fresh audiences of some users (unknown users absent),
AudienceLoader = Callable[[AsyncSession, Iterable[int]], Awaitable[dict[int, Audience]]]


class PresenceHeartbeat(Protocol):
    """and the presence heartbeat: renew this process's sockets, lapse the others'."""

    async def __call__(self, session: AsyncSession, *, node: str, now: datetime, ttl: timedelta,
                       live: dict[str, tuple[int, PresenceStatus]]) -> None: ...


class Hub:
    """This process's sockets, the one reader of the event table, and the presence heartbeat."""

    def __init__(self, *, bus: MemoryBus, sessionmaker: async_sessionmaker[AsyncSession],
                 read_sessionmaker: async_sessionmaker[AsyncSession], settings: Settings,
                 node: str, ticket_inbox: TicketInbox, audiences: AudienceLoader,
                 presence_heartbeat: PresenceHeartbeat, local: LocalEvents | None = None) -> None:
        self.bus, self.sessionmaker, self.settings = bus, sessionmaker, settings
        # What this process committed itself: fanned out without reading the log back.
        self.local = local or LocalEvents()
        # Reading the log never takes the write lock (SQLite), so it never waits for writers.
        self.reader = read_sessionmaker
        self.node = node
        self.ticket_inbox, self.audiences = ticket_inbox, audiences
        self.presence_heartbeat = presence_heartbeat
        self.clients: dict[str, Client] = {}
        self.last_seq = 0
        self.ready = False
        self.access_version: int | None = None  # as of the sockets' audiences (see catch_up)
        self._wake = asyncio.Event()
        self._check_reset = False
        self._hole = False  # the last read of the log stopped at a seq still being committed
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._unlisten: list[Callable[[], None]] = []

    @property
    def grace(self) -> timedelta:
        """How long a dropped socket keeps its user present."""
        return timedelta(seconds=self.settings.presence_grace_seconds)

    async def start(self) -> None:
        """Listen to the bus and start the pump and the presence heartbeat."""
        self._unlisten = [self.bus.listen(self._on_news),
                          self.bus.listen_ephemeral(self._on_ephemeral)]
        self._tasks = [asyncio.create_task(self._pump(), name="hub-pump"),
                       asyncio.create_task(self._presence(), name="hub-presence")]

    async def stop(self) -> None:
        """Stop listening and the background tasks."""
        for unlisten in self._unlisten:
            unlisten()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    # ---- sockets ------------------------------------------------------------------------

    async def join(self, *, user_id: int, name: str, audience: Audience,
                   sink: DirectSocket | None = None, session_id: int | None = None) -> Client:
        """Register a socket; from now on every event it may see reaches it or its queue, until
        ``session_id`` (the sign-in session it was opened with) is revoked."""
        if not self.ready:
            await self._begin()
        client = Client(user_id=user_id, name=name, audience=audience, floor=self.last_seq,
                        queue_size=self.settings.ws_queue_size, sink=sink, session_id=session_id)
        self.clients[client.id] = client
        return client

    def leave(self, client: Client) -> None:
        """Forget a socket."""
        self.clients.pop(client.id, None)

    async def replay(self, client: Client, after: int | None,
                     send: Callable[[str], Awaitable[None]]) -> None:
        """Send ``client`` what it missed after ``after`` (or since it joined), then let it go live.

        Frames the hub queued meanwhile are deduplicated by seq when the writer drains the queue.
        """
        need_table = after is not None
        cursor = client.floor if after is None else after
        client.sent_seq = cursor
        while need_table or client.lagged:
            if client.lagged:
                client.discard_queued()
                client.lagged = False
            cursor = await self._send_from_table(client, cursor, send)
            need_table = False
        client.catching_up = False

    async def _send_from_table(self, client: Client, cursor: int,
                               send: Callable[[str], Awaitable[None]]) -> int:
        while True:
            async with self.reader() as session:
                # Past what this hub passed on: another worker's socket may have been further
                # along (it is then simply ahead, and the hub's frames up to it are skipped as
                # sent). Past the log's end, it is a seq from before the log was reset, or made
                # up: go on from when the socket joined. What committed since then is owed to it
                # (some of it may already wait in its queue, which the seq set here would skip).
                if cursor > self.last_seq and cursor > (high := (await event_log.seq_bounds(session))[1]):
                    cursor = client.sent_seq = min(client.floor, high)
                audience = (await self.audiences(session, [client.user_id])).get(client.user_id)
                batch = await event_log.live_events_after(session, cursor, BATCH)
                # Read after the batch: a prune that committed in between is seen here.
                pruned = await event_log.pruned_through(session)
            if audience is None or not audience.active:
                client.kick(CLOSE_REVOKED, "account disabled")
                return cursor
            client.audience = audience
            if cursor < pruned:
                cursor = await self._resync(client, max(client.floor, pruned), send)
                continue
            for event in batch:
                if client.audience.may_see(event):
                    await send(event.text)
                cursor = client.sent_seq = event.seq
            if len(batch) < BATCH:
                return cursor

    async def _resync(self, client: Client, cursor: int,
                      send: Callable[[str], Awaitable[None]]) -> int:
        """Events after the client's seq were deleted by retention: it must refetch its state.

        It is told so, with the seq it goes on from; everything after that is still in the log.
        """
        client.sent_seq = cursor
        await send(ephemeral_text("resync", {"after": cursor}))
        return cursor

    # ---- the pump -----------------------------------------------------------------------

    def _on_news(self, seq: int) -> None:
        if not self.ready:  # no socket: the pump only notes that (no read of the log)
            self._wake.set()
            return
        if seq <= self.last_seq:
            self._check_reset = True  # an echo, a reconnect, or a log that started over
        elif self._fan_out_own_commit():
            return
        self._wake.set()

    def _fan_out_own_commit(self) -> bool:
        """Send or queue this process's just-committed events at once; True if all done.

        It runs as the commit completes, so the frames are written (or the writers woken) before
        the request that committed goes on to build and write its response. Only the common case
        is handled here: the events follow on from what the hub sent, fit one slice, and the
        sockets' audiences still hold. Anything else is left to the pump.
        """
        if not self.ready or self._check_reset or self._lock.locked():
            return False
        run = self.local.run_after(self.last_seq, BATCH)
        if not run or len(run) > self._slice or not self._audiences_hold_for(run):
            return False
        self._offer(run)
        self.local.forget_through(self.last_seq)
        return self.last_seq >= self.bus.latest_seq

    async def _pump(self) -> None:
        while True:
            # Stopped at a hole another transaction is still committing: its news will wake us,
            # but if it rolled back none comes, so look again soon to skip the hole.
            wait = min(HOLE_RETRY, self.settings.event_poll_seconds) if self._hole else \
                self.settings.event_poll_seconds
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.catch_up()
            except Exception:
                log.exception("realtime: reading new events failed; retrying")
                await asyncio.sleep(min(1.0, self.settings.event_poll_seconds))

    async def catch_up(self) -> None:
        """Read what was committed since the last look, once, and offer it to every socket."""
        async with self._lock:
            if not self.clients:
                # Nobody to pass events on to: rather than read them, the next socket to join
                # starts from the log's settled end (``_begin``), as the first one did.
                self.ready, self._check_reset = False, False
                self.local.clear()
                return
            if not self.ready:
                await self._start_at_settled_end()
            while True:
                # This process's own commits are at hand; the log is read for anything else.
                local = [] if self._check_reset else self.local.run_after(self.last_seq, BATCH)
                if local and self._audiences_hold_for(local):
                    batch = local  # nothing to read: the screen pop's path to the sockets
                else:
                    async with self.reader() as session:
                        if self._check_reset:
                            self._check_reset = False
                            await self._detect_reset(session)
                        if local:
                            batch = local
                        else:
                            batch, self._hole = await event_log.settled_events_after(
                                session, self.last_seq, BATCH)
                        if batch and self.clients:
                            await self._refresh_audiences(session)
                await self._fan_out(batch)
                self.local.forget_through(self.last_seq)
                if local and self.last_seq < self.bus.latest_seq:
                    continue  # someone else committed after our run: read on from the log
                if len(batch) < BATCH:
                    return

    async def _begin(self) -> None:
        """Start passing events on from the log's settled end (a socket is about to join)."""
        async with self._lock:
            if not self.ready:
                await self._start_at_settled_end()

    async def _start_at_settled_end(self) -> None:
        async with self.reader() as session:
            self.last_seq = await event_log.settled_high(session)
        self.ready = True

    async def _detect_reset(self, session: AsyncSession) -> None:
        # Seqs never go back in a real log; an emptied one (tests, a restore) must not leave
        # the hub waiting for seqs it already passed.
        low, high = await event_log.seq_bounds(session)
        if high < self.last_seq:
            log.warning("realtime: event log went back from %s to %s", self.last_seq, high)
            self.local.clear()
            self.last_seq = max(low - 1, 0)

    def _audiences_hold_for(self, batch: list[LiveEvent]) -> bool:
        # Each of our own commits saw the access version in its transaction: when it is the
        # one the sockets' audiences were read at, nobody's memberships or role changed since.
        return self.access_version is not None and all(
            event.access_version == self.access_version for event in batch)

    async def _refresh_audiences(self, session: AsyncSession) -> None:
        # Membership and roles change; read them once per batch for all sockets together. The
        # version first: a change committed between the two reads then forces another refresh.
        # Read after the batch, an unchanged version means no change committed before any of
        # its events: the audiences read at that version still hold (another process's events
        # carry no version of their own, so this is where their batches skip the read).
        version = await event_log.access_version(session)
        if version is not None and version == self.access_version:
            return
        self.access_version = version
        asked = {c.user_id for c in self.clients.values()}
        fresh = await self.audiences(session, asked)
        for client in list(self.clients.values()):
            if client.user_id not in asked:
                continue  # joined while we asked: its audience was read at the handshake
            audience = fresh.get(client.user_id)
            if audience is None or not audience.active:
                client.audience = Audience(client.user_id, False)
                client.kick(CLOSE_REVOKED, "account disabled")
            else:
                client.audience = audience

    @property
    def _slice(self) -> int:
        return max(1, self.settings.ws_queue_size // 2)

    async def _fan_out(self, batch: list[LiveEvent]) -> None:
        # In slices of half a queue, yielding between them: a writer whose socket keeps up
        # empties its queue meanwhile, so only a socket that really stalls overflows.
        for start in range(0, len(batch), self._slice):
            if start:
                await asyncio.sleep(0)
            self._offer(batch[start:start + self._slice])

    def _offer(self, chunk: list[LiveEvent]) -> None:
        run = EncodedRun(chunk)
        ended = _ended_sessions(chunk)
        for client in list(self.clients.values()):
            if ended and client.session_id in ended:
                client.kick(CLOSE_REVOKED, "signed out")  # nothing more reaches it
                continue
            client.offer(run)
        self.last_seq = chunk[-1].seq

    # ---- ephemeral frames ---------------------------------------------------------------

    def publish_ephemeral(self, *, inbox_id: int | None, exclude_user: int | None, text: str) -> None:
        """Send a momentary frame to every process's sockets that work ``inbox_id``."""
        self.bus.publish_ephemeral({"inbox_id": inbox_id, "exclude_user": exclude_user, "text": text})

    def _on_ephemeral(self, envelope: dict[str, Any]) -> None:
        text, inbox_id, exclude = envelope.get("text"), envelope.get("inbox_id"), envelope.get("exclude_user")
        if not isinstance(text, str) or not (inbox_id is None or isinstance(inbox_id, int)):
            return
        for client in list(self.clients.values()):
            if client.user_id != exclude and client.audience.may_see_inbox(inbox_id):
                client.offer_ephemeral(text)

    # ---- presence -----------------------------------------------------------------------

    def presence_interval(self) -> float:
        """How often this process renews its sockets and sweeps lapsed ones."""
        return min(10.0, max(0.05, self.settings.presence_grace_seconds / 3))

    async def _presence(self) -> None:
        while True:
            await asyncio.sleep(self.presence_interval())
            started = time.monotonic()
            try:
                live = {c.id: (c.user_id, c.status) for c in self.clients.values() if c.registered}
                async with self.sessionmaker() as session:
                    await self.presence_heartbeat(session, node=self.node, now=utcnow(),
                                                  ttl=self.grace, live=live)
                    await session.commit()
            except Exception:
                log.exception("realtime: presence heartbeat failed; retrying")
            if time.monotonic() - started > self.presence_interval():
                log.warning("realtime: presence heartbeat is slower than its interval")


def _ended_sessions(chunk: list[LiveEvent]) -> set[int]:
    """The sign-in sessions ``chunk`` says were revoked (``session.revoked``)."""
    return {int(found) for event in chunk if event.type == SessionRevoked.type
            for found in event.data.get("session_ids", ())}
