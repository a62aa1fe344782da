"""Limits on what one client may send: body size (413) and rate (429, or a socket's close code).

``Limiter`` is the one interface for counting hits per key in fixed windows; it is kept in this
process by default and in Redis when ``HELPDESK_REDIS_URL`` is set, so every process of a
deployment shares the counts.
"""

import logging
import math
import time
from dataclasses import dataclass
from typing import Protocol

from redis import asyncio as aioredis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuse bodies larger than ``max_bytes`` by Content-Length, or as they stream in."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _too_large(send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _too_large(send)


async def _too_large(send: Send) -> None:
    body = b'{"detail":"request body too large"}'
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


# ---- rate limits ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    """At most ``hits`` in each window of ``seconds``."""

    hits: int
    seconds: float

    @classmethod
    def parse(cls, text: str) -> "Rate":
        """``"20/60"``: 20 hits a minute."""
        hits, _, seconds = text.partition("/")
        rate = cls(int(hits), float(seconds))
        if rate.hits < 1 or rate.seconds <= 0:
            raise ValueError(f"a rate is hits/seconds, both positive: {text!r}")
        return rate


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int = 0  # whole seconds until the window ends, when refused


class Limiter(Protocol):
    """Counts hits per (bucket, key) in fixed windows; shared by every process when in Redis."""

    async def hit(self, bucket: str, key: str, rate: Rate) -> Decision:
        """Count one hit; refused once ``rate.hits`` were counted in the current window."""
        ...

    async def close(self) -> None:
        ...


def _window(rate: Rate, now: float) -> tuple[int, int]:
    """(window number, whole seconds until it ends) for ``now``."""
    number = int(now // rate.seconds)
    return number, max(1, math.ceil((number + 1) * rate.seconds - now))


class MemoryLimiter:
    """This process's counts: right for one process (the embedded default)."""

    MAX_KEYS = 100_000  # past this, counts of ended windows are dropped

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, float], tuple[int, int]] = {}

    async def hit(self, bucket: str, key: str, rate: Rate) -> Decision:
        number, left = _window(rate, time.time())
        slot = (bucket, key, rate.seconds)
        seen, count = self._counts.get(slot, (number, 0))
        count = count + 1 if seen == number else 1
        if len(self._counts) >= self.MAX_KEYS and slot not in self._counts:
            self._forget_ended()
        self._counts[slot] = (number, count)
        return Decision(True) if count <= rate.hits else Decision(False, left)

    def _forget_ended(self) -> None:
        now = time.time()
        self._counts = {slot: (number, count) for slot, (number, count) in self._counts.items()
                        if number == int(now // slot[2])}

    async def close(self) -> None:
        self._counts.clear()


class RedisLimiter:
    """Counts in Redis (``INCR`` on a key per window, expiring with it), shared by every process.

    Redis being away must not stop webhooks or chat: hits are then allowed, with a warning.
    """

    def __init__(self, url: str, prefix: str) -> None:
        self.client = aioredis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        self.prefix = prefix
        self._warned = 0.0

    async def hit(self, bucket: str, key: str, rate: Rate) -> Decision:
        number, left = _window(rate, time.time())
        name = f"{self.prefix}:rate:{bucket}:{rate.seconds:g}:{key}:{number}"
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.incr(name)
                pipe.expire(name, left + 1)
                count, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            if time.monotonic() - self._warned > 60:
                self._warned = time.monotonic()
                log.warning("rate limits: Redis unavailable (%s); allowing requests", exc)
            return Decision(True)
        return Decision(True) if int(count) <= rate.hits else Decision(False, left)

    async def close(self) -> None:
        await self.client.aclose()


def create_limiter(redis_url: str | None, prefix: str) -> Limiter:
    """Redis when ``HELPDESK_REDIS_URL`` is set (several processes), else in-process."""
    return RedisLimiter(redis_url, prefix) if redis_url else MemoryLimiter()


def client_address(scope: Scope) -> str:
    """The peer's address (the proxy's own, unless uvicorn trusts its forwarded headers)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


# Webhook families limited per source address: the path's first two segments, so a CTI token
# in the path never becomes part of a key.
WEBHOOK_PREFIXES = ("/webhooks/", "/telephony/", "/api/inbound")


class WebhookRateMiddleware:
    """429 with Retry-After when one address posts to one webhook family too often."""

    def __init__(self, app: ASGIApp, limiter: Limiter, rate: Rate) -> None:
        self.app = app
        self.limiter = limiter
        self.rate = rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith(WEBHOOK_PREFIXES):
            bucket = "/".join(path.split("/")[:3])
            decision = await self.limiter.hit(bucket, client_address(scope), self.rate)
            if not decision.allowed:
                await too_many(send, decision.retry_after)
                return
        await self.app(scope, receive, send)


async def too_many(send: Send, retry_after: int) -> None:
    """A 429 answer telling when to try again."""
    body = b'{"detail":"too many requests; try again later"}'
    await send({"type": "http.response.start", "status": 429,
                "headers": [(b"content-type", b"application/json"),
                            (b"retry-after", str(retry_after).encode()),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
