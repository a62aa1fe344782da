"""Finding 5: signing out ends the session at once, and so do a new password and an
administrator's "sign out everywhere"; API tokens are listed and revocable.

Before, a cookie or token was only a signature: it worked for its whole twelve hours whatever
happened on the server.
"""

import re

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from websockets.asyncio.client import connect

from helpdesk.auth.dependencies import SESSION_COOKIE
from helpdesk.auth.models import AuthSession, Role
from tests.security.signin import form_login, token_login
from tests.support.server import LiveServer
from tests.support.staff import PASSWORD, Staff


def page_token(html: str) -> str:
    found = re.search(r'name="csrf-token" content="([0-9a-f]+)"', html)
    assert found
    return found.group(1)


async def me(server: LiveServer, *, cookie: str | None = None, token: str | None = None) -> int:
    """The status of GET /api/auth/me with only this credential."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        if cookie:
            client.cookies.set(SESSION_COOKIE, cookie)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return (await client.get("/api/auth/me", headers=headers)).status_code


async def socket_closes_with(server: LiveServer, token: str) -> int | None:
    async with connect(f"ws://127.0.0.1:{server.port}/ws?token={token}", proxy=None) as ws:
        await ws.wait_closed()
        return ws.close_code


async def test_signing_out_ends_the_cookie_on_the_server(
        server: LiveServer, http: httpx.AsyncClient, staff: Staff) -> None:
    await staff.create("sato", Role.operator)
    assert (await form_login(http, "sato@example.com")).status_code == 303
    cookie = http.cookies[SESSION_COOKIE]
    token = (await token_login(http, "sato@example.com")).json()["access_token"]
    assert await me(server, cookie=cookie) == 200
    page = await http.get("/me")
    out = await http.post("/logout", headers={"X-CSRF-Token": page_token(page.text)})
    assert out.status_code == 303
    assert await me(server, cookie=cookie) == 401  # a copy of the cookie is worth nothing now
    assert await me(server, token=token) == 200  # other sessions go on


async def test_a_new_password_ends_every_other_session_and_token(
        server: LiveServer, http: httpx.AsyncClient, staff: Staff) -> None:
    user = await staff.create("sato", Role.operator)
    await form_login(http, "sato@example.com")
    page = await http.get("/me")
    changed = await http.post("/me/password", data={
        "current": PASSWORD, "new": "a brand new password", "csrf_token": page_token(page.text)})
    assert changed.status_code == 303
    assert await me(server, token=Staff.token(user)) == 401
    assert await me(server, cookie=Staff.cookie(user)) == 401
    assert await socket_closes_with(server, Staff.token(user)) == 4401
    assert (await http.get("/api/auth/me")).status_code == 200  # this browser was signed in again
    assert (await token_login(http, "sato@example.com")).status_code == 401
    assert (await token_login(http, "sato@example.com", "a brand new password")).status_code == 200


async def test_an_admin_signs_a_user_out_everywhere(
        server: LiveServer, http: httpx.AsyncClient, staff: Staff) -> None:
    admin = await staff.create("admin", Role.admin)
    user = await staff.create("sato", Role.operator)
    extra = (await token_login(http, "sato@example.com")).json()["access_token"]
    http.cookies.set(SESSION_COOKIE, Staff.cookie(admin))
    page = await http.get("/admin/users")
    done = await http.post(f"/admin/users/{user.id}/sign-out",
                           headers={"X-CSRF-Token": page_token(page.text), "HX-Request": "true"})
    assert done.status_code == 200
    for credential in ({"token": Staff.token(user)}, {"token": extra}, {"cookie": Staff.cookie(user)}):
        assert await me(server, **credential) == 401, credential
    assert await me(server, cookie=Staff.cookie(admin)) == 200


async def test_tokens_are_listed_and_revocable(
        server: LiveServer, http: httpx.AsyncClient, staff: Staff, db: AsyncSession) -> None:
    user = await staff.create("sato", Role.operator)
    second = (await token_login(http, "sato@example.com")).json()["access_token"]
    headers = {"Authorization": f"Bearer {second}"}
    listed = await http.get("/api/auth/sessions", headers=headers)
    assert listed.status_code == 200
    items = listed.json()["items"]
    assert len(items) == 3  # the two Staff made and this one
    assert [i["current"] for i in items] == [True, False, False]
    assert {i["kind"] for i in items} == {"api", "browser"}
    first_api = next(i["id"] for i in items if i["kind"] == "api" and not i["current"])
    assert (await http.delete(f"/api/auth/sessions/{first_api}", headers=headers)).status_code == 204
    assert await me(server, token=Staff.token(user)) == 401
    assert (await http.delete(f"/api/auth/sessions/{first_api}", headers=headers)).status_code == 404
    assert (await http.post("/api/auth/logout", headers=headers)).status_code == 204
    assert await me(server, token=second) == 401
    assert await me(server, cookie=Staff.cookie(user)) == 200
    # Nothing secret is stored: only hashes of the random part of each credential.
    await db.rollback()
    hashes = list(await db.scalars(select(AuthSession.secret_hash)))
    assert all(len(h) == 64 and h not in second for h in hashes)


async def test_someone_elses_session_cannot_be_revoked(
        server: LiveServer, http: httpx.AsyncClient, staff: Staff, db: AsyncSession) -> None:
    sato = await staff.create("sato", Role.operator)
    other = await staff.create("other", Role.operator)
    await db.rollback()
    theirs = await db.scalar(select(func.min(AuthSession.id)).where(AuthSession.user_id == other.id))
    refused = await http.delete(f"/api/auth/sessions/{theirs}", headers=Staff.headers(sato))
    assert refused.status_code == 404
    for hostile in (2**70, 0, -1):
        answer = await http.delete(f"/api/auth/sessions/{hostile}", headers=Staff.headers(sato))
        assert answer.status_code == 422, hostile
    assert await me(server, token=Staff.token(other)) == 200
