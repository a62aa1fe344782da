"""POST /api/customers/{id}/merge: everything of both customers ends up on one."""

from datetime import UTC, datetime
from decimal import Decimal

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from helpdesk.audit.models import AuditLog
from helpdesk.auth.models import Role
from helpdesk.calls.models import Call
from helpdesk.customers import orders as customer_orders
from helpdesk.customers.models import Customer, CustomerIdentity, IncomingOrder, Order, OrderLine
from helpdesk.storage.sessions import begin_write
from helpdesk.tickets.models import Ticket
from tests.support.inbound import inbound_body, post_inbound
from tests.support.staff import Staff


async def _order(db: AsyncSession, number: str, email: str, total: int, day: int) -> None:
    await begin_write(db)
    await customer_orders.record_order(db, IncomingOrder(
        source="csv", number=number, ordered_at=datetime(2025, 5, day, tzinfo=UTC),
        total=Decimal(total), email=email, items=[OrderLine(sku="S", name="品", unit_price=Decimal(total))]))


async def _two_customers(http: httpx.AsyncClient, db: AsyncSession) -> tuple[int, int]:
    one = (await post_inbound(http, "m1", inbound_body(name="合併 一", email="one@example.jp"))).json()
    two = (await post_inbound(http, "m2", inbound_body(
        name="合併 二", email="two@example.jp", phone="080-2222-3333"))).json()
    await db.rollback()
    ids = []
    for result in (one, two):
        ticket = await db.get(Ticket, result["ticket_id"])
        assert ticket is not None and ticket.customer_id is not None
        ids.append(ticket.customer_id)
    await _order(db, "M-1", "one@example.jp", 1000, 1)
    await _order(db, "M-2", "two@example.jp", 2000, 2)
    await _order(db, "M-3", "two@example.jp", 3000, 3)
    await db.commit()
    return ids[0], ids[1]


async def test_merge_keeps_every_order_ticket_call_and_identity(
        http: httpx.AsyncClient, db: AsyncSession, staff: Staff, engine: AsyncEngine) -> None:
    boss = Staff.headers(await staff.create("boss", Role.supervisor))
    keep, gone = await _two_customers(http, db)
    await begin_write(db)
    db.add_all([Call(provider="cti", call_id="CA1", direction="in", inbox_id=1, customer_id=gone),
                Call(provider="cti", call_id="CA2", direction="in", inbox_id=1, customer_id=keep)])
    await db.commit()
    response = await http.post(f"/api/customers/{keep}/merge", json={"other_id": gone},
                               headers=boss)
    assert response.status_code == 200, response.text
    moved = response.json()["moved"]
    assert (moved["order"], moved["ticket"], moved["call"]) == (2, 1, 1)
    assert moved["customer_identity"] == 2
    await db.rollback()
    owners = await db.scalars(select(Call.customer_id).order_by(Call.call_id))
    assert list(owners) == [keep, keep]
    await db.rollback()
    assert await db.get(Customer, gone) is None
    identities = set((await db.execute(select(CustomerIdentity.kind, CustomerIdentity.value)
                                       .where(CustomerIdentity.customer_id == keep))).all())
    assert identities == {("email", "one@example.jp"), ("email", "two@example.jp"),
                          ("phone", "+818022223333")}
    assert set(await db.scalars(select(Order.number).where(Order.customer_id == keep))) == {
        "M-1", "M-2", "M-3"}
    assert await db.scalar(select(func.count()).select_from(Ticket)
                           .where(Ticket.customer_id == keep)) == 2
    audit = await db.scalar(select(AuditLog).where(AuditLog.action == "customer.merge"))
    assert audit is not None and audit.target_id == str(keep) and audit.detail["merged_id"] == gone
    await db.rollback()
    profile = (await http.get(f"/api/customers/{keep}", headers=boss)).json()
    assert (profile["orders_count"], profile["total_spent"]) == (3, "6000.00")
    assert profile["last_order_at"].startswith("2025-05-03")
    assert len(profile["open_tickets"]) == 2
    # The search index follows: the merged customer's phone finds the survivor, once.
    found = (await http.get("/api/customers", params={"q": "080-2222-3333"}, headers=boss)).json()
    assert [c["id"] for c in found["items"]] == [keep]
    by_order = (await http.get("/api/customers", params={"q": "M-3"}, headers=boss)).json()
    assert [c["id"] for c in by_order["items"]] == [keep]


async def test_merge_is_for_supervisors_and_refuses_bad_requests(
        http: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    operator = Staff.headers(await staff.create("op"))
    boss = Staff.headers(await staff.create("boss", Role.supervisor))
    keep, gone = await _two_customers(http, db)
    url = f"/api/customers/{keep}/merge"
    assert (await http.post(url, json={"other_id": gone})).status_code == 401
    assert (await http.post(url, json={"other_id": gone}, headers=operator)).status_code == 403
    assert (await http.post(url, json={"other_id": keep}, headers=boss)).status_code == 422
    assert (await http.post(url, json={"other_id": 999999}, headers=boss)).status_code == 404
    assert (await http.post(url, json={"other_id": "x"}, headers=boss)).status_code == 422
    assert (await http.post(url, content=b"{", headers={**boss, "Content-Type": "application/json"})
            ).status_code == 422
    await db.rollback()
    assert await db.get(Customer, gone) is not None
    assert await db.scalar(select(func.count()).select_from(Order)
                           .where(Order.customer_id == gone)) == 2
    await db.rollback()
