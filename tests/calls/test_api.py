"""The caller log, done flags, after-call work and the admin's CTI settings."""

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.models import Role
from helpdesk.calls.models import Call
from helpdesk.tickets.models import Message
from tests.support.staff import Staff
from tests.support.telephony import cti_post, floor


async def ring(tel: httpx.AsyncClient, call_id: str, to: str = "05012345678",
               caller: str = "0312345678") -> None:
    response = await cti_post(tel, {"event": "newCall", "from": caller, "to": to, "direction": "in",
                                    "callId": call_id})
    assert response.status_code == 200


async def hang_up(tel: httpx.AsyncClient, call_id: str) -> None:
    await cti_post(tel, {"event": "hangup", "from": "0312345678", "to": "05012345678",
                         "direction": "in", "callId": call_id, "cause": "cancel"})


async def test_caller_log_is_newest_first_paginated_and_filtered_by_inbox(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    f = await floor(db, staff)
    op, boss = Staff.headers(f.sales_ops[0]), Staff.headers(f.supervisor)
    for i in range(5):
        await ring(tel, f"s{i}")
    await ring(tel, "support-1", to="0120000111")
    first = (await tel.get("/api/calls?limit=3", headers=op)).json()
    assert [c["call_id"] for c in first["items"]] == ["s4", "s3", "s2"]
    second = (await tel.get(f"/api/calls?limit=3&cursor={first['next_cursor']}", headers=op)).json()
    assert [c["call_id"] for c in second["items"]] == ["s1", "s0"] and second["next_cursor"] is None
    theirs = (await tel.get("/api/calls", headers=Staff.headers(f.other_op))).json()
    assert [c["call_id"] for c in theirs["items"]] == ["support-1"]
    everything = (await tel.get("/api/calls", headers=boss)).json()
    assert len(everything["items"]) == 6
    item = first["items"][0]
    assert set(item) >= {"id", "call_id", "provider", "direction", "from", "to", "state", "cause",
                         "done", "customer_id", "operator_id", "ticket_id", "queue", "started_at",
                         "answered_at", "ended_at", "wait_seconds", "talk_seconds", "recording_url"}
    assert item["from"] == "0312345678" and item["to"] == "05012345678"
    assert (await tel.get("/api/calls?cursor=%%%", headers=op)).status_code == 422
    assert (await tel.get("/api/calls?limit=0", headers=op)).status_code == 422
    assert (await tel.get("/api/calls")).status_code == 401


async def test_missed_calls_are_marked_done_one_by_one_or_all_at_once(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    f = await floor(db, staff)
    op = Staff.headers(f.sales_ops[0])
    for i in range(3):
        await ring(tel, f"m{i}")
        await hang_up(tel, f"m{i}")
    await ring(tel, "theirs", to="0120000111")
    open_calls = (await tel.get("/api/calls?done=false", headers=op)).json()["items"]
    ids = [c["id"] for c in open_calls]
    assert len(ids) == 3
    one = await tel.post(f"/api/calls/{ids[0]}/done", headers=op)
    assert one.status_code == 200 and one.json()["done"] is True
    theirs_id = (await tel.get("/api/calls", headers=Staff.headers(f.other_op))).json()["items"][0]["id"]
    assert (await tel.post(f"/api/calls/{theirs_id}/done", headers=op)).status_code == 404
    rest = await tel.post("/api/calls/done", json={"ids": [*ids[1:], theirs_id]}, headers=op)
    assert rest.json() == {"updated": 2}
    assert (await tel.get("/api/calls?done=false", headers=op)).json()["items"] == []
    still_open = (await tel.get("/api/calls?done=false", headers=Staff.headers(f.other_op))).json()
    assert [c["id"] for c in still_open["items"]] == [theirs_id]
    assert (await tel.post("/api/calls/done", json={"ids": []}, headers=op)).status_code == 422


async def test_wrap_up_notes_become_a_message_and_set_the_status(
        tel: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    f = await floor(db, staff)
    op = f.sales_ops[0]
    await ring(tel, "w1")
    await cti_post(tel, {"event": "answer", "from": "0312345678", "to": "05012345678",
                         "direction": "in", "callId": "w1", "user": op.email})
    call = (await tel.get("/api/calls", headers=Staff.headers(op))).json()["items"][0]
    assert call["ticket_id"] is not None
    response = await tel.post(f"/api/calls/{call['id']}/wrapup", headers=Staff.headers(op),
                              json={"notes": "返品の手順を案内した", "status": "resolved"})
    assert response.status_code == 201, response.text
    assert response.json()["internal"] is True and response.json()["body_text"] == "返品の手順を案内した"
    ticket = (await tel.get(f"/api/tickets/{call['ticket_id']}", headers=Staff.headers(op))).json()
    assert ticket["status"] == "resolved"
    assert ticket["messages"][-1]["body_text"] == "返品の手順を案内した"
    pending = await tel.post(f"/api/calls/{call['id']}/wrapup", headers=Staff.headers(op),
                             json={"notes": "折り返し待ち", "status": "pending"})
    assert pending.status_code == 422  # 保留 needs a reason
    await db.rollback()
    assert await db.scalar(select(Message.id).where(Message.body_text == "折り返し待ち")) is None
    await db.commit()


async def test_wrap_up_needs_a_visible_ticket(tel: httpx.AsyncClient, db: AsyncSession,
                                              staff: Staff) -> None:
    f = await floor(db, staff)
    await ring(tel, "w2")
    op = Staff.headers(f.sales_ops[0])
    call_id = (await tel.get("/api/calls", headers=op)).json()["items"][0]["id"]
    no_ticket = await tel.post(f"/api/calls/{call_id}/wrapup", headers=op, json={"notes": "x"})
    assert no_ticket.status_code == 422
    missing = await tel.post(f"/api/calls/{call_id}/wrapup", headers=op,
                             json={"notes": "x", "ticket_id": 999999})
    assert missing.status_code == 422
    other = await tel.post(f"/api/calls/{call_id}/wrapup", headers=Staff.headers(f.other_op),
                           json={"notes": "x"})
    assert other.status_code == 404
    empty = await tel.post(f"/api/calls/{call_id}/wrapup", headers=op, json={"notes": ""})
    assert empty.status_code == 422
    await db.rollback()
    assert (await db.get(Call, call_id)) is not None
    await db.commit()


async def test_admin_edits_the_cti_settings(tel: httpx.AsyncClient, db: AsyncSession,
                                            staff: Staff) -> None:
    admin = await staff.create("admin", role=Role.admin)
    op = await staff.create("op1")
    headers = Staff.headers(admin)
    assert (await tel.get("/api/admin/cti", headers=headers)).json() == {
        "blocked_caller_ids": [], "routing_table": [], "default_caller_id": None,
        "business_hours": None}
    config = {"blocked_caller_ids": ["0399990000", " "], "default_caller_id": "0501234567",
              "routing_table": [{"dest": "81*", "caller_id": "0501234567", "note": "domestic"}],
              "business_hours": {"days": [4, 0, 0], "open": "10:00", "close": "17:30"}}
    saved = (await tel.put("/api/admin/cti", json=config, headers=headers)).json()
    assert saved["blocked_caller_ids"] == ["0399990000"]
    assert saved["business_hours"]["days"] == [0, 4]
    assert (await tel.get("/api/admin/cti", headers=headers)).json() == saved
    assert (await tel.get("/api/admin/cti", headers=Staff.headers(op))).status_code == 403
    assert (await tel.put("/api/admin/cti", json=config, headers=Staff.headers(op))).status_code == 403
    for bad in ({"routing_table": [{"dest": "81.*", "caller_id": "1"}]},
                {"business_hours": {"days": [7]}}, {"business_hours": {"open": "25:00"}},
                {"blocked_caller_ids": ["1" * 41]}):
        assert (await tel.put("/api/admin/cti", json=bad, headers=headers)).status_code == 422
    assert (await tel.get("/api/admin/cti", headers=headers)).json() == saved
