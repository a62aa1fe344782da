"""Tickets, their messages and attachments, tags, and the plain inbound message ingest takes."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, field_validator, model_validator
from pydantic import Field as PydanticField
from sqlalchemy import JSON, BigInteger, Column, Index, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from helpdesk import boundary
from helpdesk.customers.models import CustomerSummary
from helpdesk.db import utcnow
from helpdesk.storage.types import EnumString, UTCDateTime


class Status(StrEnum):
    unhandled = "unhandled"
    in_progress = "in_progress"
    pending = "pending"
    resolved = "resolved"
    no_action = "no_action"


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
        # Whose tickets in which status, oldest activity first: the board's queue (nobody's open
        # tickets) is a walk of it with a limit, and an operator's load reads only open tickets.
        Index("ix_ticket_assignee_status_updated", "assignee_id", "status", "updated_at", "id"),
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
    assignee_id: int | None = Field(default=None, foreign_key="user.id")
    conversation_key: str | None = Field(default=None, max_length=255)
    token: str = Field(max_length=32, unique=True)
    version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    first_response_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    last_message_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    # ---- SLA (see helpdesk/sla): due times in business hours, kept by the ticket service ----
    first_response_due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    next_response_due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolution_due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    sla_breached: bool = Field(default=False)
    # The earliest due time still running (the inbox sorts by it) and the earliest not yet
    # breached (the breach job looks for it); both None while 保留 pauses the clock.
    sla_due_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    sla_check_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    sla_breaches: str = Field(default="", max_length=60)  # targets already reported, comma-separated
    sla_paused_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class TicketCount(SQLModel, table=True):
    """How many tickets each inbox holds per assignee (0 = nobody), status and channel (summed over shards).

    Kept current in the transaction that changes a ticket (see counts.py), so inbox tabs and the
    supervisor board read a handful of rows instead of counting tickets. The channel is there for
    operators' loads, which weigh each channel's tickets differently.
    """

    __tablename__ = "ticket_count"

    inbox_id: int = Field(primary_key=True)
    assignee_id: int = Field(primary_key=True)
    status: str = Field(primary_key=True, max_length=20)
    channel: str = Field(primary_key=True, max_length=20)
    # Concurrent writers add to different rows of a key (see counts.py); reads sum them.
    shard: int = Field(default=0, primary_key=True)
    n: int = Field(default=0)


class TicketPace(SQLModel, table=True):
    """Resolutions and first responses per quarter hour (UTC) and assignee, for "today".

    Kept current in the transaction that changes a ticket (see pace.py), for recent quarter hours
    only, so the board sums at most a day's rows whatever the viewer's time zone. A resolution
    counts while its ticket stays resolved, under the ticket's current assignee; durations are
    whole microseconds so that the kept sums equal a recount exactly.
    """

    __tablename__ = "ticket_pace"

    slot: datetime = Field(primary_key=True, sa_type=UTCDateTime)
    assignee_id: int = Field(primary_key=True)
    resolved: int = Field(default=0)
    resolution_us: int = Field(default=0, sa_type=BigInteger)
    responded: int = Field(default=0)
    response_us: int = Field(default=0, sa_type=BigInteger)


class Message(SQLModel, table=True):
    __tablename__ = "message"
    __table_args__ = (
        UniqueConstraint("channel", "external_id"),
        Index("ix_message_ticket_created", "ticket_id", "created_at", "id"),
        # Email threading looks up References across channels (a reply to a chat transcript).
        Index("ix_message_external_id", "external_id"),
        # Edits and reactions name the provider's id of a message whose key is another (LINE).
        Index("ix_message_provider_message_id", "provider_message_id"),
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
    # The provider's own id for the message, where ``external_id`` is another key (LINE's
    # message id; the key is its webhook event id).
    provider_message_id: str | None = Field(default=None, max_length=255)
    delivery_status: str | None = Field(default=None, max_length=20)
    # Why a reply was not delivered (a refusing provider, a channel with nothing to send it).
    delivery_error: str | None = Field(default=None, max_length=1000)
    # Every version of a message the customer edited, oldest first: [{"body_text", "at"}]; the
    # last one is ``body_text`` (edits arriving out of order are placed by their time).
    history: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # Reactions the customer put on this message: [{"emoji", "at"}] (an emptied one is removed).
    reactions: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    auto_reply: bool = Field(default=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # ---- send approval (see helpdesk/approval): pending | approved | rejected, None = not needed
    approval_status: str | None = Field(default=None, max_length=10, index=True)
    approval_comment: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Email only: the Cc of a mail (received or sent) and the Bcc of a reply (see channels/email/outgoing.py).
    email_cc: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    email_bcc: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


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
    first_response_due_at: datetime | None = None
    next_response_due_at: datetime | None = None
    resolution_due_at: datetime | None = None
    sla_breached: bool = False
    sla_due_at: datetime | None = None


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
    delivery_error: str | None = None
    history: list[dict[str, Any]] | None = None
    reactions: list[dict[str, Any]] | None = None
    approval_status: str | None = None
    approval_comment: str | None = None
    email_cc: list[str] | None = None
    email_bcc: list[str] | None = None


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
    # Another channel to answer on, where the ticket's own cannot carry text (SMS on a phone ticket).
    channel: Channel | None = None


# ---- what adapters hand to ingest ----------------------------------------------------------


def _storable_fields(model: BaseModel) -> None:
    """Drop NUL and replace lone surrogates in every text field: mail cannot be refused for them."""
    for name, value in model:
        if isinstance(value, str):
            setattr(model, name, boundary.storable(value))
        elif isinstance(value, list) and any(isinstance(item, str) for item in value):
            setattr(model, name, [boundary.storable(i) if isinstance(i, str) else i for i in value])
        elif isinstance(value, dict) and any(isinstance(item, str) for item in value.values()):
            setattr(model, name, {k: boundary.storable(v) if isinstance(v, str) else v
                                  for k, v in value.items()})


class Sender(BaseModel):
    """Who wrote an inbound message, as the channel knows them (unnormalised)."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None
    line_id: str | None = None
    meta_id: str | None = None
    chat_id: str | None = None
    # A caller who withheld their number: the message makes no customer.
    withheld: bool = False

    # A name goes into the From/To header of replies: no line break may reach it.
    @field_validator("name")
    @classmethod
    def _one_line_name(cls, value: str | None) -> str | None:
        return boundary.one_line_or_none(value)

    @model_validator(mode="after")
    def _storable(self) -> "Sender":
        _storable_fields(self)
        return self


class InboundAttachment(BaseModel):
    filename: str
    content_type: str = "application/octet-stream"
    data: bytes
    content_id: str | None = None

    @model_validator(mode="after")
    def _storable(self) -> "InboundAttachment":
        _storable_fields(self)
        return self


class InboundMessage(BaseModel):
    """One message from any channel, parsed by its adapter; ``external_id`` dedupes retries."""

    channel: Channel
    external_id: str = PydanticField(min_length=1, max_length=255)
    provider_message_id: str | None = PydanticField(default=None, max_length=255)
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

    # The subject goes into the Subject header of replies: no line break may reach it.
    @field_validator("subject")
    @classmethod
    def _one_line_subject(cls, value: str | None) -> str | None:
        return boundary.one_line_or_none(value)

    @model_validator(mode="after")
    def _storable(self) -> "InboundMessage":
        _storable_fields(self)
        return self


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
