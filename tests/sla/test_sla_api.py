"""SLA settings over HTTP, due times on real tickets, sort=due, and breaches reported once."""

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from helpdesk.auth.models import Role
from helpdesk.db import utcnow
from helpdesk.realtime import presence
from helpdesk.realtime.log import event_sessions
from helpdesk.realtime.models import Event
from helpdesk.sla import tasks as sla_tasks
from helpdesk.sla.models import SlaSettings
from helpdesk.tickets import ingest as ticket_ingest
from helpdesk.tickets.models import Channel, InboundMessage, Sender
from tests.support.server import LiveServer, make_settings
from tests.support.staff import Staff
from tests.support.waiting import wait_until

TOKYO = ZoneInfo("Asia/Tokyo")
SETTINGS = {
    "timezone": "Asia/Tokyo", "hours": {d: [["09:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
    "public_holidays": "JP", "closed_days": ["2027-01-12"],
    "targets": [{"priority": "normal", "first_response_minutes": 120, "next_response_minutes": 60,
                 "resolution_minutes": 1200}],
}


async def ingest_at(engine: AsyncEngine, key: str, at: datetime) -> int:
    async with event_sessions(engine)() as session:
        result = await ticket_ingest.ingest(session, InboundMessage(
            channel=Channel.api, external_id=key, sender=Sender(name="客", email=f"{key}@example.jp"),
            body_text="届きません", received_at=at))
        await session.commit()
    return result.ticket_id


async def test_settings_round_trip_for_admins_only(http: httpx.AsyncClient, staff: Staff,
                                                   db: AsyncSession) -> None:
    admin = await staff.create("admin", Role.admin)
    operator = await staff.create("op", Role.operator)
    default = await http.get("/api/admin/sla", headers=staff.headers(admin))
    assert default.status_code == 200 and default.json()["timezone"] == "Asia/Tokyo"
    assert default.json()["public_holidays"] == "JP"
    refused = await http.put("/api/admin/sla", json=SETTINGS, headers=staff.headers(operator))
    assert refused.status_code == 403
    bad = await http.put("/api/admin/sla", json={**SETTINGS, "hours": {"mon": [["18:00", "09:00"]]}},
                         headers=staff.headers(admin))
    assert bad.status_code == 422
    assert await db.scalar(select(func.count()).select_from(SlaSettings)) == 0
    saved = await http.put("/api/admin/sla", json=SETTINGS, headers=staff.headers(admin))
    assert saved.status_code == 200, saved.text
    again = (await http.get("/api/admin/sla", headers=staff.headers(admin))).json()
    assert again["closed_days"] == ["2027-01-12"] and again["targets"][0]["first_response_minutes"] == 120


async def test_due_times_skip_weekend_holiday_and_closed_day_and_breach_is_reported_once(
        http: httpx.AsyncClient, staff: Staff, engine: AsyncEngine, db: AsyncSession) -> None:
    admin = await staff.create("admin", Role.admin)
    assert (await http.put("/api/admin/sla", json=SETTINGS, headers=staff.headers(admin))).status_code == 200
    # Friday 2027-01-08 17:00: one business hour that day, then Sat, Sun, 成人の日 (Mon 11th),
    # the shop's closed Tuesday 12th: the second hour is Wednesday 09:00–10:00.
    late = await ingest_at(engine, "late", datetime(2027, 1, 8, 17, 0, tzinfo=TOKYO))
    early = await ingest_at(engine, "early", datetime(2027, 1, 8, 9, 0, tzinfo=TOKYO))
    body = (await http.get(f"/api/tickets/{late}", headers=staff.headers(admin))).json()
    assert datetime.fromisoformat(body["first_response_due_at"]) == datetime(2027, 1, 13, 10, 0, tzinfo=TOKYO)
    assert body["sla_breached"] is False
    listed = (await http.get("/api/tickets?sort=due&limit=1", headers=staff.headers(admin))).json()
    assert [t["id"] for t in listed["items"]] == [early]
    rest = (await http.get(f"/api/tickets?sort=due&limit=1&cursor={listed['next_cursor']}",
                           headers=staff.headers(admin))).json()
    assert [t["id"] for t in rest["items"]] == [late] and rest["next_cursor"] is None

    sessionmaker = event_sessions(engine)
    assert await sla_tasks.check_once(sessionmaker, now=datetime(2027, 1, 13, 9, 59, tzinfo=TOKYO)) == 1
    assert await sla_tasks.check_once(sessionmaker, now=datetime(2027, 1, 13, 10, 1, tzinfo=TOKYO)) == 1
    assert await sla_tasks.check_once(sessionmaker, now=datetime(2027, 1, 13, 10, 2, tzinfo=TOKYO)) == 0
    await db.rollback()
    breaches = list(await db.scalars(select(Event).where(Event.type == "ticket.sla_breached")
                                     .order_by(Event.seq)))
    assert [(e.data["ticket_id"], e.data["target"]) for e in breaches] == [
        (early, "first_response"), (late, "first_response")]
    body = (await http.get(f"/api/tickets/{late}", headers=staff.headers(admin))).json()
    assert body["sla_breached"] is True
    history = (await http.get(f"/api/tickets/{late}/history", headers=staff.headers(admin))).json()
    assert [(h["type"], h["data"]["target"]) for h in history["items"]] == [
        ("ticket.sla_breached", "first_response")]


async def test_on_hold_stops_the_clock_over_http(http: httpx.AsyncClient, staff: Staff,
                                                 engine: AsyncEngine) -> None:
    admin = await staff.create("admin", Role.admin)
    ticket_id = await ingest_at(engine, "held", datetime(2027, 1, 8, 9, 0, tzinfo=TOKYO))
    body = (await http.get(f"/api/tickets/{ticket_id}", headers=staff.headers(admin))).json()
    held = await http.patch(f"/api/tickets/{ticket_id}", headers=staff.headers(admin), json={
        "version": body["version"], "status": "pending", "pending_reason": "お客様の返信待ち"})
    assert held.status_code == 200 and held.json()["sla_due_at"] is None
    # On hold, no deadline can be breached however late it is.
    assert await sla_tasks.check_once(event_sessions(engine),
                                      now=datetime(2030, 1, 1, tzinfo=TOKYO)) == 0
    history = (await http.get(f"/api/tickets/{ticket_id}/history", headers=staff.headers(admin))).json()
    assert history["items"][-1]["type"] == "ticket.status"
    assert history["items"][-1]["data"] == {"from": "unhandled", "to": "pending",
                                            "pending_reason": "お客様の返信待ち"}


async def test_the_app_reports_breaches_and_moves_tickets_in_the_background(
        database_url: str, engine: AsyncEngine, staff: Staff, db: AsyncSession) -> None:
    boss = await staff.create("boss", Role.supervisor)
    operator = await staff.create("op", Role.operator, inboxes=["default"])
    operator_id = operator.id
    # Weeks ago, before any policy: long past both default deadlines, and nobody's.
    ticket_id = await ingest_at(engine, "old", datetime(2026, 11, 6, 9, 0, tzinfo=TOKYO))
    settings = make_settings(database_url, run_workers=True, sla_check_seconds=0.2,
                             assignment_sweep_seconds=0.2)
    with LiveServer(settings) as live:
        async with httpx.AsyncClient(base_url=live.url) as http:
            found = await http.get(f"/api/tickets/{ticket_id}", headers=staff.headers(boss))
            inbox_id = found.json()["inbox_id"]
            policy = await http.put(f"/api/admin/inboxes/{inbox_id}/assignment", headers=staff.headers(boss),
                                    json={"policy": "round_robin"})
            assert policy.status_code == 200
            async with event_sessions(engine)() as session:
                await presence.connect(session, connection_id="bg", user_id=operator_id or 0, node="test",
                                       now=utcnow(), ttl=timedelta(hours=1))
                await session.commit()

            async def breached_and_assigned() -> dict[str, Any] | None:
                body = (await http.get(f"/api/tickets/{ticket_id}", headers=staff.headers(boss))).json()
                return body if body["sla_breached"] and body["assignee_id"] == operator_id else None

            body = await wait_until(breached_and_assigned, within=10, interval=0.1)
    assert body["sla_breached"] is True and body["assignee_id"] == operator_id
    await db.rollback()
    breaches = list(await db.scalars(select(Event).where(Event.type == "ticket.sla_breached")))
    assert {e.data["target"] for e in breaches} == {"first_response", "resolution"}
    assert len(breaches) == 2
    assert not live.thread.is_alive()


async def test_raising_the_priority_over_http_brings_the_deadline_forward(
        http: httpx.AsyncClient, staff: Staff, engine: AsyncEngine) -> None:
    admin = await staff.create("admin", Role.admin)
    urgent = {"priority": "urgent", "first_response_minutes": 30, "next_response_minutes": 30}
    settings = {**SETTINGS, "targets": [*SETTINGS["targets"], urgent]}  # type: ignore[list-item]
    assert (await http.put("/api/admin/sla", json=settings, headers=staff.headers(admin))).status_code == 200
    ticket_id = await ingest_at(engine, "rush", datetime(2027, 1, 13, 9, 0, tzinfo=TOKYO))
    body = (await http.get(f"/api/tickets/{ticket_id}", headers=staff.headers(admin))).json()
    assert datetime.fromisoformat(body["first_response_due_at"]) == datetime(2027, 1, 13, 11, 0, tzinfo=TOKYO)
    raised = await http.patch(f"/api/tickets/{ticket_id}", headers=staff.headers(admin),
                              json={"version": body["version"], "priority": "urgent"})
    assert raised.status_code == 200, raised.text
    # 120 business minutes became 30: 90 earlier. The resolution target (none for urgent) stops.
    assert datetime.fromisoformat(raised.json()["first_response_due_at"]) == datetime(
        2027, 1, 13, 9, 30, tzinfo=TOKYO)
    assert datetime.fromisoformat(raised.json()["sla_due_at"]) == datetime(2027, 1, 13, 9, 30, tzinfo=TOKYO)
    assert raised.json()["resolution_due_at"] is None
