"""The application factory: routers, static files, and the lifespan that owns engine and bus."""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from helpdesk import boundary, limits, logs, normalize, pages
from helpdesk.approval import api as approval_api
from helpdesk.assignment import api as assignment_api
from helpdesk.auth import api as auth_api
from helpdesk.auth import sealing, totp
from helpdesk.auth.throttle import create_counters
from helpdesk.background import work as background
from helpdesk.background.work import Background, QueueJob
from helpdesk.backups import tasks as backup_tasks
from helpdesk.calls import api as calls_api
from helpdesk.channels import api as channels_api
from helpdesk.channels import media
from helpdesk.channels import shopify as shopify_channel
from helpdesk.channels import wiring as channels
from helpdesk.channels.email import tasks as email_tasks
from helpdesk.channels.models import MediaFetch
from helpdesk.config import Settings, get_settings
from helpdesk.customers import api as customers_api
from helpdesk.customers import tasks as customer_tasks
from helpdesk.db import create_engine, create_sessionmaker
from helpdesk.delivery import tasks as delivery
from helpdesk.errors import install_error_handlers
from helpdesk.exports import api as exports_api
from helpdesk.imports import api as imports_api
from helpdesk.limits import BodyLimitMiddleware
from helpdesk.metrics import api as metrics_api
from helpdesk.metrics.service import Metrics, RequestMetrics
from helpdesk.outbox.models import OutboxItem
from helpdesk.outbox.service import SenderRegistry
from helpdesk.periodic import PeriodicJob
from helpdesk.profiles import api as profiles_api
from helpdesk.realtime import api as realtime_api
from helpdesk.realtime import presence
from helpdesk.realtime.audiences import audiences
from helpdesk.realtime.bus import create_bus
from helpdesk.realtime.hub import Hub
from helpdesk.realtime.log import LocalEvents, install_event_log, publish_to
from helpdesk.reports import api as reports_api
from helpdesk.reports import tasks as report_tasks
from helpdesk.retention import tasks as retention
from helpdesk.sla import api as sla_api
from helpdesk.sla import tasks as sla_tasks
from helpdesk.storage import wakes
from helpdesk.tickets import api as tickets_api
from helpdesk.tickets import queries as ticket_queries
from helpdesk.tickets import tasks as ticket_tasks
from helpdesk.web.security import admitted, refuse_socket
from telephony import cti as telephony_cti
from telephony import sms as telephony_sms
from telephony import twilio as telephony_twilio
from telephony import twilio_menu as telephony_twilio_menu
from telephony import twilio_rest as telephony_twilio_rest
from telephony import twilio_transfer as telephony_twilio_transfer

