"""Every job a process runs beside its requests, in one list, started in one place (the app's
lifespan enters ``running``).

- Two leased queues (``background.queue``), woken by every commit the bus reports and polled
  otherwise: reply delivery from the outbox, and the download of media customers sent.
- The periodic jobs (``periodic.running``), one line each below with the settings it keeps:
  a failed pass is logged and the next one runs on time; stopping waits for the pass under way.

The presence heartbeat is not here: the realtime hub runs it, as it reports the hub's own sockets.
Nothing runs when ``HELPDESK_RUN_WORKERS`` is off (tests drive one pass at a time instead).
"""

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpdesk import periodic
from helpdesk.assignment import tasks as assignment
from helpdesk.background.queue import Listen, in_background
from helpdesk.backups import tasks as backups
from helpdesk.channels import media
from helpdesk.channels.email import tasks as email
from helpdesk.config import Settings
from helpdesk.customers import tasks as customers
from helpdesk.delivery import tasks as delivery
from helpdesk.outbox.service import SenderRegistry
from helpdesk.periodic import PeriodicJob
from helpdesk.reports import tasks as reports
from helpdesk.retention import tasks as retention
from helpdesk.sla import tasks as sla


def periodic_jobs(sessionmaker: async_sessionmaker[AsyncSession],
                  settings: Settings) -> list[PeriodicJob]:
    """The periodic jobs of a process, each with its settings (a disabled one is listed too)."""
    s, rollup = settings, reports.RollupWorker(sessionmaker, settings)
    return [
        PeriodicJob("retention", lambda stop: retention.prune_pass(sessionmaker, s, stop),
                    every=s.retention_interval_seconds, first_after=retention.first_pass_after(s)),
        PeriodicJob("customer ranks", lambda _: customers.refresh_ranks(
                    sessionmaker, dormant_after_days=s.dormant_after_days),
                    every=s.rank_refresh_seconds, first_after=s.rank_refresh_seconds),
        PeriodicJob("sla breaches", lambda _: sla.check_once(sessionmaker),
                    every=s.sla_check_seconds),
        PeriodicJob("assignment sweep", lambda _: assignment.sweep_once(sessionmaker),
                    every=s.assignment_sweep_seconds),
        PeriodicJob("report rollup", lambda _: rollup.run_once(), every=s.report_rollup_seconds),
        PeriodicJob("imap poll", lambda _: email.poll_or_warn(sessionmaker, s),
                    every=s.imap_poll_seconds, enabled=bool(s.imap_url)),
        PeriodicJob("daily backup", lambda _: backups.backup_pass(s),
                    every=lambda: backups.seconds_to_next(s),
                    first_after=lambda: backups.seconds_to_next(s), enabled=backups.enabled(s)),
    ]


@asynccontextmanager
async def running(*, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings,
                  http: httpx.AsyncClient, senders: SenderRegistry,
                  fetchers: Mapping[str, media.Fetcher], listen: Listen) -> AsyncIterator[list[str]]:
    """Run every background job of this process while the block runs; yields their names."""
    if not settings.run_workers:
        yield []
        return
    outbox = delivery.OutboxWorker(sessionmaker, senders, settings, http,
                                   delivery.options_from(settings))
    downloads = media.MediaWorker(sessionmaker, fetchers, settings, http,
                                  media.options_from(settings))
    async with AsyncExitStack() as stack:
        for name, run_once, poll in (
                ("outbox delivery", outbox.run_once, outbox.options.poll_seconds),
                ("media fetch", downloads.run_once, downloads.options.poll_seconds)):
            await stack.enter_async_context(in_background(run_once, listen, poll_seconds=poll,
                                                          name=name))
        names = ["outbox delivery", "media fetch"]
        names += await stack.enter_async_context(periodic.running(
            periodic_jobs(sessionmaker, settings)))
        yield names
