"""What the channel adapters remember: mailbox progress and chat visitors.

Provider deliveries already handled are core: ``helpdesk.receipts``.
"""

from datetime import datetime

from sqlalchemy import BigInteger, Column
from sqlmodel import Field, SQLModel

from helpdesk.db import UTCDateTime, utcnow


class ImapCursor(SQLModel, table=True):
    """How far a polled IMAP folder has been read: UIDs at or below ``last_uid`` are done."""

    __tablename__ = "imap_cursor"

    mailbox: str = Field(primary_key=True, max_length=255)
    uid_validity: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    last_uid: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ChatVisitor(SQLModel, table=True):
    """A web chat visitor; ``online_until`` is pushed forward while one of their sockets is open."""

    __tablename__ = "chat_visitor"

    id: str = Field(primary_key=True, max_length=40)
    online_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Left when nobody was online: replies go there while the visitor is away.
    email: str | None = Field(default=None, max_length=254)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
