"""Counters that slow down password guessing: failures per account and address, attempts per address.

Two implementations behind one interface: in this process (one server, the embedded default) or
in Redis when ``HELPDESK_REDIS_URL`` is set, so every worker and host counts the same attempts.
If Redis cannot be reached the process counts on its own rather than refusing every sign-in.

Accounts are named by a hash of their folded email, so neither Redis nor memory holds addresses
of people; unknown emails are counted exactly like known ones.
"""

import hashlib
import logging
import time
from typing import Protocol

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from helpdesk.config import Settings

log = logging.getLogger(__name__)
MAX_KEYS = 100_000  # memory: past this many keys, expired ones are swept before adding


def account_key(folded_email: str) -> str:
    """The key failures against one account (known or not) are counted under."""
    return hashlib.sha256(folded_email.encode()).hexdigest()[:32]


class Counters(Protocol):
    async def fail(self, account: str, address: str, ttl: float) -> tuple[int, int]:
        """Count a failure; (failures from ``address``, addresses that failed) for the account."""
        ...

    async def failures(self, account: str, address: str) -> tuple[int, float]:
        """Failures from ``address`` against the account and the seconds until they are forgotten."""
        ...

    async def forget(self, account: str, address: str | None = None) -> None:
        """Forget one address's failures against the account, or all of them."""
        ...

    async def hit(self, bucket: str, window: float) -> int:
        """Count an attempt in ``bucket``; how many there were in the current window."""
        ...

    async def close(self) -> None:
        ...


class MemoryCounters:
    """Counters in this process's memory; keys expire ``ttl`` seconds after their last failure."""

    def __init__(self) -> None:
        self._failed: dict[str, tuple[float, dict[str, int]]] = {}
        self._hits: dict[str, tuple[float, int]] = {}

    def _sweep(self) -> None:
        now = time.monotonic()
        for table in (self._failed, self._hits):
            if len(table) > MAX_KEYS:
                for key in [k for k, (until, _) in table.items() if until <= now]:
                    del table[key]

    async def fail(self, account: str, address: str, ttl: float) -> tuple[int, int]:
        self._sweep()
        until, by_address = self._failed.get(account, (0.0, {}))
        if until <= time.monotonic():
            by_address = {}
        by_address[address] = by_address.get(address, 0) + 1
        self._failed[account] = (time.monotonic() + ttl, by_address)
        return by_address[address], len(by_address)

    async def failures(self, account: str, address: str) -> tuple[int, float]:
        until, by_address = self._failed.get(account, (0.0, {}))
        left = until - time.monotonic()
        return (by_address.get(address, 0), left) if left > 0 else (0, 0.0)

    async def forget(self, account: str, address: str | None = None) -> None:
        if address is None:
            self._failed.pop(account, None)
        elif account in self._failed:
            self._failed[account][1].pop(address, None)

    async def hit(self, bucket: str, window: float) -> int:
        self._sweep()
        now = time.monotonic()
        until, count = self._hits.get(bucket, (0.0, 0))
        if until <= now:
            until, count = now + window, 0
        self._hits[bucket] = (until, count + 1)
        return count + 1

    async def close(self) -> None:
        """Nothing to close in-process."""


class RedisCounters:
    """The same counters in Redis: a hash of failures by address per account, a key per bucket."""

    def __init__(self, url: str, prefix: str) -> None:
        self.redis = aioredis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self.prefix = prefix
        self.fallback = MemoryCounters()

    def _failed(self, account: str) -> str:
        return f"{self.prefix}:login:failed:{account}"

    async def fail(self, account: str, address: str, ttl: float) -> tuple[int, int]:
        key = self._failed(account)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hincrby(key, address, 1)
                pipe.expire(key, max(1, round(ttl)))
                pipe.hlen(key)
                count, _, addresses = await pipe.execute()
            return int(count), int(addresses)
        except RedisError as exc:
            _warn(exc)
            return await self.fallback.fail(account, address, ttl)

    async def failures(self, account: str, address: str) -> tuple[int, float]:
        key = self._failed(account)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hget(key, address)
                pipe.pttl(key)
                count, left_ms = await pipe.execute()
        except RedisError as exc:
            _warn(exc)
            return await self.fallback.failures(account, address)
        return (int(count), left_ms / 1000) if count is not None and left_ms > 0 else (0, 0.0)

    async def forget(self, account: str, address: str | None = None) -> None:
        await self.fallback.forget(account, address)
        try:
            if address is None:
                await self.redis.delete(self._failed(account))
            else:
                await self.redis.hdel(self._failed(account), address)
        except RedisError as exc:
            _warn(exc)

    async def hit(self, bucket: str, window: float) -> int:
        # A fixed window: the key is named after the window it counts, and expires with it.
        index = int(time.time() // window)
        key = f"{self.prefix}:login:hits:{bucket}:{index}"
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, max(1, round(window)) + 1)
                count, _ = await pipe.execute()
            return int(count)
        except RedisError as exc:
            _warn(exc)
            return await self.fallback.hit(bucket, window)

    async def close(self) -> None:
        await self.redis.aclose()


def _warn(exc: RedisError) -> None:
    log.warning("sign-in counters: Redis unavailable (%s); counting in this process", exc)


def create_counters(settings: Settings) -> Counters:
    """Redis counters when Redis is configured, else this process's."""
    if settings.redis_url:
        return RedisCounters(settings.redis_url, settings.redis_channel)
    return MemoryCounters()
