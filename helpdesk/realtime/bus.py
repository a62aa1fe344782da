"""The bus: after a commit it tells every process that there is news (and which leased queues
the commit gave work, ``storage.wakes``), and carries ephemeral frames.

It never carries the events themselves: the event table is the truth and each process reads it.
A lost notification only delays delivery until the next poll (see ``hub.Hub``).
"""

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from helpdesk.config import Settings

log = logging.getLogger(__name__)

NewsListener = Callable[[int], None]
FrameListener = Callable[[dict[str, Any]], None]
QueueListener = Callable[[], None]


class MemoryBus:
    """Fan-out of "events up to seq N are committed" to every listener in this process, and of
    "queue Q has work" to that queue's listeners."""

    def __init__(self) -> None:
        self._listeners: set[NewsListener] = set()
        self._frame_listeners: set[FrameListener] = set()
        self._queue_listeners: dict[str, set[QueueListener]] = {}
        self.latest_seq = 0

    def notify(self, seq: int) -> None:
        """Called after a commit; safe from sync code running on the event loop, never raises."""
        self.latest_seq = max(self.latest_seq, seq)
        for listener in list(self._listeners):
            _call(listener, seq)

    def publish_ephemeral(self, envelope: dict[str, Any]) -> None:
        """Hand a frame that is not stored (viewing, typing) to this process's listeners."""
        for listener in list(self._frame_listeners):
            _call(listener, envelope)

    def wake_queues(self, names: Iterable[str]) -> None:
        """Called after a commit that gave the queues ``names`` work (``storage.wakes``)."""
        for name in names:
            for listener in list(self._queue_listeners.get(name, ())):
                _call(listener)

    def _wake_every_queue(self) -> None:
        self.wake_queues(list(self._queue_listeners))

    def listen_queue(self, name: str, callback: QueueListener) -> Callable[[], None]:
        """Register ``callback`` for when queue ``name`` may have work; returns the unregistering
        function."""
        self._queue_listeners.setdefault(name, set()).add(callback)
        return lambda: self._queue_listeners.get(name, set()).discard(callback)

    def listen(self, callback: NewsListener) -> Callable[[], None]:
        """Register ``callback`` for news (0 means "look anyway"); returns the unregistering function."""
        self._listeners.add(callback)
        return lambda: self._listeners.discard(callback)

    def listen_ephemeral(self, callback: FrameListener) -> Callable[[], None]:
        """Register ``callback`` for ephemeral frames; returns the unregistering function."""
        self._frame_listeners.add(callback)
        return lambda: self._frame_listeners.discard(callback)

    async def start(self) -> None:
        """Nothing to connect to in-process."""

    async def stop(self) -> None:
        """Nothing to close in-process."""
        await asyncio.sleep(0)


def _call(listener: Callable[..., None], *value: Any) -> None:
    # A listener's bug must not surface in the request whose commit triggered it.
    try:
        listener(*value)
    except Exception:
        log.exception("bus listener failed")


