"""A scripted day of events gives the figures worked out by hand, and the rollup folded as the
events came equals the one rebuilt from the whole log."""

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from helpdesk.auth.models import Role
from helpdesk.realtime import log as event_log
from helpdesk.realtime.log import event_sessions
from helpdesk.reports import rollup, tasks
from helpdesk.reports.calendar import ReportCalendar
from helpdesk.reports.models import ROLLUP_MODELS
from tests.support.inbound import inbound_body, post_inbound
from tests.support.staff import Staff

TOKYO = ReportCalendar(zone=ZoneInfo("Asia/Tokyo"))
DAY = date(2026, 11, 2)  # a Monday; 00:00 UTC is 09:00 in Tokyo, so the whole script is that day
SATO, SUZUKI = 11, 12
MAIN, SHOP = 1, 2


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2026, 11, 2, hh, mm, ss, tzinfo=UTC)


class Script:
    """Events written to the log as the services write them, at times the script chooses."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.tickets: dict[int, dict[str, Any]] = {}

    def ticket(self, when: datetime, ticket_id: int, kind: str = "ticket.updated", **change: Any) -> None:
        snap = self.tickets.setdefault(ticket_id, {
            "id": ticket_id, "status": "unhandled", "assignee_id": None, "inbox_id": MAIN,
            "created_at": when.isoformat(), "first_response_at": None})
        snap.update(change, updated_at=when.isoformat())
        self.events.append({"type": kind, "at": when, "inbox_id": snap["inbox_id"],
                            "data": {"ticket": dict(snap)}})

    def reply(self, when: datetime, ticket_id: int, author: int, *, internal: bool = False) -> None:
        snap = self.tickets[ticket_id]
        self.events.append({"type": "message.created", "at": when, "inbox_id": snap["inbox_id"], "data": {
            "ticket_id": ticket_id, "direction": "out", "internal": internal, "author_id": author}})
        if not internal:
            self.ticket(when, ticket_id, first_response_at=snap["first_response_at"] or when.isoformat(),
                        assignee_id=snap["assignee_id"] or author)

    def wrapup(self, when: datetime, *, operator: int, acw_seconds: int, talk_seconds: int,
               ticket_id: int) -> None:
        self.events.append({"type": "call.wrapup_done", "at": when, "inbox_id": MAIN, "data": {
            "call_id": len(self.events), "operator_id": operator, "ticket_id": ticket_id,
            "disposition": "resolved", "acw_seconds": acw_seconds, "talk_seconds": talk_seconds,
            "follow_up_on": None}})

    def call(self, started: datetime, *, direction: str = "in", operator: int | None = None,
             answered: datetime | None = None, ended: datetime, ticket_id: int | None = None) -> None:
        self.events.append({"type": "call.ended", "at": ended, "inbox_id": MAIN, "data": {"call": {
            "id": len(self.events), "direction": direction, "inbox_id": MAIN, "operator_id": operator,
            "ticket_id": ticket_id, "voicemail": False, "started_at": started.isoformat(),
            "answered_at": answered.isoformat() if answered else None, "ended_at": ended.isoformat()}}})


def scripted_day() -> list[dict[str, Any]]:
    s = Script()
    s.ticket(at(0, 0), 101, "ticket.created")
    s.ticket(at(0, 10), 102, "ticket.created")
    s.ticket(at(0, 20), 103, "ticket.created", inbox_id=SHOP)
    s.ticket(at(0, 30), 101, status="in_progress", assignee_id=SATO)
    s.reply(at(0, 35), 101, SATO)
    s.ticket(at(0, 40), 102, status="in_progress", assignee_id=SUZUKI)
    s.reply(at(0, 50), 102, SUZUKI)
    s.ticket(at(1, 0), 103, status="in_progress", assignee_id=SATO)
    s.ticket(at(1, 10), 102, status="pending")
    s.reply(at(1, 20), 103, SATO)
    s.ticket(at(1, 35), 101, status="resolved")
    s.ticket(at(2, 0), 102, status="unhandled")  # the customer wrote again
    s.ticket(at(2, 0), 103, status="resolved")
    s.ticket(at(2, 30), 102, status="in_progress")
    s.ticket(at(3, 0), 102, status="resolved")
    s.ticket(at(4, 0), 104, "ticket.created")
    s.ticket(at(5, 0), 105, "ticket.created")
    s.ticket(at(5, 30), 105, status="in_progress", assignee_id=SATO)
    s.call(at(6, 0), operator=SATO, answered=at(6, 0, 15), ended=at(6, 5, 15), ticket_id=105)
    # The wrap-up was submitted 120 s after the hang-up; the note written later is not what counts.
    s.wrapup(at(6, 7, 15), operator=SATO, acw_seconds=120, talk_seconds=300, ticket_id=105)
    s.reply(at(6, 9, 15), 105, SATO, internal=True)
    s.call(at(7, 0), operator=SUZUKI, answered=at(7, 0, 30), ended=at(7, 2, 30))
    s.call(at(8, 0), ended=at(8, 0, 45))  # nobody answered
    s.call(at(9, 0), direction="out", operator=SATO, answered=at(9, 0, 10), ended=at(9, 1, 10))
    return s.events


async def write(sessions: async_sessionmaker[AsyncSession], batch: list[dict[str, Any]]) -> None:
    async with sessions() as session:
        for event in batch:
            event_log.record(session, **event)  # seqs taken as the app takes them
        await session.commit()


async def snapshot(sessions: async_sessionmaker[AsyncSession]) -> dict[str, list[tuple[Any, ...]]]:
    """Every rollup row as plain values (samples without their ids), in a fixed order."""
    found = {}
    async with sessions() as session:
        for model in ROLLUP_MODELS:
            table = model.__table__  # type: ignore[attr-defined]
            columns = [c for c in table.columns if c.name != "id"]
            rows = (await session.execute(select(*columns))).all()
            found[table.name] = sorted(tuple(row) for row in rows)
    return found


HAND_OPERATORS = {
    SATO: {"handled": 2, "replies": 2, "calls_answered": 1,
           # 101 in progress 00:30-01:35, 103 01:00-02:00, 300 s talk + 120 s wrap-up, 60 s outbound
           "handling_seconds": 3900 + 3600 + 300 + 120 + 60,
           "first_response_seconds_median": 2850.0, "first_response_seconds_p90": 3450.0,
           "resolution_seconds_median": 5850.0, "resolution_seconds_p90": 5970.0},
    SUZUKI: {"handled": 1, "replies": 1, "calls_answered": 1,
             "handling_seconds": 1800 + 1800 + 120,  # 00:40-01:10 and 02:30-03:00, 120 s talk
             "first_response_seconds_median": 2400.0, "first_response_seconds_p90": 2400.0,
             "resolution_seconds_median": 10200.0, "resolution_seconds_p90": 10200.0},
}
HAND_MAIN = {"created": 4, "resolved": 2,
             "backlog": {"unhandled": 1, "in_progress": 1, "pending": 0},
             "oldest_waiting_at": "2026-11-02T04:00:00Z", "sla_met_ratio": None,
             "calls_offered": 3, "calls_answered": 2, "calls_abandoned": 1,
             "service_level_20s": 0.3333, "average_wait_seconds": 22.5,
             "average_talk_seconds": 210.0}


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return event_sessions(engine)


async def test_scripted_day_matches_hand_figures_and_the_rebuild(
        sessions: async_sessionmaker[AsyncSession], http: httpx.AsyncClient, staff: Staff) -> None:
    events = scripted_day()
    # Incrementally: the events arrive in commits of three, folded a few at a time between them.
    for start in range(0, len(events), 3):
        await write(sessions, events[start:start + 3])
        async with sessions() as session:
            await rollup.apply_pending(session, TOKYO, limit=2)
            await session.commit()
    await tasks.catch_up(sessions, TOKYO, batch=2)
    incremental = await snapshot(sessions)
    assert await tasks.rebuild(sessions, TOKYO) == len(events)
    assert await snapshot(sessions) == incremental

    boss = await staff.create("boss", Role.supervisor)
    answer = await http.get("/api/reports/operators", params={"from": "2026-11-02", "to": "2026-11-03"},
                            headers=staff.headers(boss))
    assert answer.status_code == 200, answer.text
    items = {item["user_id"]: item for item in answer.json()["items"]}
    assert set(items) == {SATO, SUZUKI}
    for user_id, expected in HAND_OPERATORS.items():
        assert items[user_id]["date"] == "2026-11-02"
        assert {k: items[user_id][k] for k in expected} == expected

    inboxes = (await http.get("/api/reports/inboxes", params={"from": "2026-11-02", "to": "2026-11-03"},
                              headers=staff.headers(boss))).json()["items"]
    main = {item["date"]: item for item in inboxes if item["inbox_id"] == MAIN}
    assert {k: main["2026-11-02"][k] for k in HAND_MAIN} == HAND_MAIN
    # A quiet day keeps the backlog and the oldest waiting ticket as the last day left them.
    quiet = main["2026-11-03"]
    assert (quiet["created"], quiet["backlog"], quiet["oldest_waiting_at"]) == (
        0, HAND_MAIN["backlog"], HAND_MAIN["oldest_waiting_at"])
    shop = next(i for i in inboxes if i["inbox_id"] == SHOP and i["date"] == "2026-11-02")
    assert (shop["created"], shop["resolved"], shop["calls_offered"], shop["service_level_20s"]) == (
        1, 1, 0, None)

    only_shop = (await http.get("/api/reports/operators", params={
        "from": "2026-11-02", "to": "2026-11-02", "inbox_id": SHOP}, headers=staff.headers(boss))).json()
    assert [(i["user_id"], i["handled"], i["handling_seconds"]) for i in only_shop["items"]] == [
        (SATO, 1, 3600.0)]


async def test_operators_may_not_read_reports(http: httpx.AsyncClient, staff: Staff) -> None:
    op = await staff.create("op")
    answer = await http.get("/api/reports/operators", headers=staff.headers(op))
    assert answer.status_code == 403


async def test_bad_ranges_are_422(http: httpx.AsyncClient, staff: Staff) -> None:
    boss = await staff.create("boss", Role.supervisor)
    for params in ({"from": "2026-11-05", "to": "2026-11-01"}, {"from": "yesterday"},
                   {"from": "2020-01-01", "to": "2026-01-01"}, {"format": "xml"}):
        answer = await http.get("/api/reports/inboxes", params=params, headers=staff.headers(boss))
        assert answer.status_code == 422, params


async def test_the_services_events_fold_into_todays_figures(
        sessions: async_sessionmaker[AsyncSession], http: httpx.AsyncClient, staff: Staff) -> None:
    sato = await staff.create("sato", inboxes=["default"])
    boss = await staff.create("boss", Role.supervisor)
    created = (await post_inbound(http, "rollup-1", inbound_body("返品したいです"))).json()
    ticket_id = created["ticket_id"]
    headers = staff.headers(sato)
    version = (await http.post(f"/api/tickets/{ticket_id}/claim", headers=headers)).json()["version"]
    reply = await http.post(f"/api/tickets/{ticket_id}/messages", headers=headers,
                            json={"body": "承知しました", "internal": False, "version": version})
    assert reply.status_code == 201, reply.text
    version = (await http.get(f"/api/tickets/{ticket_id}", headers=headers)).json()["version"]
    done = await http.patch(f"/api/tickets/{ticket_id}", headers=headers,
                            json={"version": version, "status": "resolved"})
    assert done.status_code == 200, done.text
    assert await tasks.catch_up(sessions, TOKYO) > 0

    items = (await http.get("/api/reports/operators", headers=staff.headers(boss))).json()["items"]
    mine = [i for i in items if i["user_id"] == sato.id]
    assert len(mine) == 1
    assert (mine[0]["handled"], mine[0]["replies"], mine[0]["name"]) == (1, 1, "sato")
    assert mine[0]["first_response_seconds_median"] is not None
    assert mine[0]["handling_seconds"] > 0
    inboxes = (await http.get("/api/reports/inboxes", headers=staff.headers(boss))).json()["items"]
    assert [(i["created"], i["resolved"], i["backlog"]["unhandled"]) for i in inboxes] == [(1, 1, 0)]


async def test_sla_attainment_appears_once_tickets_carry_sla_state(
        sessions: async_sessionmaker[AsyncSession], http: httpx.AsyncClient, staff: Staff) -> None:
    s = Script()
    s.ticket(at(0, 0), 201, "ticket.created", sla_breached=False)
    s.ticket(at(0, 5), 202, "ticket.created", sla_breached=False)
    s.ticket(at(0, 6), 203, "ticket.created")  # written before SLA state existed: not counted
    s.ticket(at(1, 0), 201, status="resolved", assignee_id=SATO)
    s.ticket(at(2, 0), 202, status="resolved", assignee_id=SATO, sla_breached=True)
    s.ticket(at(2, 30), 203, status="resolved", assignee_id=SATO)
    await write(sessions, s.events)
    await tasks.catch_up(sessions, TOKYO)
    boss = await staff.create("boss", Role.supervisor)
    items = (await http.get("/api/reports/inboxes", params={"from": "2026-11-02", "to": "2026-11-02"},
                            headers=staff.headers(boss))).json()["items"]
    assert [(i["resolved"], i["sla_met_ratio"]) for i in items] == [(3, 0.5)]
