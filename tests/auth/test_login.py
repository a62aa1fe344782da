"""Signing in: tokens, lockout after repeated failures, and the audit trail."""

from datetime import datetime, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.audit.models import AuditLog
from helpdesk.auth.models import User
from helpdesk.db import utcnow
from helpdesk.storage.sessions import begin_write
from tests.support.staff import PASSWORD, Staff


async def actions(db: AsyncSession) -> list[str]:
    await db.rollback()
    return list(await db.scalars(select(AuditLog.action).order_by(AuditLog.id)))


async def test_json_and_form_logins_give_a_working_token(http: httpx.AsyncClient,
                                                         staff: Staff) -> None:
    await staff.create("op")
    as_json = await http.post("/api/auth/token", json={"email": "OP@example.com", "password": PASSWORD})
    as_form = await http.post("/api/auth/token", data={"email": "op@example.com", "password": PASSWORD})
    for response in (as_json, as_form):
        assert response.status_code == 200, response.text
        assert response.json()["token_type"] == "bearer"
    me = await http.get("/api/auth/me",
                        headers={"Authorization": f"Bearer {as_json.json()['access_token']}"})
    assert me.status_code == 200 and me.json()["email"] == "op@example.com"
    assert "password_hash" not in me.json()


async def test_wrong_password_is_401_and_audited(http: httpx.AsyncClient, staff: Staff,
                                                 db: AsyncSession) -> None:
    await staff.create("op")
    wrong = await http.post("/api/auth/token", json={"email": "op@example.com", "password": "nope"})
    unknown = await http.post("/api/auth/token", json={"email": "who@example.com", "password": "x"})
    assert (wrong.status_code, unknown.status_code) == (401, 401)
    assert await actions(db) == ["login.failed", "login.failed"]


async def test_five_failures_lock_this_address_out_of_the_account_for_fifteen_minutes(
        http: httpx.AsyncClient, staff: Staff, db: AsyncSession) -> None:
    await staff.create("op")
    codes = [(await http.post("/api/auth/token", json={"email": "op@example.com",
                                                       "password": f"wrong{i}"})).status_code
             for i in range(5)]
    assert codes == [401, 401, 401, 401, 423]
    right = await http.post("/api/auth/token", json={"email": "op@example.com", "password": PASSWORD})
    assert right.status_code == 423  # even the right password, from this address, while locked
    until = datetime.fromisoformat(right.json()["locked_until"])
    assert timedelta(minutes=14) < until - utcnow() <= timedelta(minutes=15)
    logged = await actions(db)
    assert logged.count("login.failed") == 5
    assert "address.locked" in logged and logged[-1] == "login.locked"
    user = await db.scalar(select(User).where(User.email == "op@example.com")
                           .execution_options(populate_existing=True))
    assert user is not None and user.locked_until is None  # the account itself is not locked
    assert user.failed_logins == 5


async def test_a_success_resets_the_failure_count(http: httpx.AsyncClient, staff: Staff) -> None:
    await staff.create("op")
    for _ in range(4):
        await http.post("/api/auth/token", json={"email": "op@example.com", "password": "bad"})
    assert (await http.post("/api/auth/token",
                            json={"email": "op@example.com", "password": PASSWORD})).status_code == 200
    for _ in range(4):
        await http.post("/api/auth/token", json={"email": "op@example.com", "password": "bad"})
    again = await http.post("/api/auth/token", json={"email": "op@example.com", "password": PASSWORD})
    assert again.status_code == 200


async def test_malformed_login_bodies_are_422(http: httpx.AsyncClient) -> None:
    for kwargs in ({"content": b"{", "headers": {"Content-Type": "application/json"}},
                   {"json": {"email": "x@example.com"}}, {"json": ["not", "an", "object"]},
                   {"json": {"email": "x@example.com", "password": "p" * 5000}}):
        response = await http.post("/api/auth/token", **kwargs)  # type: ignore[arg-type]
        assert response.status_code == 422, response.text


async def test_token_of_a_deactivated_user_stops_working(http: httpx.AsyncClient, staff: Staff,
                                                         db: AsyncSession) -> None:
    op = await staff.create("op")
    assert (await http.get("/api/auth/me", headers=Staff.headers(op))).status_code == 200
    await begin_write(db)
    user = await db.get(User, op.id, populate_existing=True)
    assert user is not None
    user.is_active = False
    await db.commit()
    assert (await http.get("/api/auth/me", headers=Staff.headers(op))).status_code == 401


async def test_ticket_changes_are_audited(http: httpx.AsyncClient, staff: Staff,
                                          db: AsyncSession) -> None:
    from tests.support.inbound import post_inbound

    op = await staff.create("op", inboxes=["default"])
    ticket_id = (await post_inbound(http, "k")).json()["ticket_id"]
    await http.patch(f"/api/tickets/{ticket_id}", headers=Staff.headers(op),
                     json={"version": 1, "status": "resolved"})
    await db.rollback()
    row = await db.scalar(select(AuditLog).where(AuditLog.action == "ticket.update"))
    assert row is not None and row.actor_id == op.id and row.target_id == str(ticket_id)
    assert row.detail["before"] == {"status": "unhandled"}
