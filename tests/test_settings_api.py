"""The admin settings documents (SLA, CTI, an inbox's approval rule, voice and assignment policy)
share one shape: defaults until saved, checks that need the database, the audit row, 404 for a
missing inbox."""

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.audit.models import AuditLog
from helpdesk.auth.models import Role
from helpdesk.inboxes import service as inbox_service
from tests.support.staff import Staff

MISSING_INBOX = 999_999


async def _audit(db: AsyncSession) -> list[tuple[str, str | None, str | None, int | None, bool]]:
    await db.rollback()  # a fresh snapshot: the server committed since this session last read
    rows = await db.scalars(select(AuditLog).where(AuditLog.action.in_(  # type: ignore[attr-defined]
        ["sla.update", "cti.update", "inbox.approval", "inbox.voice.update", "inbox.assignment"]))
        .order_by(AuditLog.id))
    return [(r.action, r.target_type, r.target_id, r.actor_id, bool(r.ip)) for r in rows]


async def test_each_document_reads_its_defaults_and_saves_audited(
        http: httpx.AsyncClient, staff: Staff, db: AsyncSession) -> None:
    admin = await staff.create("admin", Role.admin)
    headers, admin_id = Staff.headers(admin), admin.id
    inbox = (await inbox_service.inbox_by_name(db, "default")).id
    documents: list[tuple[str, dict[str, Any], str]] = [
        ("/api/admin/sla", {"timezone": "Asia/Tokyo", "hours": {"mon": [["09:00", "18:00"]]}}, "timezone"),
        ("/api/admin/cti", {"blocked_caller_ids": ["非通知", "03-0000-0000"]}, "blocked_caller_ids"),
        (f"/api/admin/inboxes/{inbox}/approval", {"required_for": [admin_id]}, "required_for"),
        (f"/api/admin/inboxes/{inbox}/voice", {"greeting": "お電話ありがとうございます"}, "greeting"),
        (f"/api/admin/inboxes/{inbox}/assignment", {"policy": "round_robin"}, "policy"),
    ]
    for url, body, field in documents:
        before = await http.get(url, headers=headers)
        assert before.status_code == 200, (url, before.text)
        saved = await http.put(url, json={**before.json(), **body}, headers=headers)
        assert saved.status_code == 200, (url, saved.text)
        assert saved.json()[field] == body[field]
        assert (await http.get(url, headers=headers)).json() == saved.json()
    assert await _audit(db) == [("sla.update", "sla_settings", "1", admin_id, True),
                                ("cti.update", "cti_settings", "1", admin_id, True),
                                ("inbox.approval", "inbox", str(inbox), admin_id, True),
                                ("inbox.voice.update", "inbox", str(inbox), admin_id, True),
                                ("inbox.assignment", "inbox", str(inbox), admin_id, True)]
    assignment = await db.scalar(select(AuditLog).where(AuditLog.action == "inbox.assignment"))
    assert assignment is not None and assignment.detail == {"policy": "round_robin"}


async def test_an_inbox_s_document_refuses_a_missing_inbox_and_names_that_do_not_exist(
        http: httpx.AsyncClient, staff: Staff, db: AsyncSession) -> None:
    headers = Staff.headers(await staff.create("admin", Role.admin))
    inbox = (await inbox_service.inbox_by_name(db, "default")).id
    for kind, body in (("approval", {"required_for": "all_operators"}), ("voice", {}),
                       ("assignment", {"policy": "manual"})):
        url = f"/api/admin/inboxes/{MISSING_INBOX}/{kind}"
        assert (await http.get(url, headers=headers)).status_code == 404
        assert (await http.put(url, json=body, headers=headers)).status_code == 404
    unknown_user = await http.put(f"/api/admin/inboxes/{inbox}/approval",
                                  json={"required_for": [MISSING_INBOX]}, headers=headers)
    assert unknown_user.status_code == 422 and "required_for" in unknown_user.text
    unknown_inbox = await http.put(f"/api/admin/inboxes/{inbox}/voice", headers=headers, json={
        "menu": [{"digit": "1", "label": "営業", "inbox_id": MISSING_INBOX}]})
    assert unknown_inbox.status_code == 422 and "menu 1" in unknown_inbox.text
    unknown_operator = await http.put(f"/api/admin/inboxes/{inbox}/assignment", headers=headers,
                                      json={"policy": "least_loaded", "capacity": {str(MISSING_INBOX): 3}})
    assert unknown_operator.status_code == 422 and "capacity" in unknown_operator.text
    voice = (await http.get(f"/api/admin/inboxes/{inbox}/voice", headers=headers)).json()
    assert voice["menu"] == []
    assert (await http.get(f"/api/admin/inboxes/{inbox}/approval", headers=headers)).json() == {
        "required_for": "none"}
    assert await _audit(db) == []
