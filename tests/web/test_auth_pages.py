"""Signing in and out of the pages: cookie flags, lockout shown, CSRF on the login form."""

import re

import httpx
from playwright.async_api import expect
from sqlalchemy import select

from helpdesk.audit.models import AuditLog
from helpdesk.auth.models import Role, User
from tests.support.browser import Tabs
from tests.support.database import Peek
from tests.support.staff import PASSWORD, Staff


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


async def test_sign_in_sets_a_safe_session_cookie_and_sign_out_clears_it(
        tabs: Tabs, staff: Staff) -> None:
    await staff.create("sato", Role.operator, inboxes=["default"])
    tab = await tabs.open()
    await tab.goto("/inbox")
    assert tab.page.url.endswith("/login?next=/inbox")
    await tab.page.fill("input[name=email]", "sato@example.com")
    await tab.page.fill("input[name=password]", PASSWORD)
    await tab.page.click("form[action='/login'] button.primary")
    await tab.page.wait_for_url("**/inbox")
    cookies = {c["name"]: c for c in await tab.context.cookies()}
    session = cookies["helpdesk_session"]
    assert session["httpOnly"] is True and session["sameSite"] == "Lax"
    assert cookies["helpdesk_csrf"]["httpOnly"] is True
    await tab.page.click("form[action='/logout'] button")
    await tab.page.wait_for_url("**/login")
    assert "helpdesk_session" not in {c["name"] for c in await tab.context.cookies()}
    await tab.goto("/inbox")
    assert "/login" in tab.page.url
    tab.assert_clean()


async def test_wrong_password_then_lockout_is_shown_in_japanese(
        tabs: Tabs, staff: Staff, peek: Peek) -> None:
    await staff.create("suzuki", Role.operator)
    tab = await tabs.open()
    for attempt in range(5):
        await tab.goto("/login")
        await tab.page.fill("input[name=email]", "suzuki@example.com")
        await tab.page.fill("input[name=password]", f"wrong-{attempt}")
        await tab.page.click("form[action='/login'] button.primary")
        await tab.page.wait_for_selector("#login-error")
    text = await tab.page.inner_text("#login-error")
    assert "ロックされています" in text
    # The right password is refused too while the lock holds.
    await tab.page.fill("input[name=email]", "suzuki@example.com")
    await tab.page.fill("input[name=password]", PASSWORD)
    await tab.page.click("form[action='/login'] button.primary")
    await tab.page.wait_for_selector("#login-error")
    assert "ロックされています" in await tab.page.inner_text("#login-error")
    assert "/login" in tab.page.url
    actions = await peek.scalars(select(AuditLog.action))
    # The lock holds this address out of the account, not the account (see tests/security).
    assert actions.count("login.failed") == 5 and "address.locked" in actions
    assert "login.locked" in actions and "account.locked" not in actions


async def test_admin_unlocks_a_locked_account_from_the_users_page(
        tabs: Tabs, staff: Staff, peek: Peek, web: httpx.AsyncClient) -> None:
    admin = await staff.create("admin", Role.admin)
    locked = await staff.create("tanaka", Role.operator)
    for attempt in range(5):
        await web.post("/api/auth/token", json={"email": "tanaka@example.com", "password": f"x{attempt}"})
    tab = await tabs.open(admin)
    await tab.goto("/admin/users")
    row = tab.page.locator(f"tr[data-user-id='{locked.id}']")
    assert "5" in await row.locator("td").nth(3).inner_text()  # five failures shown
    # The address that failed is locked out of the account until the admin unlocks it.
    refused = await web.post("/api/auth/token", json={"email": "tanaka@example.com", "password": PASSWORD})
    assert refused.status_code == 423
    await row.get_by_role("button", name="ロック解除").click()
    await tab.page.wait_for_selector(".notice")
    assert await tab.page.locator(f"tr[data-user-id='{locked.id}']").get_by_role(
        "button", name="ロック解除").count() == 0
    ok = await web.post("/api/auth/token", json={"email": "tanaka@example.com", "password": PASSWORD})
    assert ok.status_code == 200
    assert await peek.scalar(select(AuditLog.id).where(AuditLog.action == "user.unlock")) is not None
    tab.assert_clean()


async def test_login_form_without_csrf_token_is_refused(web: httpx.AsyncClient, staff: Staff) -> None:
    await staff.create("sato", Role.operator)
    page = await web.get("/login", headers={"accept": "text/html"})
    form = {"email": "sato@example.com", "password": PASSWORD}
    refused = await web.post("/login", data=form, headers={"accept": "text/html"})
    assert refused.status_code == 403 and "helpdesk_session" not in refused.cookies
    forged = await web.post("/login", data={**form, "csrf_token": "0" * 64})
    assert forged.status_code == 403
    accepted = await web.post("/login", data={**form, "csrf_token": csrf_of(page.text)})
    assert accepted.status_code == 303 and "helpdesk_session" in accepted.cookies


async def test_next_never_leaves_the_site(web: httpx.AsyncClient, staff: Staff) -> None:
    await staff.create("sato", Role.operator)
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        web.cookies.delete("helpdesk_session")  # each sign-in starts signed out (tokens are per session)
        page = await web.get("/login")
        response = await web.post("/login", data={
            "email": "sato@example.com", "password": PASSWORD, "csrf_token": csrf_of(page.text),
            "next": target})
        assert response.headers["location"] == "/inbox"


async def test_language_switch_is_saved_on_the_user(
        tabs: Tabs, staff: Staff, peek: Peek) -> None:
    user = await staff.create("sato", Role.operator, inboxes=["default"])
    tab = await tabs.open(user)
    await tab.goto("/inbox")
    assert await tab.page.get_attribute("html", "lang") == "ja"
    await tab.page.select_option("#lang-select", "en")
    await expect(tab.page.locator("html")).to_have_attribute("lang", "en")
    assert "Unhandled" in await tab.page.inner_text("#counts")
    assert await peek.scalar(select(User.language).where(User.id == user.id)) == "en"
    tab.assert_clean()
