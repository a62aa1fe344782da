"""Tickets, their messages and attachments, tags, and the plain inbound message ingest takes."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from pydantic import Field as PydanticField
from sqlalchemy import Column, Index, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from helpdesk.customers.models import CustomerSummary
from helpdesk.db import EnumString, UTCDateTime, utcnow


class Status(StrEnum):
    unhandled = "unhandled"
    in_progress = "in_progress"
    pending = "pending"
    resolved = "resolved"
    no_action = "no_action"


STATUS_LABELS: dict[Status, tuple[str, str]] = {
    Status.unhandled: ("未対応", "Unhandled"),
    Status.in_progress: ("対応中", "In progress"),
    Status.pending: ("保留", "On hold"),
    Status.resolved: ("対応済", "Resolved"),
    Status.no_action: ("対応不要", "No action needed"),
}


class Priority(StrEnum):
    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"


class Channel(StrEnum):
    email = "email"
    chat = "chat"
    line = "line"
    messenger = "messenger"
    instagram = "instagram"
    whatsapp = "whatsapp"
    sms = "sms"
    phone = "phone"
    api = "api"


class Direction(StrEnum):
    inbound = "in"
    outbound = "out"


class Ticket(SQLModel, table=True):
    __tablename__ = "ticket"
    __table_args__ = (
        Index("ix_ticket_updated", "updated_at", "id"),
        Index("ix_ticket_status_updated", "status", "updated_at", "id"),
        Index("ix_ticket_inbox_status_updated", "inbox_id", "status", "updated_at", "id"),
        Index("ix_ticket_conversation", "channel", "conversation_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    number: int = Field(unique=True)
    subject: str = Field(default="", max_length=300)
    status: Status = Field(default=Status.unhandled, sa_type=EnumString(Status, 20))
    pending_reason: str | None = Field(default=None, max_length=300)
    priority: Priority = Field(default=Priority.normal, sa_type=EnumString(Priority, 10))
    channel: Channel = Field(sa_type=EnumString(Channel, 20))
    inbox_id: int = Field(foreign_key="inbox.id", index=True)
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    assignee_id: int | None = Field(default=None, foreign_key="user.id", index=True)
    conversation_key: str | None = Field(default=None, max_length=255)
    token: str = Field(max_length=32, unique=True)
    version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    first_response_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    last_message_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)


class TicketCount(SQLModel, table=True):
    """How many tickets each inbox holds per assignee (0 = nobody) and status.

    Kept current in the transaction that changes a ticket (see counts.py), so inbox tabs and the
    supervisor board read a handful of rows instead of counting tickets.
    """

    __tablename__ = "ticket_count"

    inbox_id: int = Field(primary_key=True)
    assignee_id: int = Field(primary_key=True)
    status: str = Field(primary_key=True, max_length=20)
    n: int = Field(default=0)


class Message(SQLModel, table=True):
    __tablename__ = "message"
    __table_args__ = (
        UniqueConstraint("channel", "external_id"),
        Index("ix_message_ticket_created", "ticket_id", "created_at", "id"),
        # Email threading looks up References across channels (a reply to a chat transcript).
        Index("ix_message_external_id", "external_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", ondelete="CASCADE")
    direction: Direction = Field(sa_type=EnumString(Direction, 3))
    internal: bool = Field(default=False)
    channel: Channel = Field(sa_type=EnumString(Channel, 20))
    author: str | None = Field(default=None, max_length=200)
    author_user_id: int | None = Field(default=None, foreign_key="user.id")
    body_text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    body_html: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    external_id: str | None = Field(default=None, max_length=255)
    delivery_status: str | None = Field(default=None, max_length=20)
    auto_reply: bool = Field(default=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Attachment(SQLModel, table=True):
    __tablename__ = "attachment"

    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="message.id", index=True, ondelete="CASCADE")
    filename: str = Field(max_length=255)
    content_type: str = Field(max_length=127)
    size: int
    content_id: str | None = Field(default=None, max_length=255)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Tag(SQLModel, table=True):
    __tablename__ = "tag"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=60, unique=True)


class TicketTag(SQLModel, table=True):
    __tablename__ = "ticket_tag"

    ticket_id: int = Field(foreign_key="ticket.id", primary_key=True, ondelete="CASCADE")
    tag_id: int = Field(foreign_key="tag.id", primary_key=True, index=True, ondelete="CASCADE")


# ---- API shapes ---------------------------------------------------------------------------


class AttachmentPublic(SQLModel):
    id: int
    filename: str
    content_type: str
    size: int


class TicketPublic(SQLModel):
    id: int
    number: int
    subject: str
    status: Status
    pending_reason: str | None
    priority: Priority
    channel: Channel
    inbox_id: int
    customer_id: int | None
    assignee_id: int | None
    tags: list[str]
    version: int
    created_at: datetime
    updated_at: datetime
    first_response_at: datetime | None
    last_message_at: datetime | None


class MessagePublic(SQLModel):
    id: int
    ticket_id: int
    direction: Direction
    internal: bool
    channel: Channel
    author: str | None
    body_text: str
    body_html: str | None
    attachments: list[AttachmentPublic]
    created_at: datetime
    delivery_status: str | None


class TicketDetail(TicketPublic):
    messages: list[MessagePublic]
    customer: CustomerSummary | None


class TicketPage(BaseModel):
    items: list[TicketPublic]
    next_cursor: str | None


class TicketUpdate(BaseModel):
    version: int
    status: Status | None = None
    pending_reason: str | None = PydanticField(default=None, max_length=300)
    assignee_id: int | None = None
    priority: Priority | None = None
    tags: list[str] | None = PydanticField(default=None, max_length=50)


class ReplyCreate(BaseModel):
    body: str = PydanticField(min_length=1, max_length=100_000)
    internal: bool = False
    version: int


# ---- what adapters hand to ingest ----------------------------------------------------------


class Sender(BaseModel):
    """Who wrote an inbound message, as the channel knows them (unnormalised)."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None
    line_id: str | None = None
    meta_id: str | None = None
    chat_id: str | None = None


class InboundAttachment(BaseModel):
    filename: str
    content_type: str = "application/octet-stream"
    data: bytes
    content_id: str | None = None


class InboundMessage(BaseModel):
    """One message from any channel, parsed by its adapter; ``external_id`` dedupes retries."""

    channel: Channel
    external_id: str = PydanticField(min_length=1, max_length=255)
    sender: Sender
    body_text: str = ""
    body_html: str | None = None
    subject: str | None = None
    inbox: str = "default"
    # Which conversation this continues: a chat/LINE/API thread key, email references, a token.
    conversation_key: str | None = None
    references: list[str] = []
    ticket_token: str | None = None
    ticket_number: int | None = None
    auto_reply: bool = False
    attachments: list[InboundAttachment] = []
    received_at: datetime | None = None
    metadata: dict[str, Any] = {}


class IngestResult(BaseModel):
    ticket_id: int
    message_id: int
    duplicate: bool


class TicketRead(SQLModel, table=True):
    """The newest customer message each user has seen on a ticket: newer ones show as unread."""

    __tablename__ = "ticket_read"

    user_id: int = Field(foreign_key="user.id", primary_key=True, ondelete="CASCADE")
    ticket_id: int = Field(foreign_key="ticket.id", primary_key=True, ondelete="CASCADE")
    message_id: int = Field(default=0)


class SavedView(SQLModel, table=True):
    """An inbox view (its filters as a query string) an operator named and kept."""

    __tablename__ = "saved_view"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=60)
    query: str = Field(max_length=1000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
