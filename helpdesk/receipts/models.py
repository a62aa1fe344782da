"""Provider deliveries already handled, whichever adapter received them."""

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from helpdesk.db import utcnow
from helpdesk.storage.types import UTCDateTime


class DeliveryReceipt(SQLModel, table=True):
    """One provider delivery (a LINE webhookEventId, a Shopify event id…) that was handled.

    A retry of it finds the row and changes nothing; rows are pruned once the provider's retry
    window has long passed (``HELPDESK_RECEIPT_RETENTION_DAYS``).
    """

    __tablename__ = "delivery_receipt"
    __table_args__ = (UniqueConstraint("provider", "delivery_id"),)

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=20)
    delivery_id: str = Field(max_length=255)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
