"""What ``/metrics`` reports, kept per process in its own registry.

Request timings and webhook failures are counted as requests finish (``RequestMetrics``); the
depth gauges are read when Prometheus scrapes, from the hub's memory and a few indexed counts.
Each serving process answers for itself (with several workers, each is its own target).
"""

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from helpdesk.outbox.models import OutboxItem
from helpdesk.realtime import log as event_log
from helpdesk.realtime.client import Client
from helpdesk.reports.models import APPLIED
from helpdesk.storage.counters import read_counter

WEBHOOK_PREFIXES = ("/webhooks/", "/telephony/", "/api/inbound")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """One process's metrics and the registry they are exposed from."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.latency = Histogram("helpdesk_http_request_duration_seconds",
                                 "Time to answer an HTTP request", ["method", "route", "status"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.webhook_failures = Counter("helpdesk_webhook_failures",
                                        "Provider webhooks answered with an error (4xx or 5xx)",
                                        ["route", "status"], registry=r)
        self.sockets = Gauge("helpdesk_websocket_connections", "Open staff sockets", registry=r)
        self.socket_queued = Gauge("helpdesk_websocket_queued_frames",
                                   "Frames waiting in the sockets' queues, all together", registry=r)
        self.outbox = Gauge("helpdesk_outbox_items", "Outbox items by state", ["state"], registry=r)
        self.rollup_lag = Gauge("helpdesk_report_rollup_lag_events",
                                "Events the report rollups have not folded yet", registry=r)
        self.event_seq = Gauge("helpdesk_event_seq", "The highest event seq handed out", registry=r)

    async def refresh(self, session: AsyncSession, *, clients: dict[str, Client]) -> None:
        """Set the gauges from the hub's sockets and the database."""
        self.sockets.set(len(clients))
        self.socket_queued.set(sum(c.queue.qsize() for c in list(clients.values())))
        counts = dict((await session.execute(
            select(col(OutboxItem.state), func.count()).group_by(col(OutboxItem.state)))).all())
        for state in ("pending", "failed"):
            self.outbox.labels(state=state).set(counts.get(state, 0))
        seq = await event_log.highest_seq(session)
        self.event_seq.set(seq)
        self.rollup_lag.set(max(0, seq - await read_counter(session, APPLIED)))

    def text(self) -> bytes:
        return generate_latest(self.registry)


class RequestMetrics:
    """Times each HTTP request by its route template (bounded labels), counts failed webhooks."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, observed = 500, False

        async def sending(message: Message) -> None:
            nonlocal status, observed
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Counted before the last byte leaves: a client's next request sees it.
                observed = True
                self._observe(scope, status, time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if not observed:
                self._observe(scope, status, time.perf_counter() - started)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        self.metrics.latency.labels(method=scope["method"], route=route,
                                    status=f"{status // 100}xx").observe(seconds)
        if status >= 400 and scope["path"].startswith(WEBHOOK_PREFIXES):
            self.metrics.webhook_failures.labels(route=route, status=str(status)).inc()
