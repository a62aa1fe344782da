"""The app starts every background job from one place, and only when workers are to run."""

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from helpdesk.tickets.models import Message
from tests.support import ROOT
from tests.support.database import count
from tests.support.fakes import FakeIMAP
from tests.support.server import LiveServer, make_settings
from tests.support.waiting import wait_until

QUEUES = ["outbox delivery", "media fetch"]
PERIODIC = ["retention", "customer ranks", "sla breaches", "assignment sweep", "report rollup"]


async def test_the_app_runs_every_job_from_its_one_list(
        database_url: str, engine: AsyncEngine, db: AsyncSession, tmp_path: Path) -> None:
    with FakeIMAP("support", "imap-pass") as imap:
        imap.mailbox.messages = {3: (ROOT / "tests" / "data" / "mail" / "shift_jis.eml").read_bytes()}
        settings = make_settings(
            database_url, run_workers=True, imap_poll_seconds=0.2, backup_dir=str(tmp_path),
            imap_url=f"imap://support:imap-pass@127.0.0.1:{imap.port}/INBOX")
        with LiveServer(settings) as live:
            names = live.app.state.background_jobs
            # The IMAP poll, started from that list, reads the mailbox.
            await wait_until(lambda: count(db, Message), within=30)
    backups = ["daily backup"] if settings.is_sqlite else []  # PostgreSQL: pg_dump instead
    assert names == [*QUEUES, *PERIODIC, "imap poll", *backups]


async def test_without_workers_nothing_runs_in_the_background(database_url: str) -> None:
    with LiveServer(make_settings(database_url, run_workers=False)) as live:
        assert live.app.state.background_jobs == []
