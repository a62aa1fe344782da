"""Send approval over HTTP: held replies are not sent until approved; returned ones keep the comment."""

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.auth.models import Role
from helpdesk.inboxes.models import Inbox
from helpdesk.outbox.models import OutboxItem
from helpdesk.realtime.models import Event
from tests.support.inbound import post_inbound
from tests.support.staff import Staff


async def outbox_size(db: AsyncSession) -> int:
    await db.rollback()
    return int(await db.scalar(select(func.count()).select_from(OutboxItem)) or 0)


async def test_a_held_reply_waits_for_approval_and_a_returned_one_keeps_the_comment(
        http: httpx.AsyncClient, staff: Staff, db: AsyncSession) -> None:
    boss = Staff.headers(await staff.create("boss", Role.supervisor))
    op_user = await staff.create("op", Role.operator, inboxes=["default"])
    op, op_id = Staff.headers(op_user), op_user.id
    free = Staff.headers(await staff.create("free", Role.operator, inboxes=["default"]))
    inbox_id = await db.scalar(select(col(Inbox.id)))
    rule = await http.put(f"/api/admin/inboxes/{inbox_id}/approval", json={"required_for": [op_id]},
                          headers=boss)
    assert rule.status_code == 200 and rule.json() == {"required_for": [op_id]}
    ticket_id = (await post_inbound(http, "k1")).json()["ticket_id"]
    version = (await http.get(f"/api/tickets/{ticket_id}", headers=op)).json()["version"]

    held = await http.post(f"/api/tickets/{ticket_id}/messages", headers=op,
                           json={"body": "ご注文を確認しました", "version": version})
    assert held.status_code == 201 and held.json()["approval_status"] == "pending"
    assert held.json()["delivery_status"] is None
    assert await outbox_size(db) == 0
    ticket = (await http.get(f"/api/tickets/{ticket_id}", headers=op)).json()
    assert ticket["first_response_at"] is None  # nothing reached the customer yet
    queue = (await http.get("/api/approvals", headers=boss)).json()["items"]
    assert [(q["message"]["id"], q["ticket_id"], q["author_user_id"]) for q in queue] == [
        (held.json()["id"], ticket_id, op_id)]
    assert (await http.get("/api/approvals", headers=op)).status_code == 403
    assert (await http.post(f"/api/messages/{held.json()['id']}/approve", headers=op)).status_code == 403

    approved = await http.post(f"/api/messages/{held.json()['id']}/approve", headers=boss)
    assert approved.status_code == 200 and approved.json()["approval_status"] == "approved"
    assert approved.json()["delivery_status"] == "queued"
    assert await outbox_size(db) == 1
    again = await http.post(f"/api/messages/{held.json()['id']}/approve", headers=boss)
    assert again.status_code == 409 and await outbox_size(db) == 1

    version = (await http.get(f"/api/tickets/{ticket_id}", headers=op)).json()["version"]
    second = (await http.post(f"/api/tickets/{ticket_id}/messages", headers=op,
                              json={"body": "返金します", "version": version})).json()
    assert (await http.post(f"/api/messages/{second['id']}/reject", json={"comment": ""},
                            headers=boss)).status_code == 422
    returned = await http.post(f"/api/messages/{second['id']}/reject", headers=boss,
                               json={"comment": "返金の前に在庫を確認してください"})
    assert returned.status_code == 200 and returned.json()["approval_status"] == "rejected"
    assert returned.json()["approval_comment"] == "返金の前に在庫を確認してください"
    assert await outbox_size(db) == 1
    assert (await http.get("/api/approvals", headers=boss)).json()["items"] == []

    # Someone not on the list sends at once.
    version = (await http.get(f"/api/tickets/{ticket_id}", headers=free)).json()["version"]
    sent = await http.post(f"/api/tickets/{ticket_id}/messages", headers=free,
                           json={"body": "発送しました", "version": version})
    assert sent.json()["approval_status"] is None and await outbox_size(db) == 2

    types = [e.type for e in await db.scalars(select(Event).order_by(Event.seq))]
    assert types.count("message.approval_requested") == 2
    assert types.count("message.approved") == 1 and types.count("message.rejected") == 1
    history = (await http.get(f"/api/tickets/{ticket_id}/history", headers=boss)).json()["items"]
    rejected = [h for h in history if h["type"] == "message.rejected"]
    assert rejected[0]["data"]["comment"] == "返金の前に在庫を確認してください"


async def test_approval_rules_are_checked(http: httpx.AsyncClient, staff: Staff, db: AsyncSession) -> None:
    boss = Staff.headers(await staff.create("boss", Role.supervisor))
    inbox_id = await db.scalar(select(col(Inbox.id)))
    url = f"/api/admin/inboxes/{inbox_id}/approval"
    assert (await http.get(url, headers=boss)).json() == {"required_for": "none"}
    for bad in ({"required_for": "everyone"}, {"required_for": [987654]}, {"required_for": ["x"]}):
        assert (await http.put(url, json=bad, headers=boss)).status_code == 422, bad
    assert (await http.put(url, json={"required_for": "all_operators"}, headers=boss)).status_code == 200
    assert (await http.post("/api/messages/999999/approve", headers=boss)).status_code == 404
