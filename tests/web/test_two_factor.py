"""Two-factor sign-in in the browser: setting it up, signing in with a code or a recovery code,
codes that work once, and an administrator requiring it of a role."""

import time

import httpx
import pyotp
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.audit.models import AuditLog
from helpdesk.auth import totp
from helpdesk.auth.models import RecoveryCode, Role, User
from helpdesk.auth.sealing import Sealer
from helpdesk.db import utcnow
from helpdesk.storage.sessions import begin_write
from tests.support.browser import Tab, Tabs
from tests.support.database import Peek
from tests.support.staff import PASSWORD, Staff
from tests.web.test_i18n import check


async def sign_in(tab: Tab, email: str) -> None:
    await tab.goto("/login")
    await tab.page.fill("input[name=email]", email)
    await tab.page.fill("input[name=password]", PASSWORD)
    await tab.page.click("form[action='/login'] button.primary")
    await tab.page.wait_for_url("**/login/two-factor**")


async def enter_code(tab: Tab, code: str) -> None:
    await tab.page.fill("#totp-code", code)
    await tab.page.click("form[action='/login/two-factor'] button.primary")


async def sign_out(tab: Tab) -> None:
    await tab.page.click("form[action='/logout'] button")
    await tab.page.wait_for_url("**/login")


async def test_set_up_then_sign_in_with_a_code_and_with_a_recovery_code(
        tabs: Tabs, staff: Staff, peek: Peek) -> None:
    user = await staff.create("sato", Role.operator, inboxes=["default"])
    tab = await tabs.open(user)
    await tab.goto("/me")
    await tab.page.click("a[href='/me/two-factor']")
    secret = (await tab.page.inner_text("#totp-secret")).strip()
    assert (await tab.page.get_attribute("#totp-uri", "href") or "").startswith("otpauth://totp/")
    await check(tab, "ja", "/me/two-factor")
    totp, step = pyotp.TOTP(secret), int(time.time() // 30)
    await tab.page.fill("#totp-code", totp.at(step * 30))
    await tab.page.click("form[action='/me/two-factor'] button.primary")
    await tab.page.wait_for_selector("#recovery-codes")
    codes = [c.strip() for c in await tab.page.locator("#recovery-codes code").all_inner_texts()]
    assert len(codes) == 10 and len(set(codes)) == 10
    stored = await peek.scalars(select(RecoveryCode.code_hash).where(RecoveryCode.user_id == user.id))
    assert len(stored) == 10 and not set(stored) & {c.replace("-", "") for c in codes}
    key = await peek.scalars(select(User.totp_key).where(User.id == user.id))
    assert key[0] is not None and key[0].startswith("v1:") and secret not in key[0]  # sealed
    await tab.goto("/me")
    await sign_out(tab)

    await sign_in(tab, "sato@example.com")
    await check(tab, "ja", "/login/two-factor")
    assert "helpdesk_session" not in {c["name"] for c in await tab.context.cookies()}
    await enter_code(tab, totp.at(step * 30))  # the code that turned it on: used already
    await tab.page.wait_for_selector("#login-error")
    assert "コードが一致しません" in await tab.page.inner_text("#login-error")
    await enter_code(tab, totp.at((step + 1) * 30))
    await tab.page.wait_for_url("**/inbox")
    await sign_out(tab)

    await sign_in(tab, "sato@example.com")
    await enter_code(tab, codes[0].upper())  # recovery codes are not case-sensitive
    await tab.page.wait_for_url("**/inbox")
    await sign_out(tab)
    await sign_in(tab, "sato@example.com")
    await enter_code(tab, codes[0])  # each recovery code signs in once
    await tab.page.wait_for_selector("#login-error")
    assert "/login/two-factor" in tab.page.url
    actions = await peek.scalars(select(AuditLog.action).where(AuditLog.actor_id == user.id))
    assert "totp.enable" in actions and actions.count("login") == 2
    tab.assert_clean()


async def test_a_role_that_requires_it_sets_it_up_at_sign_in(
        tabs: Tabs, staff: Staff, peek: Peek, web: httpx.AsyncClient) -> None:
    admin = await staff.create("admin", Role.admin)
    await staff.create("suzuki", Role.operator, inboxes=["default"])
    boss = await tabs.open(admin)
    await boss.goto("/admin/users")
    await boss.page.check("#totp-policy input[value=operator]")
    await boss.page.click("#totp-policy button")
    await boss.page.wait_for_selector(".notice")
    assert await boss.page.is_checked("#totp-policy input[value=operator]")

    # The API cannot be used to get round it.
    refused = await web.post("/api/auth/token", json={"email": "suzuki@example.com", "password": PASSWORD})
    assert refused.status_code == 403 and refused.json()["totp_setup_required"] is True

    tab = await tabs.open(language="en")
    await sign_in(tab, "suzuki@example.com")
    assert "requires two-factor sign-in" in await tab.page.inner_text("main")
    await check(tab, "en", "/login/two-factor set up")
    secret = (await tab.page.inner_text("#totp-secret")).strip()
    await enter_code(tab, "000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
    await tab.page.wait_for_selector("#login-error")
    await enter_code(tab, pyotp.TOTP(secret).now())
    await tab.page.wait_for_selector("#recovery-codes")
    assert len(await tab.page.locator("#recovery-codes li").all()) == 10
    await check(tab, "en", "recovery codes")
    await tab.page.click("#continue")
    await tab.page.wait_for_url("**/inbox")
    row = await peek.scalar(select(User).where(User.email == "suzuki@example.com"))
    assert row.totp_enabled_at is not None

    # With the API, the code comes in the body.
    step = int(time.time() // 30) + 1
    no_code = await web.post("/api/auth/token", json={"email": "suzuki@example.com", "password": PASSWORD})
    assert no_code.status_code == 401 and no_code.json()["otp_required"] is True
    ok = await web.post("/api/auth/token", json={"email": "suzuki@example.com", "password": PASSWORD,
                                                 "otp": pyotp.TOTP(secret).at(step * 30)})
    assert ok.status_code == 200, ok.text
    tab.assert_clean()


async def test_a_key_no_secret_key_opens_says_so_and_a_recovery_code_still_signs_in(
        tabs: Tabs, staff: Staff, db: AsyncSession) -> None:
    user = await staff.create("kato", Role.operator, inboxes=["default"])
    key = pyotp.random_base32()
    await begin_write(db)
    row = await db.get(User, user.id)
    assert row is not None
    # Sealed under a secret key this server was never told of (rotated without listing it).
    row.totp_key = Sealer("a-secret-key-this-server-does-not-know-000").seal(key)
    row.totp_enabled_at = utcnow()
    codes = await totp.new_recovery_codes(db, row)
    await db.commit()

    tab = await tabs.open()
    await sign_in(tab, "kato@example.com")
    await enter_code(tab, pyotp.TOTP(key).now())
    await tab.page.wait_for_selector("#login-error")
    said = await tab.page.inner_text("#login-error")
    assert "認証アプリの鍵を読み取れません" in said and "リカバリーコード" in said
    await enter_code(tab, codes[0])
    await tab.page.wait_for_url("**/inbox")
    tab.assert_clean()
