"""Passwords, signed tokens, and logins with lockout."""

from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk import normalize
from helpdesk.audit import service as audit
from helpdesk.auth.models import Role, User
from helpdesk.db import utcnow
from helpdesk.errors import BadInput, Conflict, HelpdeskError, Unauthorized
from helpdesk.routing import service as routing

_hasher = PasswordHasher()
# A hash to verify against when the email is unknown, so timing does not reveal accounts.
_DUMMY_HASH = _hasher.hash("not-a-real-password")
TOKEN_SALT = "helpdesk.token"
SESSION_SALT = "helpdesk.session"


class Locked(HelpdeskError):
    status_code = 423


def hash_password(password: str) -> str:
    """An argon2id hash."""
    return _hasher.hash(password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class LoginPolicy:
    max_failures: int = 5
    lockout: timedelta = timedelta(minutes=15)


async def authenticate(
    session: AsyncSession, *, email: str, password: str, ip: str | None, policy: LoginPolicy
) -> User:
    """The user these credentials belong to; 401 wrong, 423 locked. Every attempt is audited.

    Writes the audit row and failure count in ``session``: the caller commits even on failure.
    """
    folded = normalize.email(email) or normalize.nfkc(email).lower()
    user = await session.scalar(select(User).where(col(User.email) == folded))
    if user is None:
        _verify(_DUMMY_HASH, password)
        audit.record(session, action="login.failed", actor_email=folded, ip=ip, reason="unknown")
        raise Unauthorized("wrong email or password")
    now = utcnow()
    if user.locked_until is not None and user.locked_until > now:
        audit.record(session, action="login.locked", actor_id=user.id, actor_email=user.email, ip=ip)
        raise Locked("account locked after repeated failures; try again later",
                     locked_until=user.locked_until.isoformat())
    if not user.is_active or not _verify(user.password_hash, password):
        return _fail(session, user, ip, policy)
    user.failed_logins, user.locked_until = 0, None
    audit.record(session, action="login", actor_id=user.id, actor_email=user.email, ip=ip)
    return user


def _fail(session: AsyncSession, user: User, ip: str | None, policy: LoginPolicy) -> User:
    user.failed_logins += 1
    audit.record(session, action="login.failed", actor_id=user.id, actor_email=user.email, ip=ip,
                 failures=user.failed_logins)
    if user.failed_logins >= policy.max_failures:
        user.locked_until = utcnow() + policy.lockout
        user.failed_logins = 0
        audit.record(session, action="account.locked", actor_id=user.id, actor_email=user.email,
                     ip=ip, until=user.locked_until.isoformat())
        raise Locked("account locked after repeated failures; try again later",
                     locked_until=user.locked_until.isoformat())
    raise Unauthorized("wrong email or password")


def issue_token(secret: str, user: User, salt: str = TOKEN_SALT) -> str:
    """A signed token naming the user; its age is checked when read."""
    return URLSafeTimedSerializer(secret, salt=salt).dumps({"uid": user.id})


def read_token(secret: str, token: str, max_age: int, salt: str = TOKEN_SALT) -> int | None:
    """The user id a valid, unexpired token names, else None."""
    try:
        data = URLSafeTimedSerializer(secret, salt=salt).loads(token, max_age=max_age)
    except (BadSignature, SignatureExpired):
        return None
    uid = data.get("uid") if isinstance(data, dict) else None
    return uid if isinstance(uid, int) else None


async def create_user(
    session: AsyncSession, *, email: str, name: str, role: Role, password: str,
    inboxes: list[str] | None = None,
) -> User:
    """A new staff account, optionally a member of the named inboxes."""
    folded = normalize.email(email)
    if folded is None:
        raise BadInput("email: not an email address")
    if len(password) < 8:
        raise BadInput("password: at least 8 characters")
    if await session.scalar(select(col(User.id)).where(col(User.email) == folded)) is not None:
        raise Conflict(f"a user with email {folded} exists")
    user = User(email=folded, name=normalize.name(name) or folded, role=role,
                password_hash=hash_password(password))
    session.add(user)
    await session.flush()
    assert user.id is not None
    for inbox_name in inboxes or []:
        inbox = await routing.inbox_by_name(session, inbox_name)
        assert inbox.id is not None
        await routing.add_member(session, inbox_id=inbox.id, user_id=user.id)
    return user


async def all_users(session: AsyncSession) -> list[User]:
    """Every staff account, by name."""
    return list(await session.scalars(select(User).order_by(col(User.name), col(User.id))))


async def names(session: AsyncSession) -> dict[int, str]:
    """Staff names by id (a few dozen rows: cheaper than joining on every list)."""
    rows = await session.execute(select(col(User.id), col(User.name)))
    return {user_id: name for user_id, name in rows.all() if user_id is not None}


def unlock(user: User) -> None:
    """Lift a lockout and forget the failures."""
    user.locked_until, user.failed_logins = None, 0
