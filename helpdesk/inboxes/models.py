"""Inboxes: a mailbox, number or messaging account, and the operators who work it."""

from datetime import datetime

from sqlmodel import Field, SQLModel

from helpdesk.db import utcnow
from helpdesk.storage.types import UTCDateTime


class InboxBase(SQLModel):
    name: str = Field(max_length=80, unique=True)
    email_address: str | None = Field(default=None, max_length=254)
    phone_number: str | None = Field(default=None, max_length=20)
    email_charset: str = Field(default="utf-8", max_length=20)


class Inbox(InboxBase, table=True):
    __tablename__ = "inbox"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class InboxPublic(InboxBase):
    id: int


class InboxMember(SQLModel, table=True):
    __tablename__ = "inbox_member"

    inbox_id: int = Field(foreign_key="inbox.id", primary_key=True, ondelete="CASCADE")
    user_id: int = Field(foreign_key="user.id", primary_key=True, ondelete="CASCADE", index=True)
