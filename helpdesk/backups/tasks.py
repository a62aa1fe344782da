"""The daily backup: with ``HELPDESK_BACKUP_DIR`` set, a copy at ``BACKUP_AT`` local time, keeping
the newest ``BACKUP_KEEP``. SQLite only (PostgreSQL is backed up with pg_dump, see the docs)."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
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


async def keep_backing_up(settings: Settings, directory: Path, stop: asyncio.Event) -> None:
    while not stop.is_set():
        wait = (next_run(settings, utcnow()) - utcnow()).total_seconds()
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=max(wait, 1.0))
            return
        try:
            made = await asyncio.to_thread(take_daily, settings, directory, utcnow())
            if made is not None:
                log.info("backup written to %s", made)
        except Exception:  # the next day's backup must still happen; the log says why not
            log.exception("daily backup failed")


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[None]:
    """Back up daily for the app's life when ``backup_dir`` is set and workers run."""
    if not settings.backup_dir or not settings.run_workers:
        yield
        return
    if not settings.is_sqlite:
        log.warning("HELPDESK_BACKUP_DIR is set but the database is PostgreSQL: use pg_dump")
        yield
        return
    stop = asyncio.Event()
    task = asyncio.create_task(keep_backing_up(settings, Path(settings.backup_dir), stop),
                               name="daily backup")
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)

