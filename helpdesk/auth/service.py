"""Passwords, sign-in with throttling, and server-side sessions named by signed credentials."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import NamedTuple

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk import normalize
from helpdesk.audit import service as audit
from helpdesk.auth import throttle
from helpdesk.auth.models import AuthSession, Role, SessionKind, User
from helpdesk.auth.throttle import Counters
from helpdesk.config import Settings
from helpdesk.db import utcnow
from helpdesk.errors import BadInput, Conflict, HelpdeskError, NotFound, Unauthorized
from helpdesk.realtime import events

_hasher = PasswordHasher()
# A hash to verify against when the email is unknown, so timing does not reveal accounts.
_DUMMY_HASH = _hasher.hash("not-a-real-password")
TOKEN_SALT = "helpdesk.token"
SESSION_SALT = "helpdesk.session"


class Locked(HelpdeskError):
    status_code = 423


class TooManyAttempts(HelpdeskError):
    status_code = 429


def hash_password(password: str) -> str:
    """An argon2id hash."""
    return _hasher.hash(password)


def password_matches(user: User, password: str) -> bool:
    """Whether ``password`` is the user's (for confirming a sensitive change)."""
    return _verify(user.password_hash, password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class LoginPolicy:
    max_failures: int = 5
    lockout: timedelta = timedelta(minutes=15)
    account_failures: int = 50
    account_addresses: int = 5
    attempts_per_minute: int = 20

    @classmethod
    def of(cls, settings: Settings) -> "LoginPolicy":
        """The policy the settings describe."""
        return cls(settings.lockout_failures, timedelta(minutes=settings.lockout_minutes),
                   settings.account_lockout_failures, settings.account_lockout_addresses,
                   settings.login_attempts_per_minute)


@dataclass(frozen=True)
class Attempt:
    """Who is trying to sign in, from where, counted where."""

    email: str
    ip: str | None
    counters: Counters
    policy: LoginPolicy

    @property
    def folded(self) -> str:
        return normalize.email(self.email) or normalize.nfkc(self.email).lower()

    @property
    def address(self) -> str:
        return self.ip or "unknown"


async def authenticate(session: AsyncSession, *, attempt: Attempt, password: str) -> User:
    """The user these credentials belong to; 401 wrong, 423 locked out, 429 too many attempts.

    Unknown and known accounts answer alike; an account's own lock is told only to someone who
    gave its password. Every attempt is audited: the caller commits even on failure.
    """
    folded, ip = attempt.folded, attempt.ip
    await check_attempt(session, attempt)
    user = await session.scalar(select(User).where(col(User.email) == folded))
    if user is None:
        _verify(_DUMMY_HASH, password)
        audit.record(session, action="login.failed", actor_email=folded, ip=ip, reason="unknown")
        return await _refuse(session, attempt)
    if not user.is_active or not _verify(user.password_hash, password):
        return await fail(session, attempt, user)
    if user.locked_until is not None and user.locked_until > utcnow():
        audit.record(session, action="login.locked", actor_id=user.id, actor_email=user.email, ip=ip)
        raise Locked("this account is locked after failed sign-ins from many places; "
                     "an administrator can unlock it", locked_until=user.locked_until.isoformat())
    return user


async def check_attempt(session: AsyncSession, attempt: Attempt) -> None:
    """Refuse an address that tries too often, or that failed too often against this account."""
    account = throttle.account_key(attempt.folded)
    policy = attempt.policy
    attempts = await attempt.counters.hit(attempt.address, 60.0)
    if attempts > policy.attempts_per_minute:
        if attempts == policy.attempts_per_minute + 1:  # once a minute: a flood writes no flood of rows
            audit.record(session, action="login.throttled", actor_email=attempt.folded, ip=attempt.ip)
        raise TooManyAttempts("too many sign-in attempts from your address; wait a minute",
                              retry_after=60)
    failures, left = await attempt.counters.failures(account, attempt.address)
    if failures >= policy.max_failures:
        audit.record(session, action="login.locked", actor_email=attempt.folded, ip=attempt.ip)
        raise _address_locked(left)


def _address_locked(seconds: float) -> Locked:
    until = utcnow() + timedelta(seconds=seconds)
    return Locked("too many failed sign-ins from your address; try again later",
                  locked_until=until.isoformat())


async def fail(session: AsyncSession, attempt: Attempt, user: User) -> User:
    """Count a wrong password or code against ``user``: 401, or 423 for the address that failed.

    Enough failures from enough addresses lock the account itself, and the administrators see it.
    """
    user.failed_logins += 1
    audit.record(session, action="login.failed", actor_id=user.id, actor_email=user.email,
                 ip=attempt.ip, failures=user.failed_logins)
    policy = attempt.policy
    failures, addresses = await attempt.counters.fail(
        throttle.account_key(user.email), attempt.address, policy.lockout.total_seconds())
    if user.failed_logins >= policy.account_failures and addresses >= policy.account_addresses:
        user.locked_until = utcnow() + policy.lockout
        audit.record(session, action="account.locked", actor_id=user.id, actor_email=user.email,
                     ip=attempt.ip, until=user.locked_until.isoformat(),
                     failures=user.failed_logins, addresses=addresses)
        user.failed_logins = 0
    return _after_failure(session, attempt, failures)


async def _refuse(session: AsyncSession, attempt: Attempt) -> User:
    failures, _ = await attempt.counters.fail(
        throttle.account_key(attempt.folded), attempt.address, attempt.policy.lockout.total_seconds())
    return _after_failure(session, attempt, failures)


def _after_failure(session: AsyncSession, attempt: Attempt, failures: int) -> User:
    if failures >= attempt.policy.max_failures:
        audit.record(session, action="address.locked", actor_email=attempt.folded, ip=attempt.ip,
                     minutes=attempt.policy.lockout.total_seconds() // 60)
        raise _address_locked(attempt.policy.lockout.total_seconds())
    raise Unauthorized("wrong email or password")


async def succeed(session: AsyncSession, attempt: Attempt, user: User) -> None:
    """A complete sign-in: this address's failures against the account are forgotten."""
    user.failed_logins = 0
    await attempt.counters.forget(throttle.account_key(user.email), attempt.address)
    audit.record(session, action="login", actor_id=user.id, actor_email=user.email, ip=attempt.ip)


# ---- sessions and tokens -----------------------------------------------------------------------


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class SignedToken(NamedTuple):
    user_id: int
    sid: str


def issue_token(secret_key: str, user: User, *, sid: str, salt: str = TOKEN_SALT) -> str:
    """A signed credential naming the user and one of their sessions; its age is checked when read."""
    return URLSafeTimedSerializer(secret_key, salt=salt).dumps({"uid": user.id, "sid": sid})


def read_token(secret_key: str, token: str, max_age: int, salt: str = TOKEN_SALT) -> SignedToken | None:
    """The user id and session secret a valid, unexpired credential names, else None."""
    try:
        data = URLSafeTimedSerializer(secret_key, salt=salt).loads(token, max_age=max_age)
    except (BadSignature, SignatureExpired):
        return None
    if not isinstance(data, dict):
        return None
    uid, sid = data.get("uid"), data.get("sid")
    return SignedToken(uid, sid) if isinstance(uid, int) and isinstance(sid, str) else None


async def sign_in(
    session: AsyncSession, *, secret_key: str, user: User, kind: SessionKind, ttl_seconds: int,
    ip: str | None = None, user_agent: str | None = None,
) -> str:
    """A new session for ``user`` and the credential (cookie value or bearer token) that names it."""
    assert user.id is not None
    now = utcnow()
    await session.execute(delete(AuthSession).where(  # the user's expired sessions go
        col(AuthSession.user_id) == user.id, col(AuthSession.expires_at) < now))
    sid = secrets.token_urlsafe(32)
    session.add(AuthSession(secret_hash=_secret_hash(sid), user_id=user.id, kind=kind, ip=ip,
                            user_agent=(user_agent or "")[:200] or None, created_at=now,
                            expires_at=now + timedelta(seconds=ttl_seconds)))
    await session.flush()
    salt = SESSION_SALT if kind == SessionKind.browser else TOKEN_SALT
    return issue_token(secret_key, user, sid=sid, salt=salt)


async def signed_in(session: AsyncSession, token: SignedToken) -> tuple[User, int] | None:
    """The active user and live session a credential names, else None (one indexed query)."""
    row = (await session.execute(
        select(User, col(AuthSession.id)).join(AuthSession, col(AuthSession.user_id) == col(User.id))
        .where(col(AuthSession.secret_hash) == _secret_hash(token.sid),
               col(AuthSession.user_id) == token.user_id, col(AuthSession.revoked_at).is_(None),
               col(AuthSession.expires_at) > utcnow(), col(User.is_active).is_(True)))).first()
    return (row[0], row[1]) if row is not None and row[1] is not None else None


async def live_sessions(session: AsyncSession, user_id: int) -> list[AuthSession]:
    """The user's signed-in browsers and API tokens that still work, newest first."""
    return list(await session.scalars(
        select(AuthSession).where(col(AuthSession.user_id) == user_id,
                                  col(AuthSession.revoked_at).is_(None),
                                  col(AuthSession.expires_at) > utcnow())
        .order_by(col(AuthSession.id).desc())))


async def revoke(session: AsyncSession, *, user_id: int, session_id: int | None = None) -> int:
    """End one of the user's sessions, or all of them; how many were still live. Live sockets
    opened with them are closed once this commits (``session.revoked``)."""
    stmt = (update(AuthSession).where(col(AuthSession.user_id) == user_id,
                                      col(AuthSession.revoked_at).is_(None))
            .values(revoked_at=utcnow()).returning(col(AuthSession.id)))
    if session_id is not None:
        stmt = stmt.where(col(AuthSession.id) == session_id)
    ended = sorted(found for found in (await session.scalars(stmt)).all() if found is not None)
    if ended:
        events.record(session, events.SessionRevoked(user_ids=[user_id], session_ids=ended))
    return len(ended)


async def revoke_own(session: AsyncSession, user: User, session_id: int, *, ip: str | None) -> None:
    """End one of the user's own sessions at their request, audited; 404 when it is not live."""
    assert user.id is not None
    if not await revoke(session, user_id=user.id, session_id=session_id):
        raise NotFound("no such live session")
    audit.record(session, action="session.revoke", actor_id=user.id, actor_email=user.email,
                 target_type="auth_session", target_id=session_id, ip=ip)


async def revoke_everywhere(session: AsyncSession, user: User, *, ip: str | None) -> None:
    """End every session and token of the user at their request, audited."""
    assert user.id is not None
    ended = await revoke(session, user_id=user.id)
    audit.record(session, action="logout.everywhere", actor_id=user.id, actor_email=user.email,
                 ip=ip, sessions=ended)


async def change_password(session: AsyncSession, user: User, *, current: str, new: str) -> None:
    """Set a new password after checking the current one; every session of the user ends."""
    if not _verify(user.password_hash, current):
        raise BadInput("current password: wrong")
    _check_password(new)
    assert user.id is not None
    user.password_hash = hash_password(new)
    await revoke(session, user_id=user.id)


def _check_password(password: str) -> None:
    if len(password) < 8:
        raise BadInput("password: at least 8 characters")


async def create_user(
    session: AsyncSession, *, email: str, name: str, role: Role, password: str,
) -> User:
    """A new staff account (``inboxes.service.join_named`` makes it a member of inboxes)."""
    folded = normalize.email(email)
    if folded is None:
        raise BadInput("email: not an email address")
    _check_password(password)
    if await session.scalar(select(col(User.id)).where(col(User.email) == folded)) is not None:
        raise Conflict(f"a user with email {folded} exists")
    user = User(email=folded, name=normalize.name(name) or folded, role=role,
                password_hash=hash_password(password))
    session.add(user)
    await session.flush()
    return user


async def all_users(session: AsyncSession) -> list[User]:
    """Every staff account, by name."""
    return list(await session.scalars(select(User).order_by(col(User.name), col(User.id))))


async def names(session: AsyncSession) -> dict[int, str]:
    """Staff names by id (a few dozen rows: cheaper than joining on every list)."""
    rows = await session.execute(select(col(User.id), col(User.name)))
    return {user_id: name for user_id, name in rows.all() if user_id is not None}


async def unlock(user: User, counters: Counters) -> None:
    """Lift the account's lock and every address's lock on it, and forget the failures."""
    user.locked_until, user.failed_logins = None, 0
    await counters.forget(throttle.account_key(user.email))
