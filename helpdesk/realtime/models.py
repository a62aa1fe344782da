"""The change log (every event operators may see, in commit order, with who may see it) and presence."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import JSON, BigInteger, Column, String
from sqlmodel import Field, SQLModel

from helpdesk.db import utcnow
from helpdesk.storage.types import UTCDateTime


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


class PresenceStatus(StrEnum):
    online = "online"
    away = "away"
    offline = "offline"


class Presence(SQLModel, table=True):
    """What staff see of a user: their status and since when; changed only through the service."""

    __tablename__ = "presence"

    user_id: int = Field(foreign_key="user.id", primary_key=True, ondelete="CASCADE")
    status: PresenceStatus = Field(default=PresenceStatus.offline, max_length=10, sa_type=String(10))
    since: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PresenceConnection(SQLModel, table=True):
    """One open (or recently dropped) socket; a user is as present as their live connections.

    ``expires_at`` is pushed forward by the heartbeat of the process (``node``) holding the
    socket; on disconnect it is set to now + grace, so a quick reconnect keeps the user online
    and a crashed process's sockets lapse on their own.
    """

    __tablename__ = "presence_connection"

    id: str = Field(primary_key=True, max_length=32)
    user_id: int = Field(foreign_key="user.id", ondelete="CASCADE", index=True)
    node: str = Field(max_length=32, index=True)
    status: PresenceStatus = Field(default=PresenceStatus.online, max_length=10, sa_type=String(10))
    closed: bool = Field(default=False)
    connected_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)


class PresencePublic(BaseModel):
    """One row of ``GET /api/presence``."""

    user_id: int
    name: str
    role: str
    status: PresenceStatus
    since: datetime | None
