"""Frames written straight to a socket's transport, for the live fan-out.

Through the ASGI interface every frame to every socket costs a task switch to that socket's
writer, Starlette's and uvicorn's send, and the ``websockets`` protocol building the same header
again. A server's text frame is unmasked and, without permessage-deflate, uncompressed: the same
bytes for every socket. So an event is encoded once (``text_frame``) and, when a socket has
nothing else in flight, those bytes are written to its transport from the fan-out itself.

This module is the only place that knows uvicorn's sans-I/O protocol (``ws="websockets-sansio"``)
and Starlette's hold on the ASGI ``send``. Any other server, or a socket that is not plainly
open and writable, gets no ``DirectSocket`` or a ``False`` from ``write``: the caller then goes
through the ASGI ``send`` as before, so backpressure, the close handshake and the library's
own control frames stay the server's business. Only whole frames are written, each in one
``transport.write``, which is how uvicorn writes its own (pongs, closes): frames never interleave.
"""

import logging
from collections.abc import Iterable, Sequence
from typing import Protocol

from starlette.websockets import WebSocket
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from helpdesk.realtime.frames import LiveEvent

log = logging.getLogger(__name__)


class DirectSocket(Protocol):
    """A socket we can write whole frames to directly, when it is open and not backed up."""

    def write(self, frames: bytes) -> bool:
        """Write ``frames`` (whole encoded frames) now; False, writing nothing, if it cannot."""
        ...


def text_frame(text: str) -> bytes:
    """``text`` as one server → client text frame on the wire (FIN, unmasked, uncompressed)."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False)


def _joined(frames: Iterable[bytes]) -> bytes:
    return b"".join(frames)  # several whole frames, one write


class EncodedRun:
    """A run of events as frames on the wire, each encoded once for all the sockets."""

    __slots__ = ("_each", "_joined", "events")

    def __init__(self, events: Sequence[LiveEvent]) -> None:
        self.events = events
        self._each: dict[int, bytes] = {}
        self._joined: dict[tuple[int, ...], bytes] = {}

    def frames_of(self, due: Sequence[LiveEvent]) -> bytes:
        """The frames of ``due`` (some of the run's events, in order) as one write."""
        # Most sockets take the whole run, or one or two events of it, each named by its first
        # and last seq (and its length); others by every seq, after a -1 no seq can be.
        key = (due[0].seq, due[-1].seq, len(due)) if len(due) in (1, 2, len(self.events)) \
            else (-1, *(event.seq for event in due))
        frames = self._joined.get(key)
        if frames is None:
            frames = self._joined[key] = _joined(self._frame(event) for event in due)
        return frames

    def _frame(self, event: LiveEvent) -> bytes:
        frame = self._each.get(event.seq)
        if frame is None:
            frame = self._each[event.seq] = text_frame(event.text)
        return frame


class _SansIOSocket:
    """A socket served by uvicorn's ``websockets-sansio`` protocol."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: WebSocketsSansIOProtocol) -> None:
        self._protocol = protocol

    def write(self, frames: bytes) -> bool:
        protocol = self._protocol
        # What uvicorn's own send checks, and what it would wait for: open both ways (no close
        # sent or received), the handshake done, and the transport not paused by a full buffer.
        if (protocol.close_sent or protocol.disconnected or not protocol.handshake_complete
                or protocol.initial_response is not None or not protocol.writable.is_set()
                or protocol.conn.state is not State.OPEN or protocol.transport.is_closing()):
            return False
        try:
            protocol.transport.write(frames)
        except (OSError, RuntimeError):
            # A transport that broke since the checks: the socket's own send will find it so,
            # and this must not break the fan-out to the others.
            log.warning("realtime: a direct write failed; the socket falls back to its writer",
                        exc_info=True)
            return False
        return True


def direct_socket(websocket: WebSocket) -> DirectSocket | None:
    """The socket behind ``websocket`` if it can be written to directly; None otherwise.

    Known: uvicorn's sans-I/O protocol with no extension negotiated (a compressed socket's
    frames differ per socket). ``send`` is the protocol's own method when nothing wraps it.
    """
    send = getattr(websocket, "_send", None)
    protocol = getattr(send, "__self__", None)
    if not isinstance(protocol, WebSocketsSansIOProtocol) or getattr(send, "__func__", None) \
            is not WebSocketsSansIOProtocol.send:
        return None
    if protocol.conn.extensions or protocol.conn.state is not State.OPEN:
        return None
    return _SansIOSocket(protocol)
