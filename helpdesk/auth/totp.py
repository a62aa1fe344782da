"""Two-factor sign-in: time-based one-time codes (RFC 6238) and single-use recovery codes.

A code is accepted once: the time step it belongs to is remembered, so a code seen over a
shoulder or replayed from a log cannot sign in again. Recovery codes are shown once and kept
only as hashes; the app's key is kept sealed (``sealing``).
"""

import hashlib
import hmac
import re
import secrets
import time

import pyotp
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.auth.models import RecoveryCode, Role, RolePolicy, User
from helpdesk.auth.sealing import PREFIX, Sealer
from helpdesk.db import utcnow

ISSUER = "Helpdesk"
STEP_SECONDS = 30
RECOVERY_CODES = 10
_DIGITS = re.compile(r"^\d{6}$")


def new_secret() -> str:
    """A fresh base32 secret for an authenticator app."""
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str) -> str:
    """The otpauth:// address authenticator apps read (typed in or pasted)."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def check_code(user: User, code: str, secret: str | None) -> bool:
    """Whether ``code`` is ``secret``'s current code (or the one before or after) and was not used
    yet by ``user``."""
    code = code.strip().replace(" ", "")
    if not secret or not _DIGITS.match(code):
        return False
    totp, now_step = pyotp.TOTP(secret), int(time.time() // STEP_SECONDS)
    for step in (now_step - 1, now_step, now_step + 1):
        if step > (user.totp_last_step or -1) and hmac.compare_digest(
                totp.at(step * STEP_SECONDS), code):
            user.totp_last_step = step
            return True
    return False


def _recovery_hash(user_id: int, code: str) -> str:
    folded = re.sub(r"[\s-]", "", code).lower()
    return hashlib.sha256(f"{user_id}:{folded}".encode()).hexdigest()


async def new_recovery_codes(session: AsyncSession, user: User) -> list[str]:
    """Replace the user's recovery codes; the plain codes are returned once and never stored."""
    assert user.id is not None
    await session.execute(delete(RecoveryCode).where(col(RecoveryCode.user_id) == user.id))
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = secrets.token_hex(5)
        codes.append(f"{raw[:5]}-{raw[5:]}")
        session.add(RecoveryCode(user_id=user.id, code_hash=_recovery_hash(user.id, raw)))
    await session.flush()
    return codes


async def use_recovery_code(session: AsyncSession, user: User, code: str) -> bool:
    """Spend one unused recovery code; whether it was one."""
    assert user.id is not None
    row = await session.scalar(select(RecoveryCode).where(
        col(RecoveryCode.user_id) == user.id, col(RecoveryCode.used_at).is_(None),
        col(RecoveryCode.code_hash) == _recovery_hash(user.id, code)))
    if row is None:
        return False
    row.used_at = utcnow()
    return True


async def verify(session: AsyncSession, user: User, code: str, sealer: Sealer) -> bool:
    """A code from the authenticator app, or else a recovery code. A key sealed under a previous
    secret key (or not yet sealed) is sealed under the current one once a code matches."""
    opened = sealer.open(user.totp_key) if user.totp_key else None
    if opened is not None and check_code(user, code, opened.plain):
        if not opened.current:
            user.totp_key = sealer.seal(opened.plain)
        return True
    return len(code) <= 64 and await use_recovery_code(session, user, code)


def key_unreadable(user: User, sealer: Sealer) -> bool:
    """Whether ``user``'s key is stored but opens under none of the configured secret keys."""
    return user.totp_key is not None and sealer.open(user.totp_key) is None


async def enable(
    session: AsyncSession, user: User, *, secret: str, code: str, sealer: Sealer
) -> list[str] | None:
    """Turn two-factor sign-in on once ``code`` proves the app has ``secret``; the recovery codes."""
    if not check_code(user, code, secret):
        return None
    user.totp_key, user.totp_enabled_at = sealer.seal(secret), utcnow()
    return await new_recovery_codes(session, user)


async def seal_stored_keys(session: AsyncSession, sealer: Sealer) -> int:
    """Seal the keys stored before sealing existed (run as the app starts); how many there were.
    Each row is written only if it still holds the plain key, so workers starting together
    cannot seal one twice."""
    plain = (await session.execute(select(col(User.id), col(User.totp_key)).where(
        col(User.totp_key).is_not(None), ~col(User.totp_key).startswith(PREFIX)))).all()
    for user_id, stored in plain:
        assert stored is not None
        await session.execute(update(User).where(col(User.id) == user_id,
                                                 col(User.totp_key) == stored)
                              .values(totp_key=sealer.seal(stored)))
    return len(plain)


async def disable(session: AsyncSession, user: User) -> None:
    """Turn two-factor sign-in off and forget the secret and recovery codes."""
    user.totp_key, user.totp_enabled_at, user.totp_last_step = None, None, None
    await session.execute(delete(RecoveryCode).where(col(RecoveryCode.user_id) == user.id))


async def unused_codes(session: AsyncSession, user_id: int) -> int:
    """How many recovery codes the user has left."""
    rows = await session.scalars(select(col(RecoveryCode.id)).where(
        col(RecoveryCode.user_id) == user_id, col(RecoveryCode.used_at).is_(None)))
    return len(list(rows))


async def required_roles(session: AsyncSession) -> set[Role]:
    """The roles whose members must sign in with a one-time code."""
    rows = await session.scalars(select(col(RolePolicy.role)).where(col(RolePolicy.require_totp)))
    return set(rows)


async def set_required_roles(session: AsyncSession, roles: set[Role]) -> None:
    """Require two-factor sign-in of exactly ``roles``."""
    for role in Role:
        row = await session.get(RolePolicy, role)
        if row is None:
            session.add(RolePolicy(role=role, require_totp=role in roles))
        else:
            row.require_totp = role in roles
    await session.flush()
