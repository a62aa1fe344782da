"""Backing up and restoring an SQLite database while it is in use; PostgreSQL has its own tools.

The copy is made with SQLite's online backup API in one step: it reads one snapshot of the
database (in WAL mode writers go on meanwhile), so the copy holds exactly the transactions
committed before it began. It is written beside its destination, checked with
``PRAGMA integrity_check``, switched out of WAL mode so it is one self-contained file, and only
then renamed into place: a half-written backup never carries the final name.
"""

import os
import sqlite3
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from helpdesk.errors import HelpdeskError


class BackupError(HelpdeskError):
    status_code = 409


def sqlite_path(database_url: str) -> Path | None:
    """The database file of an SQLite URL; None for other databases."""
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite"):
        return None
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory database cannot be backed up")
    return Path(url.database)


def postgresql_advice(database_url: str, file: str, *, restore: bool) -> str:
    """What to run instead on PostgreSQL (its own tools make consistent dumps)."""
    url = make_url(database_url).set(drivername="postgresql")
    plain = url.render_as_string(hide_password=True)
    if restore:
        return (f"PostgreSQL databases are restored with pg_restore, the server stopped:\n"
                f"  pg_restore --clean --if-exists --no-owner -d '{plain}' {file}\n"
                f"then run `helpdesk migrate`.")
    return (f"PostgreSQL databases are backed up with pg_dump (consistent while the server runs):\n"
            f"  pg_dump --format=custom --file={file} '{plain}'")


def integrity(path: Path) -> str:
    """``PRAGMA integrity_check`` of a database file: "ok" when sound."""
    with _connect(path, readonly=True) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def backup(source: Path, target: Path) -> int:
    """Copy the live database ``source`` to ``target`` consistently; the copy's size in bytes."""
    if not source.exists():
        raise BackupError(f"no database at {source}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    partial.unlink(missing_ok=True)
    try:
        with _connect(source) as src, _connect(partial) as dst:
            src.backup(dst)  # one step: one snapshot, writers are not held up in WAL mode
            dst.execute("PRAGMA journal_mode=DELETE")
        if (result := integrity(partial)) != "ok":
            raise BackupError(f"the copy failed its integrity check: {result}")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target.stat().st_size


def restore(backup_file: Path, target: Path) -> Path | None:
    """Put ``backup_file`` back as the database at ``target``; returns where the old one was kept.

    The server must be stopped: its connections would go on with what they had cached.
    """
    if not backup_file.exists():
        raise BackupError(f"no backup at {backup_file}")
    try:
        result = integrity(backup_file)
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{backup_file} is not an SQLite database: {exc}") from None
    if result != "ok":
        raise BackupError(f"{backup_file} failed its integrity check: {result}")
    kept = None
    if target.exists():
        kept = target.with_name(f"{target.name}.before-restore-{datetime.now():%Y%m%d-%H%M%S}")
        backup(target, kept)
    with _connect(backup_file) as src, _connect(target) as dst:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=WAL")
    return kept


def prune(directory: Path, *, prefix: str, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` backups named ``prefix…``; the ones deleted."""
    found = sorted(directory.glob(f"{prefix}*.db"), key=lambda p: p.name, reverse=True)
    for old in found[keep:]:
        old.unlink(missing_ok=True)
    return found[keep:]


class _Closing:
    """sqlite3's connection as a context manager that closes (its own only commits)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()


def _connect(path: Path, *, readonly: bool = False) -> _Closing:
    uri = f"file:{path.resolve()}{'?mode=ro' if readonly else ''}"
    conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
    return _Closing(conn)
