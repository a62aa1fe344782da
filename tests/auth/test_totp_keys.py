"""Authenticator keys are sealed at rest: a copy of the database cannot make sign-in codes, keys
stored before sealing are sealed when the app starts, and rotating the secret key keeps them."""

import time

import httpx
import pyotp
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.models import Role, User
from helpdesk.auth.sealing import Sealer
from helpdesk.db import utcnow
from helpdesk.storage.sessions import begin_write
from tests.support.server import SECRET, LiveServer, make_settings
from tests.support.staff import PASSWORD, Staff

OLD_SECRET = "an-earlier-secret-key-of-this-deployment-0123"


def test_a_sealed_key_opens_only_under_the_secret_keys_it_was_sealed_with() -> None:
    key = pyotp.random_base32()
    current, stranger = Sealer(SECRET), Sealer("another-deployment-secret-key-000000000")
    sealed = current.seal(key)
    assert sealed.startswith("v1:") and key not in sealed
    assert current.open(sealed) == (key, True)
    assert current.seal(key) != sealed  # a fresh nonce each time: equal keys do not look equal
    assert stranger.open(sealed) is None

    rotated = Sealer("the-next-secret-key-of-this-deployment-00", previous_keys=[SECRET])
    assert rotated.open(sealed) == (key, False)  # opens, to be sealed again under the new key
    # A key stored before sealing existed reads as it is, and is never taken for a current one.
    assert current.open(key) == (key, False)


async def _with_key(db: AsyncSession, staff: Staff, stored: str) -> User:
    user = await staff.create("sato", Role.operator)
    await begin_write(db)
    await db.execute(update(User).where(User.id == user.id)  # type: ignore[arg-type]
                     .values(totp_key=stored, totp_enabled_at=utcnow()))
    await db.commit()
    return user


async def _stored(db: AsyncSession, user: User) -> str:
    await db.rollback()
    value = await db.scalar(select(User.totp_key).where(User.id == user.id))  # type: ignore[arg-type]
    assert value is not None
    return value


async def _token_with_code(url: str, key: str, step_offset: int = 0) -> httpx.Response:
    code = pyotp.TOTP(key).at((int(time.time() // 30) + step_offset) * 30)
    async with httpx.AsyncClient(base_url=url) as client:
        return await client.post("/api/auth/token", json={
            "email": "sato@example.com", "password": PASSWORD, "otp": code})


async def test_keys_stored_before_sealing_are_sealed_when_the_app_starts(
        database_url: str, db: AsyncSession, staff: Staff) -> None:
    key = pyotp.random_base32()
    user = await _with_key(db, staff, key)  # as migration 0028 copies an older row's key
    with LiveServer(make_settings(database_url)) as live:
        stored = await _stored(db, user)
        assert stored.startswith("v1:") and key not in stored
        assert Sealer(SECRET).open(stored) == (key, True)
        answer = await _token_with_code(live.url, key)
        assert answer.status_code == 200, answer.text


async def test_after_rotating_the_secret_key_codes_still_work_and_the_key_is_sealed_afresh(
        database_url: str, db: AsyncSession, staff: Staff) -> None:
    key = pyotp.random_base32()
    user = await _with_key(db, staff, Sealer(OLD_SECRET).seal(key))
    with LiveServer(make_settings(database_url)) as live:  # the old key is not listed
        refused = await _token_with_code(live.url, key)
        assert refused.status_code == 401 and refused.json()["totp_key_unreadable"] is True
        assert "recovery code" in refused.json()["detail"]
    with LiveServer(make_settings(database_url, previous_secret_keys=[OLD_SECRET])) as live:
        answer = await _token_with_code(live.url, key, step_offset=1)
        assert answer.status_code == 200, answer.text
    stored = await _stored(db, user)
    assert Sealer(SECRET).open(stored) == (key, True)
