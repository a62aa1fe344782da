"""The in-process bus: after a commit it tells this process's listeners that there is news."""

import asyncio
from collections.abc import Callable


class MemoryBus:
    """Fan-out of "events up to seq N are committed" to every listener in this process."""

    def __init__(self) -> None:
        self._listeners: set[Callable[[int], None]] = set()
        self.latest_seq = 0

    def notify(self, seq: int) -> None:
        """Called after a commit; safe from sync code running on the event loop."""
        self.latest_seq = max(self.latest_seq, seq)
        for listener in list(self._listeners):
            listener(seq)

    def listen(self, callback: Callable[[int], None]) -> Callable[[], None]:
        """Register ``callback``; returns the function that unregisters it."""
        self._listeners.add(callback)
        return lambda: self._listeners.discard(callback)

    async def start(self) -> None:
        """Nothing to connect to in-process."""

    async def stop(self) -> None:
        """Nothing to close in-process."""
        await asyncio.sleep(0)
