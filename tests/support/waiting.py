"""Waiting on an observable condition instead of sleeping for a guessed while."""

import asyncio
import inspect
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def wait_until(check: Callable[[], T | Awaitable[T]], within: float = 15.0,
                     interval: float = 0.05) -> T:
    """Poll ``check`` (plain or async) until it returns something truthy, and return that."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s (last: {result!r})")
        await asyncio.sleep(interval)


def wait_until_sync(check: Callable[[], T], within: float = 10.0, interval: float = 0.025) -> T:
    """``wait_until`` for code outside an event loop (subprocesses, threads)."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s (last: {result!r})")
        threading.Event().wait(interval)
