"""The supervisors' reports page in Chromium: range, tables, chart, drill-down, CSV."""

import csv
import io
from zoneinfo import ZoneInfo

import httpx
from playwright.async_api import expect
from sqlalchemy.ext.asyncio import AsyncEngine

from helpdesk.auth.models import Role
from helpdesk.realtime.log import event_sessions
from helpdesk.reports import tasks
from helpdesk.reports.calendar import ReportCalendar
from tests.support.browser import Tabs
from tests.support.inbound import inbound_body, post_inbound
from tests.support.staff import Staff


async def resolved_ticket(web: httpx.AsyncClient, staff: Staff, engine: AsyncEngine) -> tuple[int, int, int]:
    """One ticket claimed, answered and resolved by a new operator; the rollups folded."""
    sato = await staff.create("sato", inboxes=["default"])
    created = (await post_inbound(web, "report-page-1", inbound_body("配送状況を教えてください"))).json()
    ticket_id = created["ticket_id"]
    headers = staff.headers(sato)
    version = (await web.post(f"/api/tickets/{ticket_id}/claim", headers=headers)).json()["version"]
    await web.post(f"/api/tickets/{ticket_id}/messages", headers=headers,
                   json={"body": "本日発送しました", "internal": False, "version": version})
    version = (await web.get(f"/api/tickets/{ticket_id}", headers=headers)).json()["version"]
    await web.patch(f"/api/tickets/{ticket_id}", headers=headers,
                    json={"version": version, "status": "resolved"})
    await post_inbound(web, "report-page-2", inbound_body("別件です", email="other@example.jp"))
    await tasks.catch_up(event_sessions(engine), ReportCalendar(zone=ZoneInfo("Asia/Tokyo")))
    number = (await web.get(f"/api/tickets/{ticket_id}", headers=headers)).json()["number"]
    assert sato.id is not None
    return sato.id, ticket_id, number


async def test_supervisor_reads_the_figures_drills_down_and_downloads_csv(
        tabs: Tabs, staff: Staff, web: httpx.AsyncClient, engine: AsyncEngine) -> None:
    sato_id, ticket_id, number = await resolved_ticket(web, staff, engine)
    boss = await staff.create("boss", Role.supervisor)
    tab = await tabs.open(boss)
    await tab.goto("/board")
    await tab.page.click("nav a[href='/reports']")
    await expect(tab.page.locator("h1")).to_have_text("レポート")
    row = tab.page.locator(f"#report-operators tr[data-user-id='{sato_id}']")
    await expect(row.locator("th")).to_have_text("sato")
    await expect(row.locator("a.drill")).to_have_text("1")
    inbox = tab.page.locator("#report-inboxes tbody tr").first
    await expect(inbox.locator("td").nth(0)).to_have_text("2")  # created
    await expect(inbox.locator("td").nth(2)).to_have_text("1")  # still unhandled at day end
    assert await tab.page.locator("#daily-chart rect.bar-created").count() >= 1

    await row.locator("a.drill").click()
    await expect(tab.page.locator("#drill-tickets tbody tr")).to_have_count(1)
    await expect(tab.page.locator(f"#drill-tickets tr[data-ticket-id='{ticket_id}'] a")).to_have_text(
        f"#{number}")
    await tab.page.click("a[href^='/reports?']")
    await expect(tab.page.locator("#report-period")).to_contain_text("期間指定")

    await tab.page.click("a[data-range='today']")
    await expect(tab.page.locator("#report-period")).to_contain_text("今日")
    await tab.page.click("a[data-range='month']")
    await expect(tab.page.locator("#report-period")).to_contain_text("今月")
    await tab.page.fill("#range-from", "2026-01-01")
    await tab.page.fill("#range-to", "2026-01-02")
    await tab.page.click("#custom-range button")
    await expect(tab.page.locator(".empty").first).to_have_text("この期間の記録はありません。")

    await tab.page.click("a[data-range='7d']")
    href = await tab.page.locator("#report-ops-title ~ .csv-links a").first.get_attribute("href")
    assert href is not None
    download = await tab.page.request.get(tab.base + href)
    assert download.status == 200
    body = await download.body()
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert [(r[2], r[3]) for r in rows[1:]] == [("sato", "1")]
    assert await tab.csp_violations() == []
    tab.assert_clean()


async def test_operators_do_not_see_reports(tabs: Tabs, staff: Staff) -> None:
    op = await staff.create("op", inboxes=["default"])
    tab = await tabs.open(op)
    await tab.goto("/inbox")
    assert await tab.page.locator("nav a[href='/reports']").count() == 0
    response = await tab.page.goto(tab.base + "/reports")
    assert response is not None and response.status == 403
