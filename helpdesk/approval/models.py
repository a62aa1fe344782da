"""Send approval: whose replies in an inbox wait for a supervisor before they go out."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, field_validator
from pydantic import Field as PydanticField
from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from helpdesk.db import utcnow
from helpdesk.storage.types import UTCDateTime
from helpdesk.tickets.models import MessagePublic

PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"


class ApprovalPolicy(SQLModel, table=True):
    """One inbox's approval rule (absent: none)."""

    __tablename__ = "approval_policy"

    inbox_id: int = Field(foreign_key="inbox.id", primary_key=True, ondelete="CASCADE")
    # "none", "all_operators", or a list of user ids
    required_for: Any = Field(default="none", sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ApprovalConfig(BaseModel):
    """``GET|PUT /api/admin/inboxes/{id}/approval``."""

    required_for: Literal["none", "all_operators"] | list[int] = "none"

    @field_validator("required_for")
    @classmethod
    def _few(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) > 5000:
            raise ValueError("required_for: at most 5000 users")
        return sorted(set(value)) if isinstance(value, list) else value


class Rejection(BaseModel):
    comment: str = PydanticField(min_length=1, max_length=5000)


class PendingApproval(BaseModel):
    """One row of ``GET /api/approvals``: the draft, its ticket and author."""

    message: MessagePublic
    ticket_id: int
    ticket_number: int
    ticket_subject: str
    inbox_id: int
    author_user_id: int | None


class ApprovalPage(BaseModel):
    items: list[PendingApproval]
