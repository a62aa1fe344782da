"""Finding customers across channels, and their profile."""

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.audit.models import AuditLog
from tests.support.inbound import inbound_body, post_inbound
from tests.support.staff import Staff


async def test_one_customer_across_spellings_of_a_phone_number(http: httpx.AsyncClient,
                                                              staff: Staff) -> None:
    op = await staff.create("op", inboxes=["default"])
    first = await post_inbound(http, "a", {**inbound_body(name="佐藤 花子", phone="03-1234-5678"),
                                           "external_id": "1"})
    second = await post_inbound(http, "b", {**inbound_body(phone="+81 (0)3 1234 5678",
                                                           email="hanako@example.jp"),
                                            "external_id": "2"})
    tickets = [(await http.get(f"/api/tickets/{r.json()['ticket_id']}", headers=Staff.headers(op))
                ).json() for r in (first, second)]
    assert tickets[0]["customer_id"] == tickets[1]["customer_id"]
    for spelling in ("03-1234-5678", "０３－１２３４－５６７８", "+81312345678"):
        found = await http.get("/api/customers", params={"phone": spelling},
                               headers=Staff.headers(op))
        items = found.json()["items"]
        assert [c["name"] for c in items] == ["佐藤 花子"], spelling
        assert items[0]["emails"] == ["hanako@example.jp"]
    by_email = await http.get("/api/customers", params={"email": "HANAKO@example.jp"},
                              headers=Staff.headers(op))
    assert len(by_email.json()["items"]) == 1
    by_name = await http.get("/api/customers", params={"q": "佐藤"}, headers=Staff.headers(op))
    assert len(by_name.json()["items"]) == 1


async def test_withheld_numbers_create_no_phone_identity(http: httpx.AsyncClient,
                                                         staff: Staff) -> None:
    op = await staff.create("op", inboxes=["default"])
    for key in ("a", "b"):
        await post_inbound(http, key, {**inbound_body(name="匿名", phone="非通知"), "external_id": key})
    found = await http.get("/api/customers", params={"q": "匿名"}, headers=Staff.headers(op))
    assert len(found.json()["items"]) == 2  # two strangers, not merged by a withheld number
    assert all(c["phones"] == [] for c in found.json()["items"])


async def test_profile_shape_and_audit(http: httpx.AsyncClient, staff: Staff,
                                      db: AsyncSession) -> None:
    op = await staff.create("op", inboxes=["default"])
    result = (await post_inbound(http, "a", inbound_body(name="田中 一郎", email="t@example.jp"))).json()
    ticket = (await http.get(f"/api/tickets/{result['ticket_id']}", headers=Staff.headers(op))).json()
    profile = await http.get(f"/api/customers/{ticket['customer_id']}", headers=Staff.headers(op))
    assert profile.status_code == 200
    body = profile.json()
    assert set(body) >= {"id", "name", "name_kana", "emails", "phones", "line_ids", "tags", "rank",
                         "ltv", "orders_count", "total_spent", "first_order_at", "last_order_at",
                         "dormant", "orders", "open_tickets", "recent_calls"}
    assert [t["id"] for t in body["open_tickets"]] == [ticket["id"]]
    outsider = await staff.create("outsider", inboxes=[])  # works no inbox: sees none of its tickets
    hidden = await http.get(f"/api/customers/{ticket['customer_id']}", headers=Staff.headers(outsider))
    assert hidden.status_code == 200 and hidden.json()["open_tickets"] == []
    await db.rollback()
    audit = await db.scalar(select(AuditLog).where(AuditLog.action == "customer.view"))
    assert audit is not None and audit.target_id == str(ticket["customer_id"])
    missing = await http.get("/api/customers/999999", headers=Staff.headers(op))
    assert missing.status_code == 404


async def test_customer_lookups_need_a_staff_token(http: httpx.AsyncClient) -> None:
    assert (await http.get("/api/customers", params={"phone": "03-1234-5678"})).status_code == 401
    assert (await http.get("/api/customers/1")).status_code == 401
