"""Staff accounts."""

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel
from pydantic import Field as PydanticField
from sqlmodel import Field, SQLModel

from helpdesk.db import EnumString, UTCDateTime, utcnow


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

    @property
    def sees_everything(self) -> bool:
        """Supervisors and admins see every inbox."""
        return self.role in (Role.supervisor, Role.admin)


class UserPublic(UserBase):
    id: int
    is_active: bool


class Credentials(BaseModel):
    email: str = PydanticField(max_length=254)
    password: str = PydanticField(max_length=1024)


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
