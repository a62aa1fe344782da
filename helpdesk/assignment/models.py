"""How each inbox hands out its tickets: the policy, capacities and channel weights."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, field_validator
from pydantic import Field as PydanticField
from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from helpdesk.db import utcnow
from helpdesk.storage.types import UTCDateTime
from helpdesk.tickets.models import Channel

PolicyName = Literal["manual", "round_robin", "least_loaded"]
# A ticket's share of an operator's capacity when its channel has no weight of its own.
DEFAULT_WEIGHTS: dict[str, float] = {"phone": 1.0, "chat": 0.5, "email": 0.2}


class AssignmentPolicy(SQLModel, table=True):
    """One inbox's assignment settings (absent: manual). The row is also the inbox's lock."""

    __tablename__ = "assignment_policy"

    inbox_id: int = Field(foreign_key="inbox.id", primary_key=True, ondelete="CASCADE")
    policy: str = Field(default="manual", max_length=20)
    sticky: bool = Field(default=False)
    offline_grace_seconds: int = Field(default=300)
    capacity: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    weights: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Round-robin: who was given the last ticket, so the next goes to the one after.
    last_user_id: int | None = Field(default=None)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AssignmentConfig(BaseModel):
    """``GET|PUT /api/admin/inboxes/{id}/assignment``."""

    policy: PolicyName = "manual"
    sticky: bool = False
    offline_grace_seconds: int = PydanticField(default=300, ge=0, le=7 * 86400)
    # Operator id (as a string, JSON's keys) to the load they may carry; absent = unlimited.
    capacity: dict[str, float] = PydanticField(default_factory=dict, max_length=5000)
    weights: dict[str, float] = PydanticField(default_factory=lambda: dict(DEFAULT_WEIGHTS),
                                              max_length=20)

    @field_validator("capacity")
    @classmethod
    def _capacity(cls, value: dict[str, float]) -> dict[str, float]:
        for key, amount in value.items():
            if not key.isdigit() or len(key) > 12:
                raise ValueError("capacity: keys are user ids")
            if not 0 <= amount <= 1000:
                raise ValueError("capacity: between 0 and 1000")
        return value

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        known = {c.value for c in Channel}
        for key, amount in value.items():
            if key not in known:
                raise ValueError(f"weights: unknown channel {key!r}")
            if not 0 <= amount <= 100:
                raise ValueError("weights: between 0 and 100")
        return value


class Candidate(BaseModel):
    user_id: int
    load: float
