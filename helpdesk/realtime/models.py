"""The change log: every event operators may see, in commit order, with who may see it."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column
from sqlmodel import Field, SQLModel

from helpdesk.db import UTCDateTime, utcnow


class Event(SQLModel, table=True):
    """One change. ``seq`` is handed out in commit order, so resuming after a seq misses nothing.

    Audience: supervisors and admins see every event; an operator sees it when ``broadcast``,
    when it belongs to one of their inboxes, or when their id is in ``user_ids``.
    """

    __tablename__ = "event"

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    type: str = Field(max_length=40)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    inbox_id: int | None = Field(default=None, index=True)
    user_ids: list[int] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    broadcast: bool = Field(default=False)
