"""One socket as the hub sees it: who is behind it, what it was sent, and its bounded queue."""

import asyncio
import contextlib
from uuid import uuid4

from helpdesk.realtime.frames import Audience
from helpdesk.realtime.models import PresenceStatus
from helpdesk.realtime.wire import DirectSocket, EncodedRun

__all__ = ["CLOSE_REVOKED", "CLOSE_SLOW", "Client", "Item"]

Item = tuple[int | None, str]  # (seq or None for ephemeral frames, the frame's text)

CLOSE_SLOW = 4429
CLOSE_REVOKED = 4403


class Client:
    """One socket as the hub sees it: who it is, what it was sent, and its bounded queue.

    It starts out catching up (replaying from the table); while so, a full queue only means
    "read the table again". Once live, a full queue means the socket is too slow: it is kicked,
    and resumes on reconnect.

    A live socket with nothing queued or being written is sent its events directly (``sink``):
    no queue, no writer task to wake. Anything else (a frame in flight, a paused transport, a
    server whose socket we cannot write to) goes through the queue and the writer, in order.
    """

    def __init__(self, *, user_id: int, name: str, audience: Audience, floor: int,
                 queue_size: int, sink: DirectSocket | None = None,
                 session_id: int | None = None) -> None:
        self.id = uuid4().hex
        self.user_id, self.name, self.audience = user_id, name, audience
        self.session_id = session_id  # the sign-in session it was opened with
        self.floor = floor  # the hub had fanned out everything up to here when we joined
        self.sent_seq = floor
        self.queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=queue_size)
        self.sink = sink
        self.writing = False  # the writer holds a frame it has not finished writing
        self.sent_directly = 0  # events written through ``sink``
        self.catching_up = True
        self.lagged = False
        self.status = PresenceStatus.online
        self.registered = False  # its presence row exists
        self.kicked: tuple[int, str] | None = None
        self.kick_event = asyncio.Event()

    def offer(self, run: EncodedRun) -> None:
        """Send or queue the events of ``run`` this user may see and has not had."""
        due = [event for event in run.events
               if event.seq > self.sent_seq and self.audience.may_see(event)]
        if not due:
            return
        if self._idle() and self.sink is not None and self.sink.write(run.frames_of(due)):
            self.sent_seq = due[-1].seq
            self.sent_directly += len(due)
            return
        for event in due:
            try:
                self.queue.put_nowait((event.seq, event.text))
            except asyncio.QueueFull:
                if self.catching_up:
                    self.lagged = True
                else:
                    self.kick(CLOSE_SLOW, "too slow; resume to catch up")
                return

    def _idle(self) -> bool:
        # Live, and nothing ahead of a direct write: frames must reach the socket in seq order.
        return not (self.catching_up or self.writing or self.kicked or self.queue.qsize())

    def offer_ephemeral(self, text: str) -> None:
        """Queue a momentary frame; dropped while catching up or when the queue is full."""
        if not self.catching_up:
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait((None, text))

    def reply(self, text: str) -> None:
        """Queue an answer to the client (pong, error) whatever the state."""
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait((None, text))

    def kick(self, code: int, reason: str) -> None:
        """Ask the socket's handler to close with ``code``."""
        if self.kicked is None:
            self.kicked = (code, reason)
            self.kick_event.set()

    def discard_queued(self) -> None:
        """Forget queued frames (the table has them all) after falling behind."""
        while not self.queue.empty():
            self.queue.get_nowait()
