"""Finding customers by name, reading, email, phone or order number; the profile by phone."""

from typing import Any

import httpx
import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from helpdesk.audit.models import AuditLog
from helpdesk.auth.models import Role
from helpdesk.calls.recent import recent_calls
from helpdesk.profiles import service as profiles
from helpdesk.realtime.log import event_sessions
from tests.customers.helpers import upload
from tests.support.inbound import inbound_body, post_inbound
from tests.support.staff import Staff

CONTRACT_KEYS = {"id", "name", "name_kana", "emails", "phones", "line_ids", "tags", "rank", "ltv",
                 "orders_count", "total_spent", "first_order_at", "last_order_at", "dormant",
                 "orders", "open_tickets", "recent_calls"}


@pytest.fixture
async def imported(http: httpx.AsyncClient, staff: Staff) -> dict[str, str]:
    headers = Staff.headers(await staff.create("boss", Role.supervisor))
    await upload(http, headers, "customers", "customers_sjis.csv")
    await upload(http, headers, "orders", "orders_shopify_bom.csv")
    return headers


@pytest.mark.parametrize("query", ["山田", "ヤマダ", "やまだ", "ﾀﾛｳ", "taro@example", "TARO@EXAMPLE.JP",
                                   "090-1234-5678", "０９０１２３４５６７８", "+81 90-1234-5678",
                                   "#1005", "1001"])
async def test_search_finds_a_customer_every_way(http: httpx.AsyncClient, imported: dict[str, str],
                                                 query: str) -> None:
    found = (await http.get("/api/customers", params={"q": query}, headers=imported)).json()
    assert [c["name"] for c in found["items"]] == ["山田 太郎"], query


async def test_phone_in_any_format_and_the_profile_shape(http: httpx.AsyncClient,
                                                         imported: dict[str, str]) -> None:
    for phone in ("090-1234-5678", "０９０－１２３４－５６７８", "+819012345678"):
        found = (await http.get("/api/customers", params={"phone": phone}, headers=imported)).json()
        assert [c["name"] for c in found["items"]] == ["山田 太郎"]
    customer_id = found["items"][0]["id"]
    profile = (await http.get(f"/api/customers/{customer_id}", headers=imported)).json()
    assert set(profile) >= CONTRACT_KEYS
    assert profile["recent_calls"] == [] and profile["open_tickets"] == []
    assert set(profile["orders"][0]) == {"number", "ordered_at", "status", "total", "currency", "items"}
    assert set(profile["orders"][0]["items"][0]) == {"sku", "name", "quantity", "unit_price"}
    assert (await http.get("/api/customers/999999", headers=imported)).status_code == 404


async def test_profile_by_phone_over_http_in_any_spelling_audited(
        http: httpx.AsyncClient, imported: dict[str, str], db: AsyncSession) -> None:
    for phone in ("090-1234-5678", "０９０－１２３４－５６７８", "+81 90 1234 5678"):
        response = await http.get("/api/customers/by-phone", params={"phone": phone}, headers=imported)
        assert response.status_code == 200, response.text
        profile = response.json()
        assert set(profile) >= CONTRACT_KEYS and profile["name"] == "山田 太郎"
        assert [o["number"] for o in profile["orders"]] == ["#1005", "#1004", "#1001"]
    views = list(await db.scalars(select(col(AuditLog.target_id)).where(
        col(AuditLog.action) == "customer.view")))
    assert views == [str(profile["id"])] * 3
    for unknown in ("03-0000-0000", "非通知"):
        response = await http.get("/api/customers/by-phone", params={"phone": unknown}, headers=imported)
        assert response.status_code == 404
    assert (await http.get("/api/customers/by-phone", params={"phone": "090-1234-5678"})).status_code == 401


async def test_profile_by_phone_is_a_bounded_number_of_queries(
        engine: AsyncEngine, db: AsyncSession, http: httpx.AsyncClient, imported: dict[str, str],
        staff: Staff) -> None:
    operator = await staff.create("op", Role.operator, inboxes=["default"])
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.startswith(("BEGIN", "SELECT pg_advisory")):
            statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        async with event_sessions(engine)() as session:
            profile = await profiles.profile_by_phone(session, "０９０－１２３４－５６７８",
                                                      viewer=operator, recent_calls=recent_calls)
            assert profile is not None and profile.name == "山田 太郎"
            assert [o.number for o in profile.orders] == ["#1005", "#1004", "#1001"]
            assert [len(o.items) for o in profile.orders] == [1, 1, 2]
            found = len(statements)
            statements.clear()
            assert await profiles.profile_by_phone(session, "03-0000-0000", viewer=operator,
                                                   recent_calls=recent_calls) is None
            unknown = len(statements)
            assert await profiles.profile_by_phone(session, "非通知", viewer=operator,
                                                   recent_calls=recent_calls) is None
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    # customer with identities (found by the phone index), orders with items, open tickets (and
    # their tags when there are some) and recent calls in the viewer's inboxes
    assert found == 4, statements
    assert unknown == 1
    assert len(statements) == 1  # a withheld number costs no query


async def test_profile_open_tickets_carry_their_tags(http: httpx.AsyncClient, staff: Staff) -> None:
    op = await staff.create("op", inboxes=["default"])
    headers = Staff.headers(op)
    created = await post_inbound(http, "tags-1", inbound_body(
        name="山田 花子", email="hana@example.jp", phone="090-3333-4444"))
    ticket_id = created.json()["ticket_id"]
    version = (await http.get(f"/api/tickets/{ticket_id}", headers=headers)).json()["version"]
    tagged = await http.patch(f"/api/tickets/{ticket_id}", headers=headers,
                              json={"version": version, "tags": ["返品", "VIP", "急ぎ"]})
    assert tagged.status_code == 200, tagged.text
    profile = (await http.get("/api/customers/by-phone", params={"phone": "09033334444"},
                              headers=headers)).json()
    assert [t["tags"] for t in profile["open_tickets"]] == [sorted(["返品", "VIP", "急ぎ"])]