class RedisBus(MemoryBus):
    """The memory bus plus Redis pub/sub, so every process (and host) hears every commit.

    Local listeners hear at once; Redis is only for the other processes. Publishing happens in a
    background task, so a request never waits on Redis or fails because it is away. Both the
    publisher and the single subscriber reconnect with backoff; each (re)subscription tells the
    listeners to look at the event table, since pub/sub drops what was sent while away.
    """

    def __init__(self, url: str, *, channel: str, node: str, reconnect_max: float = 5.0) -> None:
        super().__init__()
        self.url, self.channel, self.node = url, channel, node
        self.reconnect_max = reconnect_max
        self.connected = False
        self._pending_seq = 0
        self._published_seq = 0
        self._pending_queues: set[str] = set()
        self._frames: deque[str] = deque(maxlen=1000)
        self._work = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def notify(self, seq: int) -> None:
        """Tell local listeners now and queue the seq for the other processes."""
        super().notify(seq)
        self._pending_seq = max(self._pending_seq, seq)
        self._work.set()

    def wake_queues(self, names: Iterable[str]) -> None:
        """Wake local listeners now and queue the names for the other processes."""
        names = list(names)
        super().wake_queues(names)
        self._pending_queues.update(names)
        self._work.set()

    def publish_ephemeral(self, envelope: dict[str, Any]) -> None:
        """Deliver locally now; queue for the other processes (dropped if Redis is away)."""
        super().publish_ephemeral(envelope)
        self._frames.append(json.dumps({"o": self.node, "e": envelope}, ensure_ascii=False))
        self._work.set()

    async def start(self) -> None:
        """Start the subscriber and the publisher; neither waits for Redis to be up."""
        self._tasks = [asyncio.create_task(self._subscribe_forever(), name="bus-subscribe"),
                       asyncio.create_task(self._publish_forever(), name="bus-publish")]

    async def stop(self) -> None:
        """Stop both tasks and their connections."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def _client(self, **kwargs: Any) -> "aioredis.Redis":
        return aioredis.from_url(self.url, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0),
                                 **kwargs)

    async def _subscribe_forever(self) -> None:
        delay, warned = 0.05, False
        while True:
            try:
                await self._subscribe_once()
            except (RedisError, OSError) as exc:
                if self.connected or not warned:
                    log.warning("redis bus: %s; reconnecting", exc or type(exc).__name__)
                warned = True
            if self.connected:
                delay = 0.05
            self.connected = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.reconnect_max)

    async def _subscribe_once(self) -> None:
        client = self._client(health_check_interval=10)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
            self.connected = True
            log.info("redis bus: subscribed to %s", self.channel)
            super().notify(0)  # whatever was published while we were away is in the table
            self._wake_every_queue()  # and the queues may have missed wakes meanwhile
            self._work.set()  # and whatever we could not publish can go now
            while True:
                message = await pubsub.get_message(timeout=5.0)
                if message is not None and message.get("type") == "message":
                    self._receive(message["data"])
        finally:
            await pubsub.aclose()
            await client.aclose()

    def _receive(self, raw: bytes | str) -> None:
        try:
            payload = json.loads(raw)
        except ValueError:
            log.warning("redis bus: ignoring a message that is not JSON")
            return
        if not isinstance(payload, dict) or payload.get("o") == self.node:
            return  # our own echo: local listeners heard it already
        if isinstance(payload.get("seq"), int):
            super().notify(payload["seq"])
        elif isinstance(payload.get("w"), list):
            super().wake_queues(name for name in payload["w"] if isinstance(name, str))
        elif isinstance(payload.get("e"), dict):
            super().publish_ephemeral(payload["e"])

    async def _publish_forever(self) -> None:
        client = self._client(socket_timeout=2)
        delay = 0.05
        try:
            while True:
                await self._work.wait()
                self._work.clear()
                try:
                    await self._publish_pending(client)
                    delay = 0.05
                except (RedisError, OSError):
                    self._frames.clear()  # viewing/typing are momentary: stale ones are noise
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.reconnect_max)
                    self._work.set()  # keep the seq pending until Redis answers
        finally:
            await client.aclose()

    async def _publish_pending(self, client: "aioredis.Redis") -> None:
        while self._frames:
            await client.publish(self.channel, self._frames[0])
            self._frames.popleft()
        if self._pending_queues:
            names = sorted(self._pending_queues)
            await client.publish(self.channel, json.dumps({"o": self.node, "w": names}))
            self._pending_queues.difference_update(names)
        seq = self._pending_seq
        if seq > self._published_seq:
            await client.publish(self.channel, json.dumps({"o": self.node, "seq": seq}))
            self._published_seq = seq


def create_bus(settings: Settings, node: str) -> MemoryBus:
    """Redis when ``HELPDESK_REDIS_URL`` is set, else in-process."""
    if settings.redis_url:
        return RedisBus(settings.redis_url, channel=f"{settings.redis_channel}:events", node=node,
                        reconnect_max=settings.redis_reconnect_max_seconds)
    return MemoryBus()
