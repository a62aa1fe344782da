"""The daily backup: with ``HELPDESK_BACKUP_DIR`` set, a copy at ``BACKUP_AT`` local time, keeping
the newest ``BACKUP_KEEP``. SQLite only (PostgreSQL is backed up with pg_dump, see the docs)."""

import asyncio
import logging
from datetime import datetime, time, timedelta
from pathlib import Path

from helpdesk.backups import service
from helpdesk.config import Settings
from helpdesk.db import utcnow
from helpdesk.web.i18n import zone as zone_named

log = logging.getLogger(__name__)
PREFIX = "helpdesk-"


def next_run(settings: Settings, now: datetime) -> datetime:
    """The next ``backup_at`` in the deployment's time zone, after ``now``."""
    zone = zone_named(settings.timezone)
    hour, minute = (int(part) for part in settings.backup_at.split(":"))
    local = now.astimezone(zone)
    run = datetime.combine(local.date(), time(hour, minute), zone)
    return run if run > local else datetime.combine(local.date() + timedelta(days=1),
                                                    time(hour, minute), zone)


def take_daily(settings: Settings, directory: Path, now: datetime) -> Path | None:
    """Today's backup (not repeated when it exists, e.g. from another worker), then prune."""
    source = service.sqlite_path(settings.database_url)
    if source is None:
        return None
    stamp = now.astimezone(zone_named(settings.timezone)).strftime("%Y-%m-%d")
    target = directory / f"{PREFIX}{stamp}.db"
    if target.exists():
        return None
    service.backup(source, target)
    service.prune(directory, prefix=PREFIX, keep=settings.backup_keep)
    return target


def seconds_to_next(settings: Settings) -> float:
    """How long until the next backup is due (at least a second)."""
    now = utcnow()
    return max((next_run(settings, now) - now).total_seconds(), 1.0)


def enabled(settings: Settings) -> bool:
    """Whether the daily backup runs here: a backup directory set, on SQLite."""
    if settings.backup_dir and not settings.is_sqlite:
        log.warning("HELPDESK_BACKUP_DIR is set but the database is PostgreSQL: use pg_dump")
    return bool(settings.backup_dir) and settings.is_sqlite


async def backup_pass(settings: Settings) -> Path | None:
    """Take today's backup (in a thread: it copies the whole database) and say where it went."""
    assert settings.backup_dir is not None
    made = await asyncio.to_thread(take_daily, settings, Path(settings.backup_dir), utcnow())
    if made is not None:
        log.info("backup written to %s", made)
    return made