ROOT = Path(__file__).resolve().parent.parent
# How uvicorn serves the app (the CLI, the benchmarks and the tests' servers alike).
# permessage-deflate stays off: frames are small JSON, and compressing each one for every
# operator's socket cost a screen pop more than half a millisecond of CPU, plus two zlib
# contexts of several hundred KB kept per open socket.
SERVER_OPTIONS: dict[str, Any] = {"ws": "websockets-sansio", "ws_per_message_deflate": False}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Build the engine, bus and realtime hub on start, release them on stop."""
    settings: Settings = app.state.settings
    engine = create_engine(settings.database_url)
    node = uuid4().hex[:16]  # this process, among those sharing the database and Redis
    bus = create_bus(settings, node)
    await bus.start()
    app.state.engine = engine
    app.state.bus = bus
    local_events = LocalEvents()
    # Commits through these sessions write the events they recorded and publish them: first to
    # this process's hub (local_events), then on the bus, which wakes every process's hub.
    app.state.sessionmaker = install_event_log(create_sessionmaker(engine),
                                               publish=publish_to(local_events, bus.notify))
    app.state.read_sessionmaker = install_event_log(create_sessionmaker(engine, read_only=True),
                                                    publish=publish_to(local_events, bus.notify))
    # Commits that add or change rows of a leased queue wake that queue's workers (every process).
    for sessions in (app.state.sessionmaker, app.state.read_sessionmaker):
        wakes.install(sessions, bus.wake_queues)
    app.state.http = http = httpx.AsyncClient(timeout=httpx.Timeout(20.0, connect=10.0))
    app.state.login_counters = login_counters = create_counters(settings)
    channels.register_senders(app.state.senders, app.state.sessionmaker, settings)
    telephony_sms.register_senders(app.state.senders, settings)
    app.state.hub = Hub(bus=bus, sessionmaker=app.state.sessionmaker,
                        read_sessionmaker=app.state.read_sessionmaker, settings=settings, node=node,
                        ticket_inbox=ticket_queries.inbox_of, audiences=audiences,
                        presence_heartbeat=presence.heartbeat_and_sweep, local=local_events)
    await app.state.hub.start()
    await pages.startup(app)
    async with app.state.sessionmaker() as session:
        if await totp.seal_stored_keys(session, sealing.of(settings)):
            await session.commit()
    # Everything built so far (modules, the app, compiled statements) lives as long as the
    # process: keep it out of the collector's full passes, which otherwise stall requests.
    gc.freeze()
    space_out_full_collections()
    try:
        work = background_work(app) if settings.run_workers else Background()
        async with channels.running(app), background.running(
                work, listen_queue=bus.listen_queue) as app.state.background_jobs:
            yield
    finally:
        await http.aclose()
        await app.state.limiter.close()
        await login_counters.close()
        await app.state.hub.stop()
        await bus.stop()
        await engine.dispose()


def background_work(app: FastAPI) -> Background:
    """Every job this process runs beside its requests, each with the settings it reads.

    Two leased queues, each woken by the commits that write to its table: replies delivered from
    the outbox, media customers sent downloaded. Then the periodic jobs (a disabled one is
    listed too). The presence heartbeat is the hub's own. With ``run_workers`` off nothing runs
    (tests drive the passes).
    """
    s, sessions, http = app.state.settings, app.state.sessionmaker, app.state.http
    replies = delivery.OutboxWorker(sessions, app.state.senders, s, http, delivery.options_from(s))
    downloads = media.MediaWorker(sessions, channels.FETCHERS, s, http, media.options_from(s))
    rollup = report_tasks.RollupWorker(sessions, s)
    return Background(queues=[
        QueueJob("outbox delivery", wakes.queue_name(OutboxItem), replies.run_once,
                 replies.options.poll_seconds),
        QueueJob("media fetch", wakes.queue_name(MediaFetch), downloads.run_once,
                 downloads.options.poll_seconds),
    ], periodic=[
        PeriodicJob("retention", lambda stop: retention.prune_pass(sessions, s, stop),
                    every=s.retention_interval_seconds, first_after=retention.first_pass_after(s)),
        PeriodicJob("customer ranks", lambda _: customer_tasks.refresh_ranks(
                    sessions, dormant_after_days=s.dormant_after_days),
                    every=s.rank_refresh_seconds, first_after=s.rank_refresh_seconds),
        PeriodicJob("sla breaches", lambda _: sla_tasks.check_once(sessions),
                    every=s.sla_check_seconds),
        PeriodicJob("assignment sweep", lambda _: ticket_tasks.sweep_once(sessions),
                    every=s.assignment_sweep_seconds),
        PeriodicJob("report rollup", lambda _: rollup.run_once(), every=s.report_rollup_seconds),
        PeriodicJob("imap poll", lambda _: email_tasks.poll_or_warn(sessions, s),
                    every=s.imap_poll_seconds, enabled=bool(s.imap_url)),
        PeriodicJob("daily backup", lambda _: backup_tasks.backup_pass(s),
                    every=lambda: backup_tasks.seconds_to_next(s),
                    first_after=lambda: backup_tasks.seconds_to_next(s),
                    enabled=backup_tasks.enabled(s)),
    ])


FULL_COLLECTION_AFTER = 1000  # middle-generation passes; CPython's default is 10


def space_out_full_collections() -> None:
    """Let the collector's full passes come minutes apart under load rather than seconds.

    A full pass walks every live object with the event loop stopped, and a thousand open sockets
    are some 150,000 of them (about 70 ms). By default one runs after ten middle-generation
    passes once a quarter of the oldest generation is new, which the traffic of a thousand
    sockets brings about every few seconds. Young garbage is still collected as often as before.
    """
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_AFTER)


class HelpdeskApp(FastAPI):
    """The app, with the live socket served ahead of the middleware stack.

    A socket stays suspended in every layer it came through for as long as it is open. Through
    the middleware stack and the router that was about 120 of the 276 objects a socket kept
    alive (coroutines, closures, exit stacks), each walked on every full pass of the collector,
    which stops the event loop: with a thousand sockets such a pass took over 100 ms. Of those
    layers only the IP allow-list concerns a socket (the others pass websockets through), so it
    is applied here.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == realtime_api.LIVE_PATH:
            scope["app"] = self
            if admitted(scope):
                await realtime_api.live(WebSocket(scope, receive, send))
            else:
                await refuse_socket(send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    """A configured app; nothing connects until the lifespan starts."""
    app = HelpdeskApp(title="Helpdesk", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings or get_settings()
    normalize.set_display_region(app.state.settings.default_region)
    logs.install()
    # Senders by outbox kind; channels register theirs when the app starts (see lifespan).
    app.state.senders = SenderRegistry()
    install_error_handlers(app)
    # Providers' webhooks and the API channel's inbound first: routes are matched in order, and
    # a ringing phone or a posted message should not wait while its path is compared with every
    # page and API route (each comparison costs tens of µs).
    for router in (telephony_twilio.router, telephony_twilio_menu.router, telephony_cti.router,
                   shopify_channel.router, *channels.ROUTERS, channels_api.router):
        app.include_router(router)
    pages.install(app, app.state.settings)
    boundary.install(app)  # inside the body limit, which bounds what it reads
    app.add_middleware(BodyLimitMiddleware, max_bytes=app.state.settings.max_body_bytes)
    app.state.metrics = Metrics()
    app.add_middleware(RequestMetrics, metrics=app.state.metrics)
    # Outermost: a flood is refused before its bodies are read.
    app.state.limiter = limits.create_limiter(app.state.settings.redis_url,
                                              app.state.settings.redis_channel)
    app.add_middleware(limits.WebhookRateMiddleware, limiter=app.state.limiter,
                       rate=limits.Rate.parse(app.state.settings.rate_webhook))
    for module in (auth_api, tickets_api, imports_api, customers_api, profiles_api,
                   calls_api, realtime_api, sla_api, assignment_api, approval_api, reports_api,
                   exports_api, metrics_api):
        app.include_router(module.router)
    if app.state.settings.twilio_account_sid and app.state.settings.twilio_auth_token:
        app.state.dialer = telephony_twilio_rest.dialer(app.state.settings)
        app.state.switches = {"twilio": telephony_twilio_transfer.TwilioSwitch(app.state.settings)}
    app.mount("/static", StaticFiles(directory=ROOT / "static"), name="static")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
