"""Reply templates: a name and a body with {variables}; a template that also sets a status or adds
tags is a macro, applied with the reply it fills in. A template is shared (no owner; kept by
supervisors and admins) or personal (its owner's alone), and sits in a category."""

from datetime import datetime

from pydantic import BaseModel
from pydantic import Field as PydanticField
from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from helpdesk.db import utcnow
from helpdesk.storage.types import UTCDateTime


class ReplyTemplate(SQLModel, table=True):
    __tablename__ = "reply_template"
    # Shared names (owner NULL) are kept unique by the service: NULLs never collide in SQL.
    __table_args__ = (UniqueConstraint("owner_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=120)
    category: str = Field(default="", max_length=60)
    owner_id: int | None = Field(default=None, foreign_key="user.id", ondelete="CASCADE", index=True)
    body: str = Field(sa_column=Column(Text, nullable=False))
    set_status: str | None = Field(default=None, max_length=20)
    add_tags: str = Field(default="", max_length=300)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ReplyTemplateForm(BaseModel):
    name: str = PydanticField(min_length=1, max_length=120)
    body: str = PydanticField(min_length=1, max_length=20_000)
    category: str = PydanticField(default="", max_length=60)
    set_status: str | None = None
    add_tags: str = PydanticField(default="", max_length=300)

    def tag_list(self) -> list[str]:
        return [t.strip() for t in self.add_tags.replace("、", ",").split(",") if t.strip()]


class EmailSignature(SQLModel, table=True):
    """Text appended to email replies: an inbox's shared one (``scope`` "inbox") or an operator's
    own ("user"); ``owner_id`` is the inbox's or the user's id."""

    __tablename__ = "email_signature"
    __table_args__ = (UniqueConstraint("scope", "owner_id"),)

    id: int | None = Field(default=None, primary_key=True)
    scope: str = Field(max_length=10)
    owner_id: int
    body: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
