"""Reports count days in the SLA settings' time zone and know their business days."""

from datetime import UTC, date, datetime

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from helpdesk.auth.models import Role
from helpdesk.config import Settings
from helpdesk.realtime import log as event_log
from helpdesk.realtime.log import event_sessions
from helpdesk.reports import tasks
from helpdesk.reports.calendar import report_calendar
from helpdesk.reports.models import ReportInboxDay
from helpdesk.sla import service as sla
from helpdesk.sla.models import SlaConfig
from tests.conftest import Staff


async def test_the_calendar_is_the_sla_settings(engine: AsyncEngine) -> None:
    sessions = event_sessions(engine)
    async with sessions() as session:
        default = await report_calendar(session)
        # Unsaved settings: Tokyo, Monday to Friday, Japanese public holidays.
        assert default.day_of(datetime(2026, 11, 2, 15, 30, tzinfo=UTC)) == date(2026, 11, 3)
        assert default.is_business_day(date(2026, 11, 2))
        assert not default.is_business_day(date(2026, 11, 3))  # 文化の日
        assert not default.is_business_day(date(2026, 11, 7))  # a Saturday
        await sla.save_config(session, SlaConfig(
            timezone="America/New_York", public_holidays="US",
            hours={"tue": [["09:00", "17:00"]], "sat": [["10:00", "14:00"]]},
            closed_days=[date(2026, 11, 14)]))
        await session.commit()
    async with sessions() as session:
        saved = await report_calendar(session)
    assert saved.day_of(datetime(2026, 11, 2, 3, 0, tzinfo=UTC)) == date(2026, 11, 1)
    assert saved.is_business_day(date(2026, 11, 3))  # a Tuesday, 文化の日 is not a US holiday
    assert saved.is_business_day(date(2026, 11, 7))  # a Saturday with hours
    assert not saved.is_business_day(date(2026, 11, 2))  # a Monday without hours
    assert not saved.is_business_day(date(2026, 11, 14))  # the shop's closed day
    assert not saved.is_business_day(date(2026, 11, 26))  # Thanksgiving (a Thursday anyway)
    assert saved.is_business_day(date(2026, 11, 24))  # a plain Tuesday


async def test_the_rollup_worker_folds_events_into_the_sla_time_zones_days(
        engine: AsyncEngine, database_url: str) -> None:
    sessions = event_sessions(engine)
    at = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)  # 12:00 in Tokyo, 22:00 the day before in New York
    async with sessions() as session:
        await sla.save_config(session, SlaConfig(timezone="America/New_York"))
        event_log.record(session, type="ticket.created", at=at, inbox_id=1, data={"ticket": {
            "id": 1, "status": "unhandled", "assignee_id": None, "inbox_id": 1,
            "created_at": at.isoformat(), "first_response_at": None}})
        await session.commit()
    await tasks.RollupWorker(sessions, Settings(database_url=database_url)).run_once()
    async with sessions() as session:
        days = [(row.day, row.created) for row in await session.scalars(select(ReportInboxDay))]
    assert days == [(date(2026, 11, 1), 1)]


async def test_the_reports_page_marks_the_shops_closed_days(
        engine: AsyncEngine, http: httpx.AsyncClient, staff: Staff) -> None:
    sessions = event_sessions(engine)
    at = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # Monday 2 November, 10:00 in Tokyo
    async with sessions() as session:
        await sla.save_config(session, SlaConfig(closed_days=[date(2026, 11, 2)]))
        event_log.record(session, type="ticket.created", at=at, inbox_id=1, data={"ticket": {
            "id": 1, "status": "unhandled", "assignee_id": None, "inbox_id": 1,
            "created_at": at.isoformat(), "first_response_at": None}})
        await session.commit()
    async with sessions() as session:
        calendar = await report_calendar(session)
    await tasks.catch_up(sessions, calendar)
    boss = await staff.create("boss", Role.supervisor)
    page = await http.get("/reports", params={"range": "custom", "from": "2026-11-02", "to": "2026-11-02"},
                          headers=staff.headers(boss))
    assert page.status_code == 200, page.text
    chart = page.text.split('id="daily-chart"', 1)[1]
    assert 'class="closed-day"' in chart and 'class="business"' not in chart
