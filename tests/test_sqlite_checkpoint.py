"""SQLite's write-ahead log is copied back by a background thread, never inside a commit."""

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from helpdesk.db import create_engine, create_sessionmaker
from helpdesk.storage import sqlite

PAGES = 1_500  # more than the 1,000 pages at which SQLite would checkpoint inside a commit


def _size(path: Path) -> int:
    return path.stat().st_size


def _wait_for_file_to_hold(path: Path, pages: int, seconds: float = 5.0) -> int:
    """The database file's size once it holds ``pages`` pages, or after ``seconds``."""
    deadline = time.monotonic() + seconds
    while _size(path) < pages * 3_000 and time.monotonic() < deadline:
        time.sleep(0.05)  # the checkpointer is a thread: the loop has nothing to run meanwhile
    return _size(path)


async def test_a_large_commit_does_not_checkpoint_inline(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite, "CHECKPOINT_INTERVAL_SECONDS", 3600.0)  # the thread stays idle
    path = tmp_path / "inline.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with create_sessionmaker(engine)() as session:
            await session.execute(text("CREATE TABLE blob (body BLOB)"))
            await session.execute(text("INSERT INTO blob VALUES (randomblob(3000))"))
            await session.commit()
        async with create_sessionmaker(engine)() as session:
            await session.execute(text("INSERT INTO blob VALUES (randomblob(:size))"),
                                  [{"size": 3_000}] * PAGES)
            await session.commit()
        in_file = _size(path)
        in_log = _size(path.with_name("inline.db-wal"))
    finally:
        await engine.dispose()
    assert in_file < 100_000, in_file  # the pages are still only in the log...
    assert in_log > PAGES * 3_000, in_log
    assert _size(path) > PAGES * 3_000  # ...until the last connection closed


async def test_the_background_thread_copies_the_log_without_another_commit(tmp_path: Path) -> None:
    path = tmp_path / "background.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    threads_before = {thread.name for thread in threading.enumerate()}
    try:
        async with create_sessionmaker(engine)() as session:
            await session.execute(text("CREATE TABLE blob (body BLOB)"))
            await session.execute(text("INSERT INTO blob VALUES (randomblob(:size))"),
                                  [{"size": 3_000}] * 200)  # well below any inline threshold
            await session.commit()
        copied = _wait_for_file_to_hold(path, 200)
        threads_running = {thread.name for thread in threading.enumerate()} - threads_before
    finally:
        await engine.dispose()
    assert copied > 200 * 3_000, copied
    assert threads_running == {f"wal-checkpoint {path}"}
    assert f"wal-checkpoint {path}" not in {thread.name for thread in threading.enumerate()}

