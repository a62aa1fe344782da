"""``/metrics`` speaks the Prometheus text format and sits behind the staff IP allow-list."""

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.access.models import IpRule
from helpdesk.storage.sessions import begin_write
from tests.support.inbound import INBOUND_HEADERS, inbound_body, post_inbound
from tests.support.server import LiveServer, make_settings
from tests.support.staff import Staff


async def test_metrics_parse_with_prometheus_clients_parser(http: httpx.AsyncClient, staff: Staff) -> None:
    op = await staff.create("op", inboxes=["default"])
    ticket_id = (await post_inbound(http, "metrics-1")).json()["ticket_id"]
    assert (await http.get(f"/api/tickets/{ticket_id}", headers=staff.headers(op))).status_code == 200
    forged = await http.post("/api/inbound", json=inbound_body(),
                             headers={"Authorization": "Bearer wrong", "Idempotency-Key": "m-2"})
    assert forged.status_code == 401
    answer = await http.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    for name in ("helpdesk_http_request_duration_seconds", "helpdesk_websocket_connections",
                 "helpdesk_websocket_queued_frames", "helpdesk_outbox_items",
                 "helpdesk_webhook_failures", "helpdesk_report_rollup_lag_events", "helpdesk_event_seq"):
        assert name in families, name
    latency = families["helpdesk_http_request_duration_seconds"]
    counts = {(s.labels["method"], s.labels["route"], s.labels["status"]): s.value
              for s in latency.samples if s.name.endswith("_count")}
    # Routes by their template, so the labels stay few whatever the ids.
    assert counts[("GET", "/api/tickets/{ticket_id}", "2xx")] >= 1
    assert counts[("POST", "/api/inbound", "2xx")] >= 1
    failures = {(s.labels["route"], s.labels["status"]): s.value
                for s in families["helpdesk_webhook_failures"].samples if s.name.endswith("_total")}
    assert failures[("/api/inbound", "401")] >= 1
    lag = next(s.value for s in families["helpdesk_report_rollup_lag_events"].samples)
    assert lag >= 1  # the ticket's events, not yet folded (the test server runs no workers)


async def test_metrics_are_behind_the_staff_allow_list(
        database_url: str, db: AsyncSession, staff: Staff) -> None:
    await begin_write(db)
    db.add(IpRule(network="10.1.0.0/16", note="office"))
    await db.commit()
    try:
        with LiveServer(make_settings(database_url)) as live:
            async with httpx.AsyncClient(base_url=live.url) as client:
                assert (await client.get("/metrics")).status_code == 403
                answer = await client.post("/api/inbound", json=inbound_body(),
                                           headers={**INBOUND_HEADERS, "Idempotency-Key": "m-3"})
                assert answer.status_code == 201  # provider paths stay public
    finally:
        await begin_write(db)
        await db.execute(IpRule.__table__.delete())  # type: ignore[attr-defined]
        await db.commit()


def test_metrics_can_be_turned_off(database_url: str) -> None:
    with LiveServer(make_settings(database_url, metrics_enabled=False)) as live:
        assert httpx.get(f"{live.url}/metrics").status_code == 404
