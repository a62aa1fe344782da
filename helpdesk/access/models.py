"""IP allow-list entries: an empty list lets every address in."""

from datetime import datetime

from sqlmodel import Field, SQLModel

from helpdesk.db import utcnow
from helpdesk.storage.types import UTCDateTime


class IpRule(SQLModel, table=True):
    __tablename__ = "ip_rule"

    id: int | None = Field(default=None, primary_key=True)
    network: str = Field(max_length=64, unique=True)
    note: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
