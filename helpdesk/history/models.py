"""A ticket's history: assignments with their reasons, status changes, SLA breaches, approvals.

Kept apart from the realtime event log, which is pruned after a while and is not indexed by
ticket: this is what a ticket page and reports read back.
"""

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from helpdesk.db import utcnow
from helpdesk.storage.types import UTCDateTime


class TicketHistory(SQLModel, table=True):
    __tablename__ = "ticket_history"
    __table_args__ = (Index("ix_ticket_history_ticket", "ticket_id", "id"),
                      Index("ix_ticket_history_type_at", "type", "at"))

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", ondelete="CASCADE")
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    type: str = Field(max_length=40)
    actor_id: int | None = Field(default=None)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class HistoryItem(BaseModel):
    at: datetime
    type: str
    actor_id: int | None
    data: dict[str, Any]


class HistoryPage(BaseModel):
    items: list[HistoryItem]
