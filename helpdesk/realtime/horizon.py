"""How far readers of the event log may read on PostgreSQL, where seqs are not commit order.

There seqs come from a sequence (``storage.counters``), so a transaction may commit seq 7 while
another still holds seq 6. A reader therefore reads a run of the log only as far as it has no
holes, except holes it knows will never fill: everything up to ``Horizon.settled`` is decided
(committed or gone for good). That keeps the log's promise — a reader that saw seq N saw
everything before it — and every reader sees the same order, with no lock held across commits.

``settled`` moves by probes: a probe reads the sequence's last value L, then the transactions
still holding seqs (W). Every seq up to L belongs to a transaction that had finished or is in
W; once a later probe finds none of W still there, every seq up to L is decided. Holders are
only transactions between taking their seqs and their commit, so W empties within a commit's
time; a hole that outlives it was rolled back and is skipped.

SQLite hands out seqs under its one write lock, in commit order: nothing here applies to it.
"""

import asyncio
import weakref
from collections.abc import Sequence

from sqlalchemy import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.storage.counters import SequenceProbe, probe_event_sequence


class Horizon:
    """One process's knowledge of which seqs of one database are decided."""

    def __init__(self) -> None:
        self.settled = 0
        self._probe: SequenceProbe | None = None
        self._lock = asyncio.Lock()

    def readable(self, after: int, seqs: Sequence[int]) -> int:
        """How many of ``seqs`` (ascending, all after ``after``) may be read: up to the first
        one with a hole before it that is not yet decided."""
        count, previous = 0, after
        for seq in seqs:
            if seq != previous + 1 and seq - 1 > self.settled:
                break
            count, previous = count + 1, seq
        return count

    async def advance(self, session: AsyncSession) -> None:
        """Probe, and move ``settled`` as far as the probes so far allow."""
        async with self._lock:  # one probe at a time: each compares with one read before it
            now = await probe_event_sequence(session)
            if not now.writers:
                self.settled = max(self.settled, now.last)
            elif self._probe is not None and not (self._probe.writers & now.writers):
                self.settled = max(self.settled, self._probe.last)
            elif self._probe is not None:
                return  # keep the older probe until its writers are done: it settles first
            self._probe = now

    async def settle(self, session: AsyncSession) -> int:
        """Wait until every seq handed out so far is decided; the sequence's value then.

        The wait is a commit's time (callers bound it with ``asyncio.timeout`` if they must).
        """
        first = await probe_event_sequence(session)
        pending = first.writers
        while pending:  # polled: the holders are other processes' transactions
            await asyncio.sleep(0.005)
            pending = pending & (await probe_event_sequence(session)).writers
        self.settled = max(self.settled, first.last)
        return first.last


_HORIZONS: "weakref.WeakKeyDictionary[Engine, Horizon]" = weakref.WeakKeyDictionary()


def horizon_of(session: AsyncSession) -> Horizon:
    """The horizon of the database ``session`` reads (one per engine in the process)."""
    bind = session.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    assert isinstance(engine, Engine)
    found = _HORIZONS.get(engine)
    if found is None:
        found = _HORIZONS[engine] = Horizon()
    return found
