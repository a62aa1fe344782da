"""A write session waiting for another process's SQLite write lock leaves the event loop free."""

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

from sqlalchemy import text

from helpdesk.db import create_engine, create_sessionmaker

HELD_SECONDS = 0.6


async def _largest_stall(started: asyncio.Event, stop: asyncio.Event) -> float:
    """The longest the loop went without running this task, until ``stop``."""
    largest, last = 0.0, time.monotonic()
    started.set()
    while not stop.is_set():
        await asyncio.sleep(0.005)  # the probe: how late this wakes up is what is measured
        now = time.monotonic()
        largest, last = max(largest, now - last), now
    return largest


async def test_a_writer_waits_for_another_process_without_stopping_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # the other process
    other.execute("PRAGMA journal_mode=WAL")
    other.execute("CREATE TABLE note (body TEXT)")
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO note VALUES ('theirs')")
        threading.Timer(HELD_SECONDS, other.commit).start()
        started, stop = asyncio.Event(), asyncio.Event()
        watcher = asyncio.create_task(_largest_stall(started, stop))
        await started.wait()
        began = time.monotonic()
        async with create_sessionmaker(engine)() as session:
            await session.execute(text("INSERT INTO note VALUES ('ours')"))
            await session.commit()
        waited = time.monotonic() - began
        stop.set()
        stall = await watcher
        async with create_sessionmaker(engine, read_only=True)() as session:
            notes = list(await session.scalars(text("SELECT body FROM note ORDER BY rowid")))
    finally:
        await engine.dispose()
        other.close()
    assert notes == ["theirs", "ours"]
    assert waited >= HELD_SECONDS * 0.9  # it did wait for the lock...
    assert stall < 0.2, stall  # ...while the loop kept running other tasks
