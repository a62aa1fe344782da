"""``helpdesk backup`` copies a live SQLite database consistently while a server writes to it,
and ``helpdesk restore`` puts the copy back."""

import asyncio
import os
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from helpdesk.backups import service
from helpdesk.backups.tasks import take_daily
from tests.support.inbound import inbound_body, post_inbound
from tests.support.server import make_settings
from tests.test_cli import HELPDESK, run_cli

MESSAGES = 1000
BACKUP_AFTER = 300  # acknowledged messages before the backup starts


def sqlite_only(database_url: str) -> Path:
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's online backup (PostgreSQL uses pg_dump)")
    return Path(str(make_url(database_url).database))


async def test_backup_while_writing_restores_every_acknowledged_message(
        http: httpx.AsyncClient, database_url: str, tmp_path: Path) -> None:
    sqlite_only(database_url)
    acknowledged: list[tuple[float, str]] = []
    keys = iter(range(MESSAGES))
    enough = asyncio.Event()

    async def writer() -> None:
        for n in keys:
            answer = await post_inbound(http, f"bk-{n}", inbound_body(f"backup test {n}",
                                                                      email=f"c{n % 50}@example.jp"))
            assert answer.status_code == 201, answer.text
            acknowledged.append((time.monotonic(), f"backup test {n}"))
            if len(acknowledged) >= BACKUP_AFTER:
                enough.set()

    writers = [asyncio.create_task(writer()) for _ in range(8)]
    await enough.wait()
    began = time.monotonic()
    before = {body for when, body in acknowledged if when <= began}
    backup_file = tmp_path / "copy.db"
    process = await asyncio.create_subprocess_exec(
        *HELPDESK, "backup", str(backup_file), env=_env(database_url),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    ended = time.monotonic()
    await asyncio.gather(*writers)
    assert process.returncode == 0, err.decode()
    assert "integrity ok" in out.decode()
    assert len(acknowledged) == MESSAGES
    assert any(began < when < ended for when, _ in acknowledged), "the server kept writing meanwhile"

    restored = tmp_path / "restored.db"
    result = run_cli(["restore", str(backup_file)], f"sqlite+aiosqlite:///{restored}")
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(restored) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        bodies = {row[0] for row in conn.execute("SELECT body_text FROM message")}
    assert before <= bodies
    assert len(before) >= BACKUP_AFTER


def test_restore_keeps_the_database_it_replaces_and_refuses_junk(tmp_path: Path) -> None:
    live = tmp_path / "live.db"
    with sqlite3.connect(live) as conn:
        conn.execute("CREATE TABLE t (v TEXT)")
        conn.execute("INSERT INTO t VALUES ('before')")
    copy = tmp_path / "copy.db"
    service.backup(live, copy)
    with sqlite3.connect(live) as conn:
        conn.execute("UPDATE t SET v = 'after'")
    kept = service.restore(copy, live)
    assert kept is not None
    with sqlite3.connect(live) as conn:
        assert conn.execute("SELECT v FROM t").fetchone()[0] == "before"
    with sqlite3.connect(kept) as conn:
        assert conn.execute("SELECT v FROM t").fetchone()[0] == "after"
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(service.BackupError):
        service.restore(junk, live)
    with sqlite3.connect(live) as conn:
        assert conn.execute("SELECT v FROM t").fetchone()[0] == "before"


def test_postgresql_gets_the_pg_dump_and_pg_restore_it_expects(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://helpdesk:secret@db.example:5432/helpdesk"
    backup = run_cli(["backup", str(tmp_path / "x.dump")], url)
    assert backup.returncode == 2
    assert "pg_dump --format=custom" in backup.stdout and "secret" not in backup.stdout
    restore = run_cli(["restore", str(tmp_path / "x.dump")], url)
    assert restore.returncode == 2 and "pg_restore" in restore.stdout


def test_daily_backups_keep_the_newest(tmp_path: Path) -> None:
    live = tmp_path / "live.db"
    with sqlite3.connect(live) as conn:
        conn.execute("CREATE TABLE t (v TEXT)")
    settings = make_settings(f"sqlite+aiosqlite:///{live}", backup_dir=str(tmp_path / "b"),
                             backup_keep=2)
    start = datetime(2026, 12, 1, 3, tzinfo=UTC)
    for day in range(4):
        assert take_daily(settings, tmp_path / "b", start + timedelta(days=day)) is not None
    assert take_daily(settings, tmp_path / "b", start + timedelta(days=3, hours=1)) is None
    names = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert names == ["helpdesk-2026-12-03.db", "helpdesk-2026-12-04.db"]


def _env(database_url: str) -> dict[str, str]:
    return {**os.environ, "HELPDESK_DATABASE_URL": database_url}
