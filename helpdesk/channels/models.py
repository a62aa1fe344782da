"""What the channel adapters remember: mailbox progress, chat visitors, media to download.

Provider deliveries already handled are core: ``helpdesk.receipts``.
"""

from datetime import datetime

from sqlalchemy import BigInteger, Column
from sqlmodel import Field, SQLModel

from helpdesk.db import utcnow
from helpdesk.storage.types import UTCDateTime
from helpdesk.storage.wakes import queue_table


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


MEDIA_REFERENCE_MAX = 4000


@queue_table  # a commit that adds or changes a row wakes the queue's workers
class MediaFetch(SQLModel, table=True):
    """Content a provider holds for an inbound message (a LINE photo), still to be downloaded.

    Written in the transaction that ingests the message, so an acknowledged webhook never loses
    it. A worker downloads it later and attaches it to the message (or gives up and notes that
    on the message); either way the row is then deleted: what is here is what is still to do.
    """

    __tablename__ = "media_fetch"

    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="message.id", unique=True, ondelete="CASCADE")
    provider: str = Field(max_length=20)
    # Where the content is, as the provider names it: LINE's message id, a WhatsApp media id, or
    # Messenger's and Instagram's attachment URLs (one per line: a message can carry several).
    # Then its kind, and its name when it has one.
    media_id: str = Field(max_length=MEDIA_REFERENCE_MAX)
    kind: str = Field(max_length=20)
    filename: str | None = Field(default=None, max_length=255)
    attempts: int = Field(default=0)
    last_error: str | None = Field(default=None, max_length=1000)
    # Due then; a worker that claims the row pushes it past its lease, so a crash only delays it.
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
