"""Finding 2: nobody can lock anyone out, and the lock tells nobody which accounts exist.

Failures count per account and per address: five from one address lock that address out of
that account (known or not, alike); the account itself locks only after failures from many
addresses, and the administrators are told; each address has a sign-in rate limit.
"""

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.audit.models import AuditLog
from helpdesk.auth.models import Role, User
from helpdesk.auth.throttle import MemoryCounters
from tests.security.signin import client_from, form_login, token_login
from tests.support.server import LiveServer, make_settings
from tests.support.services import unique_prefix
from tests.support.staff import PASSWORD, Staff

# Small numbers, so a test reaches each threshold in a few requests.
STRICT = {"account_lockout_failures": 6, "account_lockout_addresses": 3,
          "login_attempts_per_minute": 12}


@pytest.fixture(scope="module")
def strict(database_url: str) -> Iterator[LiveServer]:
    with LiveServer(make_settings(database_url, **STRICT)) as live:
        yield live


async def _actions(db: AsyncSession) -> list[str]:
    await db.rollback()
    return list(await db.scalars(select(AuditLog.action).order_by(AuditLog.id)))


async def test_unknown_and_known_accounts_get_the_same_answers(
        http: httpx.AsyncClient, staff: Staff) -> None:
    await staff.create("op")
    answers = {}
    for email in ("op@example.com", "nobody@example.com"):
        replies = [await token_login(http, email, f"wrong-{n}") for n in range(5)]
        replies.append(await token_login(http, email, PASSWORD))
        answers[email] = [(r.status_code, r.json()["detail"]) for r in replies]
    assert answers["op@example.com"] == answers["nobody@example.com"]
    assert [code for code, _ in answers["op@example.com"]] == [401, 401, 401, 401, 423, 423]


async def test_the_lock_holds_only_the_address_that_failed(
        server: LiveServer, http: httpx.AsyncClient, staff: Staff, db: AsyncSession) -> None:
    await staff.create("admin", Role.admin)
    for n in range(5):
        await token_login(http, "admin@example.com", f"guess-{n}")
    assert (await token_login(http, "admin@example.com")).status_code == 423
    async with client_from(server.url, "127.0.0.2") as elsewhere:
        assert (await token_login(elsewhere, "admin@example.com")).status_code == 200
        # The page sign-in too, and this address's one failure does not add to the lock.
        assert (await token_login(elsewhere, "admin@example.com", "typo")).status_code == 401
        assert (await form_login(elsewhere, "admin@example.com")).status_code == 303
    user = await db.scalar(select(User).where(User.email == "admin@example.com"))
    assert user is not None and user.locked_until is None


async def test_failures_from_many_addresses_lock_the_account_and_the_admins_see_it(
        strict: LiveServer, engine: object, staff: Staff, db: AsyncSession) -> None:
    admin = await staff.create("admin", Role.admin)
    target = await staff.create("tanaka", Role.operator)
    for address in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
        async with client_from(strict.url, address) as attacker:
            for n in range(2):
                assert (await token_login(attacker, "tanaka@example.com", f"x{n}")).status_code == 401
    actions = await _actions(db)
    assert actions.count("account.locked") == 1
    async with client_from(strict.url, "127.0.0.5") as owner:
        # A wrong password says nothing of the lock; the right one says what happened.
        assert (await token_login(owner, "tanaka@example.com", "nope")).status_code == 401
        locked = await token_login(owner, "tanaka@example.com")
        assert locked.status_code == 423 and "many places" in locked.json()["detail"]
    async with httpx.AsyncClient(base_url=strict.url, cookies={"helpdesk_session": Staff.cookie(admin)},
                                 timeout=30) as browser:
        page = await browser.get("/admin/users")
        assert 'id="locked-accounts"' in page.text and "tanaka@example.com" in page.text
        token = page.text.split('name="csrf-token" content="')[1].split('"')[0]
        unlocked = await browser.post(f"/admin/users/{target.id}/unlock",
                                      headers={"X-CSRF-Token": token, "HX-Request": "true"})
        assert unlocked.status_code == 200 and 'id="locked-accounts"' not in unlocked.text
    for address in ("127.0.0.2", "127.0.0.5"):
        async with client_from(strict.url, address) as client:
            assert (await token_login(client, "tanaka@example.com")).status_code == 200
    assert "user.unlock" in await _actions(db)


async def test_an_address_is_rate_limited_across_accounts(
        strict: LiveServer, engine: object, staff: Staff) -> None:
    await staff.create("op")
    async with client_from(strict.url, "127.0.0.6") as sprayer:
        codes = [(await token_login(sprayer, f"user{n}@example.com", "Password1")).status_code
                 for n in range(STRICT["login_attempts_per_minute"] + 1)]
        assert codes[:-1] == [401] * STRICT["login_attempts_per_minute"]
        assert codes[-1] == 429
        assert (await token_login(sprayer, "op@example.com")).status_code == 429
    async with client_from(strict.url, "127.0.0.7") as other:
        assert (await token_login(other, "op@example.com")).status_code == 200


async def test_memory_counters_forget_after_the_lockout() -> None:
    counters = MemoryCounters()
    assert await counters.fail("acct", "10.0.0.1", ttl=0.2) == (1, 1)
    assert await counters.fail("acct", "10.0.0.2", ttl=0.2) == (1, 2)
    assert (await counters.failures("acct", "10.0.0.1"))[0] == 1
    await asyncio.sleep(0.25)  # the subject: the 0.2 s lockout runs out
    assert await counters.failures("acct", "10.0.0.1") == (0, 0.0)


async def test_with_redis_every_process_counts_the_same_failures(
        database_url: str, redis_url: str, engine: object, staff: Staff) -> None:
    await staff.create("op")
    settings = make_settings(database_url, redis_url=redis_url, redis_channel=unique_prefix())
    with LiveServer(settings) as one, LiveServer(settings) as two:
        async with httpx.AsyncClient(base_url=one.url) as first, \
                httpx.AsyncClient(base_url=two.url) as second:
            for n in range(3):
                assert (await token_login(first, "op@example.com", f"w{n}")).status_code == 401
            codes = [(await token_login(second, "op@example.com", f"v{n}")).status_code
                     for n in range(2)]
            assert codes == [401, 423]  # the fifth failure, counted across both servers
            assert (await token_login(first, "op@example.com")).status_code == 423
