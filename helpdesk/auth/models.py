"""Staff accounts."""

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel
from pydantic import Field as PydanticField
from sqlmodel import Field, SQLModel

from helpdesk.db import utcnow
from helpdesk.storage.types import EnumString, UTCDateTime


class Role(StrEnum):
    operator = "operator"
    supervisor = "supervisor"
    admin = "admin"


class UserBase(SQLModel):
    email: str = Field(max_length=254, unique=True)
    name: str = Field(max_length=120)
    role: Role = Field(default=Role.operator, sa_type=EnumString(Role, 20))
    language: str = Field(default="ja", max_length=8)
    timezone: str = Field(default="Asia/Tokyo", max_length=64)


class User(UserBase, table=True):
    __tablename__ = "user"

    id: int | None = Field(default=None, primary_key=True)
    password_hash: str = Field(max_length=255)
    is_active: bool = Field(default=True)
    failed_logins: int = Field(default=0)
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Two-factor sign-in: the authenticator app's key, sealed (auth.sealing: a copy of the
    # database cannot make codes), and the last time step a code was accepted for, so one code
    # never signs in twice.
    totp_key: str | None = Field(default=None, max_length=255)
    totp_enabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    totp_last_step: int | None = Field(default=None)

    @property
    def totp_enabled(self) -> bool:
        """Whether sign-in asks this user for a one-time code."""
        return self.totp_enabled_at is not None and self.totp_key is not None

    @property
    def sees_everything(self) -> bool:
        """Supervisors and admins see every inbox."""
        return self.role in (Role.supervisor, Role.admin)


class SessionKind(StrEnum):
    browser = "browser"  # the page session cookie from /login
    api = "api"  # a bearer token from POST /api/auth/token


class AuthSession(SQLModel, table=True):
    """One signed-in browser or API token. Credentials name a row; a revoked row ends them."""

    __tablename__ = "auth_session"

    id: int | None = Field(default=None, primary_key=True)
    # sha256 of the random secret inside the signed credential: a copy of this table signs no one in.
    secret_hash: str = Field(max_length=64, unique=True)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    kind: SessionKind = Field(sa_type=EnumString(SessionKind, 10))
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AuthSessionPublic(BaseModel):
    id: int
    kind: SessionKind
    ip: str | None
    user_agent: str | None
    created_at: datetime
    expires_at: datetime
    current: bool = False


class AuthSessionList(BaseModel):
    items: list[AuthSessionPublic]


class RecoveryCode(SQLModel, table=True):
    """A single-use code that stands in for the authenticator app; only its hash is kept."""

    __tablename__ = "recovery_code"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    code_hash: str = Field(max_length=64)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class RolePolicy(SQLModel, table=True):
    """What an administrator requires of everyone with a role."""

    __tablename__ = "role_policy"

    role: Role = Field(sa_type=EnumString(Role, 20), primary_key=True)
    require_totp: bool = Field(default=False)


class UserPublic(UserBase):
    id: int
    is_active: bool


class Credentials(BaseModel):
    email: str = PydanticField(max_length=254)
    password: str = PydanticField(max_length=1024)
    # The authenticator's six digits or a recovery code, for users with two-factor sign-in.
    otp: str | None = PydanticField(default=None, max_length=64)


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
